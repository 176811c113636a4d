from odoo import fields, models


class SubscriptionCatchUpWizard(models.TransientModel):
    _name = "subscription.catch.up.wizard"
    _description = "Confirm a long catch-up of periods"

    subscription_ids = fields.Many2many("subscription.subscription", string="Subscriptions", readonly=True)
    summary = fields.Text(readonly=True)

    def action_confirm(self):
        """Invoice the short catch-ups now and leave the long ones to the billing day's batches."""
        self.ensure_one()
        self.subscription_ids.with_context(subscription_confirm_catch_up=True).action_generate_invoice()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "info",
                "message": self.env._("The billing day is invoicing these periods now, in batches."),
                "next": {"type": "ir.actions.act_window_close"},
            },
        }
