"""Helpers used by the models that are not models themselves (no fields, no registry entry)."""

from .batch import (
    QUEUE_CHANNEL,
    enqueue_batches,
    is_transient_db_error,
    job_budget_end,
    left_in_domain,
    lock_matching,
    process_in_locked_batches,
    queue_job_enabled,
)
from .mail import CompiledTemplates, NoteBuffer, has_email_address, log_notes, not_mailed_reason, queue_mails
