from odoo import api, fields, models
from odoo.fields import Domain

from .subscription import BILLABLE_STATES


class AccountMove(models.Model):
    _inherit = "account.move"

    subscription_id = fields.Many2one(
        "subscription.subscription", index="btree_not_null", readonly=True, copy=False, ondelete="restrict",
    )
    subscription_period_start = fields.Date(readonly=True, copy=False)
    subscription_period_end = fields.Date(readonly=True, copy=False)
    subscription_charge_date = fields.Date(
        string="Autopay on", readonly=True, copy=False, index="btree_not_null",
        help="Day the subscription's saved payment method is charged for this invoice (first try or retry).",
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

    @api.model
    def _autopay_due_domain(self, today):
        """Open invoices of autopay subscriptions whose (re)try date has come."""
        return (
            Domain("subscription_charge_date", "<=", today)
            & self.env["subscription.subscription"]._open_invoice_domain()
            & Domain("subscription_id.state", "in", BILLABLE_STATES)
            # Never a second charge while one is in progress (the database refuses it too).
            & Domain("subscription_charge_ids", "not any", [("state", "=", "pending")])
        )

    def _invoice_paid_hook(self):
        """Paying a subscription's open invoices, by any means, brings it back to active."""
        res = super()._invoice_paid_hook()
        # Whoever registers the payment (an accountant, the portal) may not manage subscriptions.
        subs = self.sudo().subscription_id.filtered(lambda s: s.state in ("past_due", "suspended"))
        subs._reactivate_if_paid()
        return res
