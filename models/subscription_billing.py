import logging
import uuid
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Command, Domain
from odoo.tools import format_date

from .. import const
from ..tools import process_in_locked_batches
from ..utils import add_period

_logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 200


class SubscriptionSubscription(models.Model):
    """The billing day: which subscriptions are due, their periods, their invoices, their failures."""

    _inherit = "subscription.subscription"

    # === FIELDS === #

    billing_failed_on = fields.Date(
        copy=False, readonly=True,
        help="Day the billing day last failed for this subscription; it is retried the next day.",
        groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    billing_error = fields.Text(
        copy=False, readonly=True, groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )

    # === ACTION METHODS === #

    def action_generate_invoice(self):
        """Invoice now: every period due up to today, or else the next period in advance.

        Never invoices a period twice (the database refuses a second invoice for
        the same subscription and period).

        :return: an action opening the invoices created, or True when none was
        :raise UserError: a subscription is not active or past due, or is invoiced up to
            the end of a term that does not renew, or its invoice cannot be created
        :raise AccessError: the user may not edit these subscriptions
        """
        self.check_access("write")
        today = fields.Date.context_today(self)
        for sub in self:
            if sub.state not in const.BILLABLE_STATES:
                raise UserError(self.env._("%(sub)s is %(state)s: only active or past due subscriptions are invoiced.",
                                           sub=sub.display_name, state=sub._state_label()))
            if sub.date_end and sub.next_invoice_date > sub.date_end and not sub.auto_renew:
                raise UserError(self.env._("%(sub)s has been invoiced up to the end of its term; renew it first.",
                                           sub=sub.display_name))
        invoices = self.env["account.move"]
        for sub in self:
            until = max(today, sub.next_invoice_date)
            result = sub._bill(until, raise_on_error=True)
            invoices |= result
        invoices._subscription_notify_billed()
        return self.action_view_invoices(invoices) if invoices else True

    # === BUSINESS METHODS === #

    @api.model
    def _billable_domain(self, today):
        """Subscriptions the billing day must process on ``today``."""
        return Domain("state", "in", const.BILLABLE_STATES) & Domain("next_invoice_date", "<=", today) & (
            Domain("billing_failed_on", "=", False) | Domain("billing_failed_on", "<", today)
        )

    @api.model
    def _cron_generate_invoices(self, batch_size=None):
        """Billing day: invoice every due period of every running subscription.

        Works in locked batches committed through ``ir.cron._commit_progress`` (a crash
        loses at most one batch; a rerun resumes where it stopped) and stops when
        the worker's time is up, reporting what remains so the scheduler runs
        it again. Safe to run twice or on two workers at once.
        """
        batch_size = batch_size or int(
            self.env["ir.config_parameter"].sudo().get_param("subscription_billing.batch_size", DEFAULT_BATCH_SIZE)
        )
        self._expire_suspended(fields.Date.context_today(self))
        process_in_locked_batches(
            self, self._billable_domain(fields.Date.context_today(self)), "_bill_due_batch", batch_size,
            order="next_invoice_date, id",
        )

    def _bill_due_batch(self):
        """Bill this locked batch up to today; a subscription still due afterwards is parked."""
        today = fields.Date.context_today(self)
        invoices = self._bill(today)
        invoices._subscription_notify_billed()
        # A subscription still due after billing would be taken again: park it for today.
        stuck = self.filtered_domain(self._billable_domain(today))
        if stuck:
            stuck.write({"billing_failed_on": today, "billing_error": self.env._("Still due after billing.")})

    @api.model
    def _generate_due_invoices(self):
        """Bill every due subscription up to today in the current transaction.

        For small bases, imports and demo data; the scheduled action does the
        same in committed batches. Returns the invoices created.
        """
        today = fields.Date.context_today(self)
        self._expire_suspended(today)
        invoices = self.search(self._billable_domain(today))._bill(today)
        invoices._subscription_notify_billed()
        return invoices

    @api.model
    def _expire_suspended(self, today):
        """Suspended subscriptions past the end of a non-renewing term expire."""
        ended = self.search([
            ("state", "=", "suspended"), ("auto_renew", "=", False),
            ("date_end", "!=", False), ("date_end", "<", today),
        ])
        if ended:
            ended._action_close("expired", self.env.ref("subscription_billing.close_reason_expired"))

    def _plan_billing(self, until):
        """Compute, without writing, what billing these subscriptions up to ``until`` means.

        Returns ``{sub: {'periods': [(start, end), ...], 'vals': {...}, 'messages': [...]}}``
        where ``vals`` are the subscription's new dates/state after billing.
        """
        plans = {}
        for sub in self:
            plan = sub.plan_id
            anchor = sub.date_start.day
            start = sub.next_invoice_date or sub.date_start
            date_end = sub.date_end
            periods, messages, vals = [], [], {}
            while start <= until:
                if date_end and start > date_end:
                    if sub.auto_renew:
                        date_end = sub._term_end(date_end + timedelta(days=1))
                        vals["date_end"] = date_end
                        messages.append(self.env._("Renewed until %(date)s.", date=format_date(self.env, date_end)))
                        continue
                    vals["state"] = "expired"
                    break
                nxt = add_period(start, plan.billing_period_value, plan.billing_period_unit, anchor_day=anchor)
                periods.append((start, nxt - timedelta(days=1)))
                start = nxt
            vals["next_invoice_date"] = start
            plans[sub] = {"periods": periods, "vals": vals, "messages": messages}
        return plans

    def _bill(self, until, raise_on_error=False):
        """Create and post one invoice per due period up to ``until`` and move the dates.

        Each subscription's invoices, posting and date move are atomic: first the
        whole batch is tried at once (fast path); if anything fails, each
        subscription is retried alone in its own savepoint and a failing one is
        logged on it and parked until tomorrow. Returns the posted invoices.
        """
        plans = self._plan_billing(until)
        failing = self.filtered("billing_failed_on")  # their failure activity closes once billed
        try:
            with self.env.cr.savepoint():
                invoices = self._bill_apply(plans)
        except Exception:  # any failure falls back to per-subscription isolation
            if raise_on_error and len(self) == 1:
                raise
            _logger.info("Billing batch failed; retrying %s subscriptions one by one", len(self), exc_info=True)
        else:
            failing._close_billing_failures()
            return invoices
        invoices = self.env["account.move"]
        billed = self.browse()
        for sub in self:
            try:
                with self.env.cr.savepoint():
                    invoices |= sub._bill_apply({sub: plans[sub]})
            except Exception as e:  # one subscription must not stop the batch
                if raise_on_error:
                    raise
                sub._log_billing_error(e, until)
            else:
                billed |= sub
        (billed & failing)._close_billing_failures()
        return invoices

    def _bill_apply(self, plans):
        """Write what ``_plan_billing`` computed: invoices posted, dates and states moved."""
        vals_list = []
        journals = {}
        for sub, plan in plans.items():
            for start, end in plan["periods"]:
                if sub.company_id not in journals:
                    journals[sub.company_id] = sub._get_sale_journal()
                vals_list.append(sub._prepare_invoice_vals(start, end, journals[sub.company_id]))
        Move = self.env["account.move"].sudo().with_context(
            default_move_type="out_invoice",
            mail_create_nolog=True,
            mail_create_nosubscribe=True,
            mail_notrack=True,
        )
        invoices = Move.create(vals_list) if vals_list else Move
        if invoices:
            invoices.action_post()
        expired = self.env["subscription.subscription"]
        for sub, plan in plans.items():
            vals = dict(plan["vals"], billing_failed_on=False, billing_error=False)
            if vals.get("state") == "expired":
                vals.pop("state")
                expired |= sub
            sub.write(vals)
            for message in plan["messages"]:
                sub.message_post(body=message)
        if expired:
            expired._action_close("expired", self.env.ref("subscription_billing.close_reason_expired"))
        return invoices.sudo(False)

    def _log_billing_error(self, error, today):
        """Record a billing failure on the subscription, visible to its salesperson.

        One failure episode (from the first failure to the next successful billing) gets one
        activity: a failure on a later day updates its note, it does not add another.
        """
        self.ensure_one()
        message = str(error.args[0] if getattr(error, "args", None) else error)
        _logger.warning("Billing failed for %s: %s", self.display_name, message)
        self.write({"billing_failed_on": today, "billing_error": message})
        self.message_post(body=self.env._("The invoice could not be created: %(error)s", error=message))
        activity = self.activity_search([const.ACTIVITY_BILLING_FAILED])
        if activity:
            activity.note = message
        else:
            self._schedule_salesperson_activity(
                self.env._("Billing failed"), note=message, activity_xmlid=const.ACTIVITY_BILLING_FAILED,
            )

    def _close_billing_failures(self):
        """The subscriptions billed again: their billing-failure activity is done."""
        self.activity_feedback(
            [const.ACTIVITY_BILLING_FAILED], feedback=self.env._("Billed again: the failure is resolved."),
        )

    def _get_sale_journal(self):
        self.ensure_one()
        journal = self.env["account.journal"].sudo().search([
            *self.env["account.journal"]._check_company_domain(self.company_id),
            ("type", "=", "sale"),
        ], limit=1)
        if not journal:
            raise UserError(self.env._("Company %(company)s has no sales journal to invoice subscriptions in.",
                                       company=self.company_id.name))
        return journal

    def _prepare_invoice_vals(self, period_start, period_end_, journal):
        """Values of the customer invoice for one period, complete (lines included)."""
        self.ensure_one()
        label = self.env._("%(start)s to %(end)s",
                           start=format_date(self.env, period_start), end=format_date(self.env, period_end_))
        return {
            "move_type": "out_invoice",
            "partner_id": self.partner_id.id,
            "company_id": self.company_id.id,
            "journal_id": journal.id,
            "currency_id": self.currency_id.id,
            "invoice_date": period_start,
            "invoice_origin": self.name,
            "invoice_user_id": self.user_id.id,
            "team_id": self.team_id.id,
            "fiscal_position_id": self.fiscal_position_id.id,
            "invoice_payment_term_id": self.plan_id.payment_term_id.id,
            "subscription_id": self.id,
            "subscription_period_start": period_start,
            "subscription_period_end": period_end_,
            # Portal token and "sent" flag set at creation: writing them afterwards would run
            # the whole invoice write machinery once per invoice.
            "access_token": str(uuid.uuid4()),
            # Autopay invoices are charged first; the customer gets a receipt or a failure notice.
            "is_move_sent": bool(self.partner_id.email) and not self.payment_token_id,
            "subscription_charge_date": fields.Date.context_today(self) if self.payment_token_id else False,
            "invoice_line_ids": [Command.create(line._prepare_invoice_line_vals(label)) for line in self.line_ids],
        }
