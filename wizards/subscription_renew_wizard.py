from odoo import fields, models


class SubscriptionRenewWizard(models.TransientModel):
    _name = "subscription.renew.wizard"
    _inherit = ["subscription.wizard.mixin"]
    _description = "Renew an ended subscription"

    date_start = fields.Date(
        string="New term starts on", required=True, default=fields.Date.context_today,
        help="Billing restarts on this day. An earlier day also invoices the time the subscription was ended.",
    )

    def action_renew(self):
        self.ensure_one()
        self.subscription_ids.action_renew(date_start=self.date_start)
        return {"type": "ir.actions.act_window_close"}
