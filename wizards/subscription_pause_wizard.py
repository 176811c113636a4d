from odoo import api, fields, models
from odoo.exceptions import UserError


class SubscriptionPauseWizard(models.TransientModel):
    _name = "subscription.pause.wizard"
    _inherit = ["subscription.wizard.mixin"]
    _description = "Pause subscriptions until a day"

    date_resume = fields.Date(
        string="Resume on",
        help="Day the subscriptions resume by themselves; empty: they stay paused until resumed by hand (or "
        "until the plan's longest pause).")
    max_pause_days = fields.Integer(compute="_compute_max_pause_days", string="Longest pause (days)")

    @api.depends("subscription_ids")
    def _compute_max_pause_days(self):
        for wizard in self:
            limits = [days for days in wizard.subscription_ids.plan_id.mapped("max_pause_days") if days]
            wizard.max_pause_days = min(limits) if limits else 0

    def action_pause(self):
        """Pause the selected subscriptions until the day given (see ``subscription.action_pause``).

        :raise UserError: no subscription selected, or what ``action_pause`` raises
        """
        self.ensure_one()
        if not self.subscription_ids:
            raise UserError(self.env._("Select the subscriptions to pause."))
        self.subscription_ids.action_pause(date_resume=self.date_resume)
        return {"type": "ir.actions.act_window_close"}
