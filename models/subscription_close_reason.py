from odoo import fields, models


class SubscriptionCloseReason(models.Model):
    _name = "subscription.close.reason"
    _description = "Subscription Close Reason"
    _order = "sequence, id"

    name = fields.Char(required=True, translate=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    customer_selectable = fields.Boolean(
        string="Offered to customers",
        help="Customers pick among these reasons when they stop the renewal from their portal.")

    _name_uniq = models.Constraint("UNIQUE(name)", "A close reason with this name already exists.")
