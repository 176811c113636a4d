from odoo import fields, models
from odoo.exceptions import UserError


class SubscriptionSuspendWizard(models.TransientModel):
    _name = "subscription.suspend.wizard"
    _inherit = ["subscription.wizard.mixin"]
    _description = "Suspend subscriptions with a reason"

    reason = fields.Text(required=True, help="Shown on the subscription, the contact's tab and the collections list.")

    def action_suspend(self):
        """Suspend the selected subscriptions with the reason given.

        :raise UserError: no subscription, or an empty reason
        """
        self.ensure_one()
        if not self.subscription_ids:
            raise UserError(self.env._("Select the subscriptions to suspend."))
        if not (self.reason or "").strip():
            raise UserError(self.env._("Say why the subscription is suspended."))
        self.subscription_ids.action_suspend(reason=self.reason)
        return {"type": "ir.actions.act_window_close"}
