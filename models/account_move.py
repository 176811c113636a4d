from odoo import api, fields, models
from odoo.fields import Domain

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
    _subscription_period_uniq = models.UniqueIndex(
        "(subscription_id, subscription_period_start)"
        " WHERE subscription_id IS NOT NULL AND subscription_period_start IS NOT NULL"
        " AND move_type = 'out_invoice' AND state != 'cancel'",
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
    def _subscription_overdue_domain(self, today=None):
        """Open invoices due before ``today`` (default: today)."""
        today = today or fields.Date.context_today(self)
        return self._subscription_open_domain() & Domain("invoice_date_due", "<", today)

    @api.model
    def _autopay_due_domain(self, today):
        """Open invoices of autopay subscriptions whose (re)try date has come."""
        return (
            Domain("subscription_charge_date", "<=", today)
            & self._subscription_open_domain()
            & Domain("subscription_id.state", "in", const.BILLABLE_STATES)
            # Never a second charge while one is in progress (the database refuses it too).
            & Domain("subscription_charge_ids", "not any", [("state", "=", "pending")])
        )

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
