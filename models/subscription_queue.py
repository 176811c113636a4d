import logging

from odoo import api, models

from ..tools import QUEUE_CHANNEL, left_in_domain, lock_matching

_logger = logging.getLogger(__name__)


class SubscriptionSubscription(models.Model):
    """The scheduled actions' batches as OCA ``queue_job`` jobs, when queue_job is installed.

    One scheduled action runs on one worker at a time; with ``queue_job`` the billing day, the
    autopay run and the sending of PDFs and e-mails enqueue their batches on the channel
    ``root.subscription`` (``tools.batch.enqueue_batches``), which any number of workers and
    Odoo servers on the same database drain. Without queue_job, nothing here is called.
    """

    _inherit = "subscription.subscription"

    @api.model
    def _subscription_job_batch(self, model_name, method, ids, domain_method):
        """A job: lock these records (``SKIP LOCKED``), keep those still matching the domain
        ``model_name.domain_method()``, and call ``method`` on them, as one batch of the
        scheduled action would. Records another job or worker holds, or that left the domain
        meanwhile, are left alone (processed once, by whoever holds them; no lock is kept on the
        ones that left, ``tools.batch.lock_matching``); records still in the
        domain after progress (a catch-up longer than one batch) go into a new job.

        :param str model_name: e.g. ``subscription.subscription``, ``account.move``
        :param str method: the batch method (e.g. ``_bill_due_batch``); it may return the records
            it left in the domain without progress
        :param list ids: record ids (at most one batch)
        :param str domain_method: the model method returning the scheduled action's domain
        :return: a one-line summary for the job's result
        """
        model = self.env[model_name].sudo()
        domain = getattr(model, domain_method)()
        locked = lock_matching(model.browse(ids).exists().try_lock_for_update(), domain)
        if not locked:
            return "nothing left to do (done meanwhile, or held by another worker)"
        left = left_in_domain(model, getattr(locked, method)())
        again = locked.filtered_domain(domain) - left
        if again:
            self.with_delay(channel=QUEUE_CHANNEL, description=f"{model._description}: {method} (continued)") \
                ._subscription_job_batch(model_name, method, again.ids, domain_method)
        return f"{len(locked)} processed, {len(left)} left for another day, {len(again)} continued in a new job"
