from odoo import fields, models


class SubscriptionWizardMixin(models.AbstractModel):
    """A wizard acting on the subscriptions selected where it was opened (``active_ids``)."""

    _name = "subscription.wizard.mixin"
    _description = "Wizard on selected subscriptions"

    subscription_ids = fields.Many2many(
        "subscription.subscription", string="Subscriptions",
        default=lambda self: self.env["subscription.subscription"].browse(self.env.context.get("active_ids")),
    )
