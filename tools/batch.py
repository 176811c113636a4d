"""The one loop of the scheduled actions: locked batches, committed progress."""

import logging
import time

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from odoo import models
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


# Errors of the database, not of the record being processed: serialization failure, deadlock,
# lock not available, connection closed or lost (class 08), server shut down (57P01-57P03).
TRANSIENT_DB_ERRORS = (
    psycopg2.extensions.TransactionRollbackError, psycopg2.errors.LockNotAvailable, psycopg2.InterfaceError,
    psycopg2.errors.ConnectionException, psycopg2.errors.AdminShutdown, psycopg2.errors.CrashShutdown,
    psycopg2.errors.CannotConnectNow,
)

# queue_job's channel of the batches (see enqueue_batches).
QUEUE_CHANNEL = "root.subscription"
QUEUE_STATES_WAITING = ("wait_dependencies", "pending", "enqueued")


def queue_job_enabled(env):
    """Whether the scheduled actions hand their batches to OCA ``queue_job`` (installed in this
    database, and not turned off with the system parameter ``subscription_billing.queue_job`` = 0)."""
    return "queue.job" in env and env["ir.config_parameter"].sudo().get_param(
        "subscription_billing.queue_job", "1").strip().lower() not in ("0", "false", "no", "")


def process_in_locked_batches(model, domain, method, batch_size, order="id", queue_domain=None):
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
        call (anything else it returns, e.g. records of another model it created, is ignored)
    :param int batch_size: records per batch (≥ 1)
    :param str order: order in which records are taken
    :param str queue_domain: name of the model method that returns ``domain``: when given and
        ``queue_job`` is enabled (``queue_job_enabled``), the batches are enqueued as jobs instead
        (``enqueue_batches``) and processed by whatever workers drain the queue
    :return: True when nothing is left to take (or other workers hold the rest, or the batches
        were enqueued), False when the worker's time is up (the scheduler runs the action again
        to continue)
    :raise ValueError: ``batch_size`` below 1
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if queue_domain and queue_job_enabled(model.env):
        enqueue_batches(model, domain, queue_domain, method, batch_size, order=order)
        return True
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
        grabbed = fresh.try_lock_for_update(limit=batch_size)
        if not grabbed:
            return True  # other workers hold every candidate
        locked = lock_matching(grabbed, domain)
        # The others were taken by another worker since the search: never taken again in this
        # call (so a row the search finds but the domain check drops cannot loop), search again.
        skipped.update((grabbed - locked).ids)
        if not locked:
            continue
        skipped.update(left_in_domain(model, getattr(locked, method)()).ids)
        _logger.info("%s.%s: %s records processed, about %s left", model._name, method, len(locked),
                     remaining - len(locked))
        if not cron._commit_progress(len(locked)):
            return False


def lock_matching(locked, domain):
    """Of these just-locked records, the ones still in ``domain``, and no lock held on the others.

    A record can leave the domain between the search and the lock: another worker took it and
    committed. Its lock would otherwise be held until this batch's first commit, and that worker
    may still have to lock the record itself (an autopay run locks each invoice again, in a
    transaction of its own, just before calling the provider, and leaves a locked one to the next
    run). So when some records left, every lock is released (a commit: nothing else is pending
    in this transaction) and those still in the domain are locked again, as often as needed.

    :param locked: records just locked by ``try_lock_for_update`` in this transaction (the
        domain is checked against its snapshot; each new lock after a commit is the new
        transaction's first statement)
    :param domain: the batch's ``Domain`` (or list)
    :return: the records locked and in ``domain`` (possibly fewer: another worker may lock some
        while they are released)
    """
    while True:
        matching = locked.filtered_domain(domain)
        if len(matching) == len(locked):
            return locked
        locked.env["ir.cron"]._commit_progress()
        if not matching:
            return matching
        locked = matching.try_lock_for_update()


def left_in_domain(model, result):
    """What a batch method of ``process_in_locked_batches`` says it left in the domain without
    progress: its ``result`` when that is a recordset of ``model``; otherwise (nothing, or
    records of another model it made, e.g. renewal opportunities) an empty recordset."""
    if isinstance(result, models.BaseModel) and result._name == model._name:
        return result
    return model.browse()


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
    if isinstance(error, TRANSIENT_DB_ERRORS):
        return True
    # A connection lost or terminated mid-statement: psycopg2 raises its base error, no SQLSTATE
    # (a statement timeout or a resource limit has its own class: possibly the record's doing).
    return type(error) is psycopg2.OperationalError and not error.pgcode


def enqueue_batches(model, domain, domain_method, method, batch_size, order="id"):
    """Enqueue the records of ``model`` matching ``domain`` as ``queue_job`` jobs of at most
    ``batch_size`` records on the channel ``QUEUE_CHANNEL``, in ``order``; records already in a
    job waiting to run are left out. Each job locks its records (``SKIP LOCKED``), checks them
    again against the domain (``domain_method``) and calls ``method`` on them
    (``subscription.subscription._subscription_job_batch``): a record processed meanwhile, or by
    two jobs, is processed once. queue_job retries a job that met a concurrency error.

    :return: the number of jobs enqueued
    """
    env = model.env
    _ensure_job_function(env)
    Job = env["queue.job"].sudo()
    waiting = set()
    for args in Job.search([("state", "in", QUEUE_STATES_WAITING), ("channel", "=", QUEUE_CHANNEL),
                            ("method_name", "=", "_subscription_job_batch")]).mapped("args"):
        if len(args) >= 3 and args[0] == model._name and args[1] == method:
            waiting.update(args[2])
    ids = [rid for rid in model.search(domain, order=order).ids if rid not in waiting]
    runner = env["subscription.subscription"].sudo()
    jobs = 0
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        runner.with_delay(
            channel=QUEUE_CHANNEL,
            description=f"{model._description}: {method} ({len(chunk)} records)",
        )._subscription_job_batch(model._name, method, chunk, domain_method)
        jobs += 1
    model.env["ir.cron"]._commit_progress(remaining=0)
    _logger.info("%s.%s: %s records in %s jobs on %s (%s already waiting in jobs)",
                 model._name, method, len(ids), jobs, QUEUE_CHANNEL, len(waiting))
    return jobs


def _ensure_job_function(env):
    """queue_job's configuration of the batch job, created once: channel ``QUEUE_CHANNEL`` and
    *Allow Commit* (queue_job forbids commits in a job otherwise; the autopay run commits each
    transaction before its provider is called, and the answer before it is post-processed)."""
    Function = env["queue.job.function"].sudo()
    name = Function.job_function_name("subscription.subscription", "_subscription_job_batch")
    if Function.search_count([("name", "=", name)], limit=1):
        return
    Channel = env["queue.job.channel"].sudo()
    parent_name, _dot, leaf = QUEUE_CHANNEL.rpartition(".")
    channel = Channel.search([("complete_name", "=", QUEUE_CHANNEL)], limit=1) or Channel.create({
        "name": leaf, "parent_id": Channel.search([("complete_name", "=", parent_name)], limit=1).id})
    Function.create({
        "model_id": env["ir.model"]._get_id("subscription.subscription"),
        "method": "_subscription_job_batch",
        "channel_id": channel.id,
        "allow_commit": True,
    })
