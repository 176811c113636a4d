"""The one loop of the scheduled actions: locked batches, committed progress."""

import logging

_logger = logging.getLogger(__name__)

# Candidates are searched this many batches ahead: a second worker running the same action
# skips the rows the first one holds (FOR UPDATE SKIP LOCKED) and finds free rows further on
# instead of waiting for the first worker's commit.
LOOKAHEAD_BATCHES = 4


def process_in_locked_batches(model, domain, method, batch_size, order="id"):
    """Call ``method`` on successive batches of the records of ``model`` matching ``domain``.

    Each batch holds at most ``batch_size`` records, locked with ``FOR UPDATE SKIP LOCKED``
    and checked again against ``domain`` once locked (another worker may have changed them).
    After each batch the progress is committed through ``ir.cron._commit_progress``, which
    also reports what remains to the scheduler. This is the single place where batches are
    formed, so spreading them over job queues needs changing only this function.

    :param model: an empty recordset of the model (its environment is used)
    :param domain: a ``Domain`` (or list) the processed records leave, e.g. because ``method``
        moves a date or a state; a record may stay in it while it makes progress (a long
        catch-up billed in several batches) and is then taken again
    :param str method: name of the recordset method called on each locked batch; it may return
        the records it left in the domain without progress, which are not taken again in this
        call
    :param int batch_size: records per batch (≥ 1)
    :param str order: order in which records are taken
    :return: True when nothing is left to take (or other workers hold the rest), False when
        the worker's time is up (the scheduler runs the action again to continue)
    :raise ValueError: ``batch_size`` below 1
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cron = model.env["ir.cron"]
    skipped = set()
    while True:
        window = batch_size * LOOKAHEAD_BATCHES
        candidates = model.search(domain, limit=window, order=order)
        fresh = candidates.filtered(lambda r: r.id not in skipped)
        if not fresh:
            if candidates:
                _logger.info("%s.%s: %s records wait for another day", model._name, method, len(candidates))
            return True
        remaining = model.search_count(domain) if len(candidates) == window else len(candidates)
        cron._commit_progress(remaining=remaining)
        locked = fresh.try_lock_for_update(limit=batch_size).filtered_domain(domain)
        if not locked:
            return True  # other workers hold every candidate
        left = getattr(locked, method)()
        if left:
            skipped.update(left.ids)
        _logger.info("%s.%s: %s records processed, about %s left", model._name, method, len(locked),
                     remaining - len(locked))
        if not cron._commit_progress(len(locked)):
            return False
