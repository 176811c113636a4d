from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Domain
from odoo.tools import format_date

from .. import const
from ..tools import has_email_address, log_notes, not_mailed_reason, process_in_locked_batches

DEFAULT_BATCH_SIZE = 200


class SubscriptionSubscription(models.Model):
    """Dunning of manual payers (past due, then suspended after the grace period), renewal
    reminders, and the way back to active once everything is paid."""

    _inherit = "subscription.subscription"

    # === FIELDS === #

    renewal_reminded_for = fields.Date(
        copy=False, readonly=True,
        help="End of the term for which the renewal reminder was sent (one reminder per term).",
    )
    is_renewal_notice_due = fields.Boolean(
        compute="_compute_is_renewal_notice_due", search="_search_is_renewal_notice_due",
        string="Renews soon",
        help="Renews by itself within its plan's reminder days, and the plan notifies customers before renewing.",
    )
    has_overdue_invoice = fields.Boolean(
        compute="_compute_has_overdue_invoice", search="_search_has_overdue_invoice", string="Overdue",
    )

    # === COMPUTE METHODS === #

    @api.depends("state", "date_end", "auto_renew", "is_end_scheduled", "plan_id.renewal_reminder_days",
                 "plan_id.auto_renewal_notice", "plan_id.term_value")
    def _compute_is_renewal_notice_due(self):
        today = fields.Date.context_today(self)
        for sub in self:
            sub.is_renewal_notice_due = bool(
                sub.state in const.BILLABLE_STATES and sub.date_end and sub._renews()
                and sub.plan_id.auto_renewal_notice
                and sub.date_end - timedelta(days=sub.plan_id.renewal_reminder_days) <= today
            )

    def _search_is_renewal_notice_due(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on 'Renews soon'."))
        today = fields.Date.context_today(self)
        self.flush_model(["state", "auto_renew", "date_end", "is_end_scheduled", "plan_id"])
        self.env["subscription.plan"].flush_model(["renewal_reminder_days", "auto_renewal_notice", "term_value"])
        self.env.cr.execute(
            """
            SELECT s.id FROM subscription_subscription s
              JOIN subscription_plan p ON p.id = s.plan_id
             WHERE s.state IN %s AND s.auto_renew AND NOT COALESCE(s.is_end_scheduled, FALSE)
               AND COALESCE(p.term_value, 0) > 0 AND p.auto_renewal_notice AND s.date_end IS NOT NULL
               AND s.date_end - COALESCE(p.renewal_reminder_days, 0) <= %s
            """,
            [const.BILLABLE_STATES, today],
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        positive = (operator == "=") == value
        return [("id", "in" if positive else "not in", ids)]

    def _compute_has_overdue_invoice(self):
        overdue = {
            sub for [sub] in self.env["account.move"].sudo()._read_group(
                self.env["account.move"]._subscription_overdue_domain() & Domain("subscription_id", "in", self.ids),
                ["subscription_id"],
            )
        }
        for sub in self:
            sub.has_overdue_invoice = sub in overdue

    def _search_has_overdue_invoice(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on 'Overdue'."))
        Move = self.env["account.move"].sudo()
        query = Move._search(Move._subscription_overdue_domain() & Domain("subscription_id", "!=", False))
        positive = (operator == "=") == value
        return [("id", "in" if positive else "not in", query.subselect("subscription_id"))]

    # === ACTION METHODS === #

    def action_send_payment_reminder(self):
        """E-mail these subscriptions' customers a reminder of their overdue invoices (each named with
        its amount, due date and pay link), from the collections list.

        :return: a notification: how many were e-mailed, and which were skipped and why (nothing
            overdue, or no e-mail address)
        :raise AccessError: the user may not edit these subscriptions
        """
        self.check_access("write")
        subs = self.sudo()
        nothing_overdue = subs.filtered(lambda s: not s.overdue_invoice_ids)
        no_email = (subs - nothing_overdue).filtered(lambda s: not has_email_address(s))
        to_mail = subs - nothing_overdue - no_email
        mailed = to_mail._send_template("subscription_billing.mail_template_payment_reminder")
        for sub in mailed:
            sub.message_post(body=self.env._("Payment reminder e-mailed by %(user)s (%(invoices)s).",
                                             user=self.env.user.name,
                                             invoices=", ".join(sub.overdue_invoice_ids.mapped("name"))))
        skipped = []
        if nothing_overdue:
            skipped.append(self.env._("nothing overdue: %(subs)s", subs=", ".join(nothing_overdue.mapped("name"))))
        if no_email:
            skipped.append(self.env._("no e-mail address: %(subs)s", subs=", ".join(no_email.mapped("name"))))
        if to_mail - mailed:
            skipped.append(self.env._("e-mail could not be queued: %(subs)s",
                                      subs=", ".join((to_mail - mailed).mapped("name"))))
        return {"type": "ir.actions.client", "tag": "display_notification", "params": {
            "type": "warning" if skipped else "success",
            "title": self.env._("%(count)s payment reminder(s) e-mailed", count=len(mailed)),
            "message": self.env._("Skipped — %(why)s", why="; ".join(skipped)) if skipped else "",
            "sticky": bool(skipped),
        }}

    # === BUSINESS METHODS === #

    @api.model
    def _cron_update_statuses(self, batch_size=None):
        """Daily statuses, one batched job after the other (each commits per batch, safe to rerun):

        0. past due subscriptions with nothing left to pay (e.g. an invoice credited in full) are
           active again;
        1. manual payers with an overdue invoice become past due (reminder e-mailed);
        2. subscriptions ending soon without renewal get their renewal reminder (once per term),
           then their renewal opportunity in the CRM pipeline (once per term, see
           ``subscription_renewal.py``);
        3. manual payers still overdue after the company's grace period are suspended
           (e-mail and activity).

        Autopay subscriptions follow their charges instead.
        """
        batch_size = batch_size or DEFAULT_BATCH_SIZE
        for domain_method, method, order in self._status_jobs():
            # With queue_job, every step's batches are enqueued at once: a subscription that only
            # enters a later step's domain through an earlier step (e.g. a renewal opportunity
            # after its reminder) takes that step on the next day's run.
            if not process_in_locked_batches(self, getattr(self, domain_method)(), method, batch_size,
                                             order=order, queue_domain=domain_method):
                return  # the worker's time is up: the scheduler continues

    @api.model
    def _status_jobs(self):
        """The daily status run's jobs, in order: ``[(name of the method returning the domain,
        batch method, order)]`` (a job of queue_job checks the domain again by that name)."""
        return [
            ("_dunning_settled_domain", "_reactivate_if_paid", "id"),
            ("_dunning_overdue_domain", "_dunning_mark_past_due", "id"),
            ("_renewal_reminder_domain", "_send_renewal_reminder", "date_end, id"),
            ("_dunning_grace_over_domain", "_dunning_suspend", "id"),
        ]

    @api.model
    def _dunning_settled_domain(self):
        """Past due subscriptions without an open invoice nor a charge in progress."""
        return Domain([
            ("state", "=", "past_due"),
            ("invoice_ids", "not any", self.env["account.move"]._subscription_open_domain()),
            ("charge_ids", "not any", [("state", "=", "pending")]),
        ])

    @api.model
    def _dunning_overdue_domain(self):
        """Active manual payers with an invoice overdue in their company's time zone."""
        Move = self.env["account.move"]
        overdue = self.env["res.company"]._subscription_per_company(
            lambda _c, today: Domain("invoice_ids", "any", Move._subscription_overdue_domain(today)))
        return Domain([("state", "=", "active"), ("payment_token_id", "=", False)]) & overdue

    @api.model
    def _dunning_grace_over_domain(self):
        """Past-due manual payers with an invoice overdue for longer than their company's grace period."""
        Move = self.env["account.move"]
        grace_over = self.env["res.company"]._subscription_per_company(
            lambda company, today: Domain("invoice_ids", "any", Move._subscription_overdue_domain(
                today - timedelta(days=company.subscription_grace_days))))
        return Domain([("state", "=", "past_due"), ("payment_token_id", "=", False)]) & grace_over

    @api.model
    def _renewal_reminder_domain(self):
        """Subscriptions ending within their plan's reminder days (without automatic renewal), or
        renewing by themselves within them where the plan notifies customers, not reminded yet for
        this term (a reminded term keeps its end in ``renewal_reminded_for``)."""
        not_reminded = self.env["res.company"]._subscription_per_company(
            lambda _c, today: Domain("date_end", ">=", today) & (
                Domain("renewal_reminded_for", "=", False) | Domain("renewal_reminded_for", "<", today)))
        return (Domain("is_expiring", "=", True) | Domain("is_renewal_notice_due", "=", True)) & not_reminded

    def _dunning_mark_past_due(self):
        """An invoice is overdue: past due, with a payment reminder e-mailed (the note says when
        it could not be, and why)."""
        moved = self._update_state("past_due")
        mailed = moved._send_template("subscription_billing.mail_template_payment_reminder")
        log_notes((sub, self.env._("An invoice is overdue: the subscription is past due. Payment reminder e-mailed.")
                   if sub in mailed else
                   self.env._("An invoice is overdue: the subscription is past due. No payment reminder was "
                              "e-mailed: %(why)s.", why=not_mailed_reason(sub)))
                  for sub in moved)

    def _dunning_suspend(self):
        """Still unpaid after the grace period: suspended, customer e-mailed, salesperson told."""
        moved = self._update_state("suspended", vals={"suspension_cause": "overdue", "suspension_note": False})
        mailed = moved._send_template("subscription_billing.mail_template_subscription_suspended")
        moved._schedule_salesperson_activity(self.env._("Suspended: invoice unpaid"))
        log_notes((sub, self.env._(
            "An invoice is still unpaid %(days)s days after its due date: the subscription is suspended. "
            "Customer e-mailed.", days=sub.company_id.subscription_grace_days) if sub in mailed else self.env._(
            "An invoice is still unpaid %(days)s days after its due date: the subscription is suspended. "
            "The customer was not e-mailed: %(why)s.", days=sub.company_id.subscription_grace_days,
            why=not_mailed_reason(sub))) for sub in moved)

    def _send_renewal_reminder(self):
        """One reminder e-mail per term to the customer: "renews on …" for a term that renews by
        itself (nothing to do), "ends on …" with an activity for the salesperson otherwise."""
        notes = []
        ending = self.browse()
        for sub in self:
            sub.renewal_reminded_for = sub.date_end
        mailed = self._send_template("subscription_billing.mail_template_renewal_reminder")
        for sub in self:
            if sub._renews():
                date = format_date(self.env, sub._next_term_start())
                notes.append((sub, self.env._("Renewal notice e-mailed: the subscription renews on %(date)s.",
                                              date=date) if sub in mailed else self.env._(
                    "No renewal notice was e-mailed (%(why)s): the subscription renews on %(date)s.",
                    why=not_mailed_reason(sub), date=date)))
            else:
                ending |= sub
                date = format_date(self.env, sub.date_end)
                notes.append((sub, self.env._("Renewal reminder e-mailed: the subscription ends on %(date)s.",
                                              date=date) if sub in mailed else self.env._(
                    "No renewal reminder was e-mailed (%(why)s): the subscription ends on %(date)s.",
                    why=not_mailed_reason(sub), date=date)))
        for date_end, subs in ending.grouped("date_end").items():
            subs._schedule_salesperson_activity(
                self.env._("Renewal: ends on %(date)s", date=format_date(self.env, date_end)), date_deadline=date_end)
        log_notes(notes)

    def _next_term_start(self):
        """First day of the next term (the day after the term end), or None."""
        self.ensure_one()
        return self.date_end and self.date_end + timedelta(days=1)

    def _renewal_reminder_subject(self):
        """Subject of the renewal reminder in the recipient's language (the template's context)."""
        self.ensure_one()
        if self._renews():
            return self.env._("Your %(product)s subscription renews on %(date)s", product=self.product_summary,
                              date=format_date(self.env, self._next_term_start()))
        return self.env._("Your %(product)s subscription ends on %(date)s", product=self.product_summary,
                          date=format_date(self.env, self.date_end))

    def _reactivate_if_paid(self):
        """Past due or suspended subscriptions without an open invoice left become active again;
        one suspended by staff stays suspended until staff reactivate it (the chatter says so)."""
        subs = self.filtered(lambda s: s.state in ("past_due", "suspended"))
        held = subs.filtered(lambda s: s.state == "suspended" and s.suspension_cause == "staff")
        subs -= held
        if held:
            still_due = {sub for [sub] in self.env["account.move"].sudo()._read_group(
                self.env["account.move"]._subscription_open_domain() & Domain("subscription_id", "in", held.ids),
                ["subscription_id"])}
            log_notes((sub, self.env._(
                "All invoices are paid; the subscription stays suspended by staff (%(reason)s) until it is "
                "reactivated.", reason=sub.suspension_note or self.env._("no reason given")))
                for sub in held.filtered(lambda s: s not in still_due))
        if not subs:
            return
        still_open = {
            sub for [sub] in self.env["account.move"].sudo()._read_group(
                self.env["account.move"]._subscription_open_domain() & Domain("subscription_id", "in", subs.ids),
                ["subscription_id"],
            )
        }
        paid = subs.filtered(lambda s: s not in still_open)
        paid._update_state("active", message=self.env._("All invoices are paid: the subscription is active again."))
