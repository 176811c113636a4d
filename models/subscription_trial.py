from collections import defaultdict
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.fields import Domain
from odoo.tools import format_date

from .. import const
from ..tools import log_notes, not_mailed_reason, process_in_locked_batches


class SubscriptionPlan(models.Model):
    _inherit = "subscription.plan"

    trial_days = fields.Integer(
        string="Free trial (days)",
        help="New subscriptions start at once and are first invoiced the day after the trial; their periods and "
        "commitment term count from that day. 0: no trial.")
    trial_reminder_days = fields.Integer(
        string="Trial reminder (days before its end)", default=3,
        help="The customer is e-mailed this many days before the trial ends (the first amount and how to cancel). "
        "0: no reminder.")
    trial_requires_autopay = fields.Boolean(
        string="Payment method required for the trial",
        help="A subscription on this plan starts (and its trial with it) only once the customer has saved a "
        "payment method for autopay: send them the setup link, it starts when they save one.")

    _trial_days_range = models.Constraint(
        "CHECK(trial_days >= 0 AND trial_days <= 365)", "A free trial lasts from 0 to 365 days.")
    _trial_reminder_days_range = models.Constraint(
        "CHECK(trial_reminder_days >= 0 AND trial_reminder_days <= 365)",
        "The trial reminder goes out from 0 to 365 days before the trial ends.")


class SubscriptionSubscription(models.Model):
    """Free trials: the subscription runs from its start, its first invoice is dated the day after
    the trial and its MRR counts from then (a ``new`` event on the conversion day); a reminder
    goes out before the end; cancelled during the trial, nothing is ever invoiced."""

    _inherit = "subscription.subscription"

    # === FIELDS === #

    date_trial_end = fields.Date(
        string="Trial until", copy=False, tracking=True,
        help="Last day of the free trial: the first invoice is dated the day after. Filled from the plan's trial "
        "when the subscription starts; can be set by hand before.")
    is_trial = fields.Boolean(
        string="On trial", readonly=True, copy=False, index=True,
        help="In its free trial: not invoiced yet and not counted in MRR until it converts.")
    trial_reminder_sent = fields.Boolean(readonly=True, copy=False)

    # === CONSTRAINT METHODS === #

    @api.constrains("date_trial_end", "date_start")
    def _check_date_trial_end(self):
        for sub in self.filtered("date_trial_end"):
            if sub.date_start and sub.date_trial_end < sub.date_start:
                raise ValidationError(self.env._("The trial of %(sub)s cannot end before its start.",
                                                 sub=sub.display_name))
            if sub.date_start and (sub.date_trial_end - sub.date_start).days >= 366:
                raise ValidationError(self.env._("The trial of %(sub)s is longer than a year.", sub=sub.display_name))

    # === CRUD METHODS === #

    def write(self, vals):
        if "date_trial_end" in vals and not self.env.context.get("subscription_term_write"):
            started = self.filtered(lambda s: s.state != "draft")
            if started:
                raise UserError(self.env._(
                    "The trial of %(subs)s is set when it starts; afterwards the next invoice date moves the first "
                    "invoice.", subs=", ".join(started.mapped("display_name"))))
        return super().write(vals)

    # === ACTION METHODS === #

    def action_start(self):
        """A plan with a free trial: the trial starts with the subscription (see the class)."""
        needs_method = self.filtered(lambda s: s.state == "draft" and s.plan_id.trial_requires_autopay
                                     and not s.payment_token_id)
        if needs_method:
            raise UserError(self.env._(
                "Plan %(plan)s asks for a payment method before the trial: use Send autopay setup link; "
                "%(subs)s starts when the customer saves one.", plan=needs_method[0].plan_id.name,
                subs=", ".join(needs_method.mapped("display_name"))))
        for sub in self.filtered(lambda s: s.state == "draft"):
            if not sub.date_trial_end and sub.plan_id.trial_days:
                sub.date_trial_end = sub.date_start + timedelta(days=sub.plan_id.trial_days - 1)
            if sub.date_trial_end:
                sub.is_trial = True
        return super().action_start()

    def action_end_trial(self):
        """*End the trial now*: the first period starts today and is invoiced by the next billing
        run (or *Generate invoice now*).

        :return: True
        :raise UserError: a subscription is not on trial
        """
        not_trial = self.filtered(lambda s: not s.is_trial)
        if not_trial:
            raise UserError(self.env._("%(subs)s is not on trial.", subs=", ".join(not_trial.mapped("display_name"))))
        for sub in self:
            today = sub.company_id._subscription_today()
            # A trial ended on its first day was no trial at all.
            last_day = today - timedelta(days=1)
            sub.with_context(subscription_term_write=True).write(
                {"date_trial_end": last_day if last_day >= sub.date_start else False})
            sub._restart_billing(today)
            sub._convert_trial(today, self.env._("Trial ended early by %(user)s.", user=self.env.user.name))
        return True

    # === BUSINESS METHODS === #

    def _init_running_dates(self):
        """A trial: periods and the commitment term count from the day after it."""
        trials = self.filtered(lambda s: s.is_trial and s.date_trial_end and not s.date_anchor)
        for sub in trials:
            sub._restart_billing(sub.date_trial_end + timedelta(days=1))
        return super(SubscriptionSubscription, self - trials)._init_running_dates()

    def _convert_trial(self, first_day, message):
        """The trial is over: MRR counts from ``first_day`` (a ``new`` event that day)."""
        self.ensure_one()
        self.with_context(subscription_event_date=first_day).write({"is_trial": False})
        self.message_post(body=message)

    @api.model
    def _trial_over_domain(self):
        return Domain("is_trial", "=", True) & self.env["res.company"]._subscription_per_company(
            lambda _c, today: Domain("date_trial_end", "<", today))

    @api.model
    def _cron_convert_trials(self, batch_size):
        """The billing day's step before billing: trials whose last day has passed convert.

        :return: False when the worker's time is up"""
        return process_in_locked_batches(self, self._trial_over_domain(), "_convert_trials_batch", batch_size)

    def _convert_trials_batch(self):
        by_day = defaultdict(lambda: self.browse())
        for sub in self.filtered("is_trial"):
            by_day[sub.date_trial_end + timedelta(days=1)] |= sub
        for day, subs in by_day.items():
            subs.with_context(subscription_event_date=day).write({"is_trial": False})
            for sub in subs:
                if sub.state in const.RUNNING_STATES:
                    sub.message_post(body=self.env._("Trial over: billed from %(date)s.",
                                                     date=format_date(self.env, day)))

    @api.model
    def _trial_reminder_domain(self):
        """Trials ending within their plan's reminder days (each company's today), not yet reminded."""
        plans = self.env["subscription.plan"].sudo().with_context(active_test=False).search(
            [("trial_reminder_days", ">", 0)])
        if not plans:
            return Domain.FALSE
        due = self.env["res.company"]._subscription_per_company(lambda _c, today: Domain.OR(
            Domain("plan_id", "=", plan.id)
            & Domain("date_trial_end", "<=", today + timedelta(days=plan.trial_reminder_days))
            for plan in plans))
        return Domain([("is_trial", "=", True), ("state", "=", "active"), ("trial_reminder_sent", "=", False)]) & due

    def _send_trial_reminders(self):
        """Status run job: e-mail this batch's trial customers that their trial ends (once)."""
        todo = self.filtered(lambda s: s.is_trial and not s.trial_reminder_sent)
        todo.write({"trial_reminder_sent": True})
        mailed = todo._send_template("subscription_billing.mail_template_trial_ending")
        notes = []
        for sub in todo:
            date = format_date(self.env, sub.date_trial_end)
            notes.append((sub, self.env._("Trial reminder e-mailed: the trial ends on %(date)s.", date=date)
                          if sub in mailed else self.env._(
                              "No trial reminder was e-mailed (%(why)s): the trial ends on %(date)s.",
                              why=not_mailed_reason(sub), date=date)))
        log_notes(notes)

    @api.model
    def _status_jobs(self):
        """Trial reminders go out with the day's other customer e-mails."""
        return super()._status_jobs() + [("_trial_reminder_domain", "_send_trial_reminders", "id")]

    def _cancel_trial_by_customer(self, author):
        """The customer cancels during the trial: closed today, nothing invoiced.

        :raise UserError: the subscription is not on trial
        """
        self.ensure_one()
        if not self.is_trial or self.state != "active":
            raise UserError(self.env._("%(sub)s is not on trial.", sub=self.display_name))
        reason = self.env.ref("subscription_billing.close_reason_customer_request")
        self.with_context(close_reason_id=reason.id).action_cancel()
        self.message_post(body=self.env._("Trial cancelled by %(author)s: nothing is invoiced.", author=author.name),
                          author_id=author.id)
