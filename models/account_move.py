from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Domain
from odoo.tools import format_amount, format_date

from .. import const
from ..tools import queue_mails


class AccountMove(models.Model):
    """Subscription invoices: their period, their autopay date, the domains that select them."""

    _inherit = "account.move"

    # === FIELDS === #

    subscription_id = fields.Many2one(
        "subscription.subscription", index="btree_not_null", readonly=True, copy=False, ondelete="restrict",
    )
    subscription_period_start = fields.Date(readonly=True, copy=False)
    subscription_period_end = fields.Date(readonly=True, copy=False)
    subscription_charge_date = fields.Date(
        string="Autopay on", readonly=True, copy=False, index="btree_not_null",
        help="Day the subscription's saved payment method is charged for this invoice (first try or retry). "
        "The only record of the next retry: the charges show it, the autopay action reads it.",
    )
    subscription_charge_ids = fields.One2many("subscription.charge", "invoice_id", string="Autopay charges")

    # The exactly-once guarantee of the billing day lives in the database: at most
    # one live customer invoice per subscription and period, whatever runs at once.
    # A cancelled invoice, or one credited in full, frees its period to be invoiced again.
    _subscription_period_uniq = models.UniqueIndex(
        "(subscription_id, subscription_period_start)"
        " WHERE subscription_id IS NOT NULL AND subscription_period_start IS NOT NULL"
        " AND move_type = 'out_invoice' AND state != 'cancel' AND payment_state IS DISTINCT FROM 'reversed'",
        "This subscription period has already been invoiced.",
    )

    # === CORE METHODS OVERRIDES === #

    def _invoice_paid_hook(self):
        """Paying a subscription's open invoices, by any means, brings it back to active."""
        res = super()._invoice_paid_hook()
        # Paid: no (re)try is due any more; the charges' next retry date follows.
        self.sudo().filtered("subscription_charge_date").write({"subscription_charge_date": False})
        # Whoever registers the payment (an accountant, the portal) may not manage subscriptions.
        subs = self.sudo().subscription_id.filtered(lambda s: s.state in ("past_due", "suspended"))
        subs._reactivate_if_paid()
        return res

    # === BUSINESS METHODS === #

    @api.model
    def _subscription_open_domain(self):
        """Posted customer invoices not fully paid yet."""
        return Domain([
            ("move_type", "=", "out_invoice"),
            ("state", "=", "posted"),
            ("payment_state", "in", ("not_paid", "partial")),
        ])

    @api.model
    def _subscription_live_domain(self):
        """Subscription invoices that hold their period: neither cancelled nor credited in full
        (what the exactly-once index ``_subscription_period_uniq`` counts)."""
        return Domain([
            ("move_type", "=", "out_invoice"), ("subscription_period_start", "!=", False),
            ("state", "!=", "cancel"), ("payment_state", "!=", "reversed"),
        ])

    @api.model
    def _subscription_overdue_domain(self, today=None):
        """Open invoices due before ``today`` (default: today)."""
        today = today or fields.Date.context_today(self)
        return self._subscription_open_domain() & Domain("invoice_date_due", "<", today)

    @api.model
    def _autopay_due_domain(self, today=None):
        """Open invoices of autopay subscriptions whose (re)try date has come in their company's
        time zone (``today`` forces one day for every company)."""
        return (
            self.env["res.company"]._subscription_per_company(
                lambda _c, company_today: Domain("subscription_charge_date", "<=", today or company_today))
            & self._subscription_open_domain()
            & Domain("subscription_id.state", "in", const.BILLABLE_STATES)
            # Never a second charge while one is in progress (the database refuses it too).
            & Domain("subscription_charge_ids", "not any", [("state", "=", "pending")])
        )

    def action_subscription_reinvoice(self):
        """Open *Invoice a period again* for the period of this cancelled or credited invoice."""
        self.ensure_one()
        action = self.subscription_id.action_open_reinvoice_wizard()
        action["context"]["default_period_start"] = fields.Date.to_string(self.subscription_period_start)
        return action

    def _subscription_payment_undone(self):
        """These invoices were paid and are open again (payment cancelled or reset, reconciliation
        undone, chargeback): back into collection.

        The charge that had collected them shows it was reversed; an autopay subscription gets a
        new attempt on the retry schedule (it is past due meanwhile), a manual payer follows the
        overdue and grace rules (past due at once when the invoice is overdue); the salesperson
        gets an activity. At most one successful, un-reversed charge per invoice still holds.
        """
        invoices = self.sudo().filtered_domain(
            self._subscription_open_domain() & Domain("subscription_id", "!=", False))
        for invoice in invoices:
            sub = invoice.subscription_id
            today = invoice.company_id._subscription_today()
            charges = invoice.subscription_charge_ids.filtered(lambda c: c.state == "done" and not c.is_reversed)
            charges._mark_reversed(self.env._("%(invoice)s is unpaid again.", invoice=invoice.name))
            what = self.env._("The payment of %(invoice)s was undone: the invoice is open again (%(amount)s due).",
                              invoice=invoice.name,
                              amount=format_amount(self.env, invoice.amount_residual, invoice.currency_id))
            if sub.state in const.BILLABLE_STATES and sub.payment_token_id:
                rules = self.env["subscription.retry.rule"]._get_for_company(sub.company_id)
                retry = today + timedelta(days=rules[0][0] if rules else 1)
                invoice.subscription_charge_date = retry
                sub._update_state("past_due")
                what = self.env._("%(what)s Autopay charges it again on %(date)s.", what=what,
                                  date=format_date(self.env, retry))
            elif sub.state == "active" and invoice.invoice_date_due and invoice.invoice_date_due < today:
                sub._update_state("past_due")
            sub.message_post(body=what)
            sub._schedule_salesperson_activity(self.env._("Payment undone: %(invoice)s", invoice=invoice.name),
                                               note=what)

    def _subscription_residual(self):
        """What is left to pay on this invoice (0 once paid or credited), in its currency."""
        self.ensure_one()
        if self.state != "posted" or self.payment_state in ("paid", "in_payment", "reversed"):
            return 0.0
        return self.amount_residual

    def _subscription_charge_autopay(self):
        """Charge these locked invoices now (a batch of the autopay run)."""
        self.env["subscription.charge"]._charge_invoices(self)

    def _subscription_notify_billed(self):
        """After billing: e-mail manual payers their invoice, have autopay invoices charged now."""
        self._subscription_send_invoice_mails()
        if any(self.mapped("subscription_charge_date")):
            cron = self.env.ref("subscription_billing.ir_cron_charge_autopay", raise_if_not_found=False)
            if cron:
                cron._trigger()

    def _subscription_send_invoice_mails(self):
        """Queue the invoice e-mail (with its portal link to view and pay) for each invoice.

        Mails are only queued (the mail cron sends them); no PDF is rendered here.
        A failure is logged and never undoes the invoices.
        """
        if not self:
            return
        template = self.env.ref("subscription_billing.mail_template_subscription_invoice", raise_if_not_found=False)
        if not template:
            return
        invoices = self.sudo().filtered(lambda m: m.partner_id.email and not m.subscription_charge_date)
        not_mailed = invoices - queue_mails(template, invoices)
        not_mailed.filtered("is_move_sent").write({"is_move_sent": False})


class AccountPartialReconcile(models.Model):
    _inherit = "account.partial.reconcile"

    def unlink(self):
        """Undoing a reconciliation (a payment reset or cancelled, lines unreconciled) may reopen a
        paid subscription invoice: it goes back into collection."""
        moves = (self.debit_move_id | self.credit_move_id).move_id
        paid = moves.filtered(lambda m: m.subscription_id and m.move_type == "out_invoice"
                              and m.payment_state in ("paid", "in_payment"))
        res = super().unlink()
        if paid:
            paid._subscription_payment_undone()
        return res


class AccountPaymentRegister(models.TransientModel):
    _inherit = "account.payment.register"

    def _create_payments(self):
        """An invoice whose autopay charge is in flight or pending at the provider cannot be paid by
        hand meanwhile: it would be collected twice."""
        invoices = self.line_ids.move_id.sudo().filtered("subscription_id")
        pending = invoices.subscription_charge_ids.filtered(lambda c: c.state == "pending")
        if pending:
            raise UserError(self.env._(
                "%(invoices)s is being collected by autopay (%(provider)s has not answered yet). Wait for the "
                "outcome, or mark the charge failed in Subscriptions → Payments to review, before registering "
                "a payment.",
                invoices=", ".join(pending.invoice_id.mapped("name")),
                provider=", ".join(pending.transaction_id.provider_id.mapped("name"))))
        return super()._create_payments()
