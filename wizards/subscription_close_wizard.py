from odoo import fields, models
from odoo.exceptions import UserError


class SubscriptionCloseWizard(models.TransientModel):
    _name = "subscription.close.wizard"
    _inherit = ["subscription.wizard.mixin"]
    _description = "Close subscriptions with a reason, now or on a date"

    close_reason_id = fields.Many2one("subscription.close.reason", required=True, string="Reason")
    close_note = fields.Text(string="Note")
    when = fields.Selection(
        [("now", "Now"), ("date", "On a date")], string="Close", required=True, default="now",
        help="On a date: the subscription runs until that day (its last day of service), nothing is invoiced "
        "after it, the last period is cut at it, and it closes that day.",
    )
    date_end = fields.Date(string="Last day of service")

    def action_close(self):
        """Close the subscriptions now, or schedule their end.

        :raise UserError: no subscription, or no date for a scheduled end
        """
        self.ensure_one()
        if not self.subscription_ids:
            raise UserError(self.env._("Select the subscriptions to close."))
        if self.when == "date":
            if not self.date_end:
                raise UserError(self.env._("Choose the last day of service."))
            self.subscription_ids._schedule_end(self.date_end, self.close_reason_id, self.close_note)
        else:
            self.subscription_ids._action_close("cancelled", self.close_reason_id, self.close_note)
        return {"type": "ir.actions.act_window_close"}
