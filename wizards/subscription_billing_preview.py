from datetime import timedelta

from markupsafe import Markup, escape

from odoo import api, fields, models
from odoo.tools import format_amount, format_date

from .. import const


class SubscriptionBillingPreview(models.TransientModel):
    """*Next billing run*: what the billing day and the autopay run would do on a chosen day (default
    tomorrow), and the subscriptions that would fail or bounce with the reason a person can fix.
    Everything shown is computed on the fly (``subscription._billing_preview``): opening it writes
    nothing."""

    _name = "subscription.billing.preview"
    _description = "Next billing run preview"

    date = fields.Date(string="Run on", required=True,
                       default=lambda self: self.env.company._subscription_today() + timedelta(days=1))
    subscription_count = fields.Integer(compute="_compute_preview", string="Subscriptions to invoice")
    invoice_count = fields.Integer(compute="_compute_preview", string="Invoices")
    charge_count = fields.Integer(compute="_compute_preview", string="Autopay charges")
    closing_count = fields.Integer(compute="_compute_preview", string="Subscriptions ending")
    amounts_html = fields.Html(compute="_compute_preview", string="Amounts", sanitize=False)
    problem_count = fields.Integer(compute="_compute_preview", string="Subscriptions with a problem")
    problem_html = fields.Html(compute="_compute_preview", string="Problems", sanitize=False)
    problem_subscription_ids = fields.Many2many("subscription.subscription", compute="_compute_preview")

    @api.depends("date")
    def _compute_preview(self):
        for wizard in self:
            day = wizard.date
            if not day:
                wizard.update({"subscription_count": 0, "invoice_count": 0, "charge_count": 0, "closing_count": 0,
                               "amounts_html": False, "problem_count": 0, "problem_html": False,
                               "problem_subscription_ids": False})
                continue
            today = self.env.company._subscription_today()
            if day < today or (day - today).days > const.MAX_YEARS_FROM_TODAY * 366:
                wizard.update({"subscription_count": 0, "invoice_count": 0, "charge_count": 0, "closing_count": 0,
                               "amounts_html": Markup("<p class='text-danger'>%s</p>") % self.env._(
                                   "Choose a day from today on, at most %(years)s years ahead.",
                                   years=const.MAX_YEARS_FROM_TODAY),
                               "problem_count": 0, "problem_html": False, "problem_subscription_ids": False})
                continue
            preview = self.env["subscription.subscription"]._billing_preview(day)
            wizard.update({
                "subscription_count": preview["subscription_count"], "invoice_count": preview["invoice_count"],
                "charge_count": preview["charge_count"], "closing_count": len(preview["closing"]),
                "amounts_html": wizard._amounts_html(preview),
                "problem_count": len(preview["problems"]),
                "problem_html": wizard._problems_html(preview["problems"]),
                "problem_subscription_ids": [fields.Command.set([sub.id for sub in preview["problems"]])],
            })

    def _amounts_html(self, preview):
        rows = Markup("").join(
            Markup("<tr><td>%s</td><td class='text-end'>%s</td><td class='text-end'>%s</td></tr>") % (
                currency.name, format_amount(self.env, preview["invoiced"].get(currency, 0.0), currency),
                format_amount(self.env, preview["charged"].get(currency, 0.0), currency))
            for currency in sorted(set(preview["invoiced"]) | set(preview["charged"]), key=lambda c: c.name))
        if not rows:
            return Markup("<p class='text-muted'>%s</p>") % self.env._("Nothing to invoice or charge that day.")
        return Markup(
            "<table class='table table-sm o_subscription_preview_amounts'><thead><tr><th>%s</th>"
            "<th class='text-end'>%s</th><th class='text-end'>%s</th></tr></thead><tbody>%s</tbody></table>"
        ) % (self.env._("Currency"), self.env._("Invoiced (taxes included)"), self.env._("Charged by autopay"), rows)

    def _problems_html(self, problems):
        if not problems:
            return Markup("<p class='text-success'>%s</p>") % self.env._(
                "No problem found: every subscription due that day can be invoiced and charged.")
        rows = Markup("").join(
            Markup("<tr><td><a href='/odoo/action-subscription_billing.subscription_action/%s'>%s</a></td>"
                   "<td>%s</td><td>%s</td></tr>") % (
                sub.id, sub.name, sub.partner_id.display_name,
                Markup("<br/>").join(escape(reason) for reason in reasons))
            for sub, reasons in problems.items())
        return Markup(
            "<table class='table table-sm o_subscription_preview_problems'><thead><tr><th>%s</th><th>%s</th>"
            "<th>%s</th></tr></thead><tbody>%s</tbody></table>"
        ) % (self.env._("Subscription"), self.env._("Customer"), self.env._("What to fix"), rows)

    def action_open_problems(self):
        """The subscriptions with a problem, as a list to work from."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window", "name": self.env._("To fix before %(day)s",
                                                                 day=format_date(self.env, self.date)),
            "res_model": "subscription.subscription", "views": [(False, "list"), (False, "form")],
            "domain": [("id", "in", self.problem_subscription_ids.ids)],
        }
