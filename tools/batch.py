"""The one loop of the scheduled actions: locked batches, committed progress."""

import logging
import time

import psycopg2

from odoo.tools import config

from odoo.addons.base.models.ir_cron import MIN_TIME_PER_JOB

_logger = logging.getLogger(__name__)

# Share of Odoo's per-job worker limits (``limit_time_cpu``, ``limit_time_real_cron``) a
# scheduled action spends before it hands over to its next run: the batch in progress always
# finishes well within the limits, so no worker is ever killed in the middle of one.
JOB_BUDGET_SHARE = 0.5

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
    budget_end = job_budget_end(model.env)
    while True:
        if budget_end is not None and time.monotonic() > budget_end:
            # Something left is reported (at least 1: a later step of the same action may have
            # work left), so that Odoo runs the action again at once instead of tomorrow.
            cron._commit_progress(remaining=max(model.search_count(domain), 1))
            _logger.info("%s.%s: this run's share of the worker limits is used; the next run goes on",
                         model._name, method)
            return False
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


def job_budget_end(env):
    """When (``time.monotonic()``) the current scheduled-action job should stop taking batches:
    ``JOB_BUDGET_SHARE`` of the smallest of Odoo's per-job limits after the job started; None
    outside a scheduled action (tests, a method called by hand) or without limits."""
    end_time = env.context.get("cron_end_time")
    if end_time is None:
        return None
    real = config.get("limit_time_real_cron")
    if real is None or real < 0:
        real = config.get("limit_time_real") or 0
    limits = [limit for limit in (config.get("limit_time_cpu") or 0, real) if limit and limit > 0]
    if not limits:
        return None
    return end_time - MIN_TIME_PER_JOB + min(limits) * JOB_BUDGET_SHARE


def is_transient_db_error(error):
    """Whether ``error`` comes from the database rather than from the record being processed: a
    serialization failure, a lock or deadlock, a lost or terminated connection. Such an error is
    not the record's fault (it must not be logged on it as a billing failure, nor shown to people
    as raw SQL): the run stops, its committed batches stand, and the next run goes on."""
    return isinstance(error, (psycopg2.OperationalError, psycopg2.InterfaceError))
