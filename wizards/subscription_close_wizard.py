from odoo import fields, models
from odoo.exceptions import UserError


class SubscriptionCloseWizard(models.TransientModel):
    _name = "subscription.close.wizard"
    _description = "Close subscriptions with a reason"

    subscription_ids = fields.Many2many(
        "subscription.subscription", string="Subscriptions",
        default=lambda self: self.env["subscription.subscription"].browse(self.env.context.get("active_ids")),
    )
    close_reason_id = fields.Many2one("subscription.close.reason", required=True, string="Reason")
    close_note = fields.Text(string="Note")

    def action_close(self):
        self.ensure_one()
        if not self.subscription_ids:
            raise UserError(self.env._("Select the subscriptions to close."))
        self.subscription_ids._action_close("cancelled", self.close_reason_id, self.close_note)
        return {"type": "ir.actions.act_window_close"}
