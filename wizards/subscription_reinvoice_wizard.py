from odoo import api, fields, models
from odoo.tools import format_date


class SubscriptionReinvoiceWizard(models.TransientModel):
    _name = "subscription.reinvoice.wizard"
    _description = "Invoice a period of a subscription again"

    subscription_id = fields.Many2one("subscription.subscription", required=True, readonly=True)
    period_start = fields.Date(string="Period starting", required=True)
    available_periods = fields.Text(compute="_compute_available_periods", string="Periods to invoice again")

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        sub = self.env["subscription.subscription"].browse(values.get("subscription_id"))
        if sub and not values.get("period_start"):
            periods = sub._reinvoiceable_periods()
            if periods:
                values["period_start"] = periods[0][0]
        return values

    @api.depends("subscription_id")
    def _compute_available_periods(self):
        for wizard in self:
            periods = wizard.subscription_id._reinvoiceable_periods() if wizard.subscription_id else []
            wizard.available_periods = "\n".join(
                self.env._("%(start)s to %(end)s", start=format_date(self.env, start), end=format_date(self.env, end))
                for start, end, _ratio in periods
            ) or self.env._("None: every past period has a live invoice.")

    def action_invoice(self):
        self.ensure_one()
        invoice = self.subscription_id._invoice_period(self.period_start)
        return self.subscription_id.action_view_invoices(invoice)
