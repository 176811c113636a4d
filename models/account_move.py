from odoo import fields, models


class AccountMove(models.Model):
    _inherit = "account.move"

    subscription_id = fields.Many2one(
        "subscription.subscription", index="btree_not_null", readonly=True, copy=False, ondelete="restrict",
    )
    subscription_period_start = fields.Date(readonly=True, copy=False)
    subscription_period_end = fields.Date(readonly=True, copy=False)

    # The exactly-once guarantee of the billing day lives in the database: at most
    # one live customer invoice per subscription and period, whatever runs at once.
    _subscription_period_uniq = models.UniqueIndex(
        "(subscription_id, subscription_period_start)"
        " WHERE subscription_id IS NOT NULL AND subscription_period_start IS NOT NULL"
        " AND move_type = 'out_invoice' AND state != 'cancel'",
        "This subscription period has already been invoiced.",
    )
