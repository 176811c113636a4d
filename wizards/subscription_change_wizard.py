from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import format_date


class SubscriptionChangeWizard(models.TransientModel):
    """*Change plan or quantities*: the lines and plan after the change, when it applies, and the
    exact amounts (credit, charge, net, next period) before confirming."""

    _name = "subscription.change.wizard"
    _inherit = ["subscription.lines.wizard.mixin"]
    _description = "Change a subscription's plan or quantities"

    subscription_id = fields.Many2one("subscription.subscription", required=True, readonly=True,
                                      default=lambda self: self.env.context.get("active_id"))
    currency_id = fields.Many2one(related="subscription_id.currency_id")
    plan_id = fields.Many2one("subscription.plan", string="Plan", required=True,
                              default=lambda self: self.env["subscription.subscription"].browse(
                                  self.env.context.get("active_id")).plan_id)
    line_ids = fields.One2many("subscription.change.wizard.line", "wizard_id", string="Lines",
                               default=lambda self: self._default_line_ids())
    timing = fields.Selection(
        [("now", "Now, prorated"), ("next_period", "At the next period")], string="When", required=True,
        default="now",
        help="Now: what is left of the period already invoiced is credited at the old lines and charged at the "
        "new ones, per day. At the next period: no money moves now.")
    period_start = fields.Date(compute="_compute_preview", string="Period from")
    period_end = fields.Date(compute="_compute_preview", string="Period to")
    days_left = fields.Integer(compute="_compute_preview", string="Days left")
    days_in_period = fields.Integer(compute="_compute_preview", string="Days in the period")
    credit = fields.Monetary(compute="_compute_preview", string="Credit for unused time (untaxed)")
    charge = fields.Monetary(compute="_compute_preview", string="Charge (untaxed)",
                             help="The days left at the new lines, or a new plan's first full period.")
    tax = fields.Monetary(compute="_compute_preview", string="Taxes")
    net = fields.Monetary(compute="_compute_preview", string="To pay now",
                          help="Taxes included. Negative: a credit note, used on the open or next invoices.")
    next_amount = fields.Monetary(compute="_compute_preview", string="Next periods")
    new_period = fields.Boolean(compute="_compute_preview")
    term_end = fields.Date(compute="_compute_preview", string="New commitment until",
                           help="A new plan's commitment term counts from the day it starts.")
    period_label = fields.Char(compute="_compute_preview", string="Period invoiced")
    preview_error = fields.Char(compute="_compute_preview")

    def _default_line_ids(self):
        sub = self.env["subscription.subscription"].browse(self.env.context.get("active_id"))
        return [fields.Command.create({"line_id": line.id, "product_id": line.product_id.id, "quantity": line.quantity,
                                       "price_unit": line.price_unit, "discount": line.discount})
                for line in sub.line_ids]

    @api.depends("plan_id", "timing", "line_ids.product_id", "line_ids.quantity", "line_ids.price_unit",
                 "line_ids.discount")
    def _compute_preview(self):
        for wizard in self:
            values = {"period_start": False, "period_end": False, "days_left": 0, "days_in_period": 0, "credit": 0.0,
                      "charge": 0.0, "tax": 0.0, "net": 0.0, "next_amount": 0.0, "new_period": False, "term_end": False,
                      "preview_error": False, "period_label": False}
            sub = wizard.subscription_id
            if sub and wizard.plan_id:
                try:
                    preview = sub._change_preview(wizard.plan_id, sub._new_lines(wizard._lines_vals(), wizard.plan_id),
                                                  wizard.timing)
                except UserError as error:
                    values["preview_error"] = error.args[0]
                else:
                    values.update(period_start=preview["period_start"], period_end=preview["period_end"],
                                  days_left=preview["days_left"], days_in_period=preview["days_in_period"],
                                  credit=preview["credit"], charge=preview["charge"], tax=preview["tax"],
                                  net=preview["net"],
                                  next_amount=preview["next"], new_period=preview["new_period"],
                                  term_end=preview["term_end"])
                    if preview["period_start"]:
                        values["period_label"] = self.env._(
                            "%(start)s to %(end)s: %(left)s of %(days)s days left",
                            start=format_date(self.env, preview["period_start"]),
                            end=format_date(self.env, preview["period_end"]),
                            left=preview["days_left"], days=preview["days_in_period"])
            wizard.update(values)

    def action_confirm(self):
        """Apply the change (see ``subscription._apply_change``) and open the document to pay or the
        credit note, if any.

        :raise UserError: what ``_apply_change`` raises
        """
        self.ensure_one()
        documents = self.subscription_id._apply_change(self.plan_id, self._lines_vals(), self.timing)
        if not documents:
            return {"type": "ir.actions.act_window_close"}
        return self.subscription_id.action_view_invoices(documents)


class SubscriptionChangeWizardLine(models.TransientModel):
    _name = "subscription.change.wizard.line"
    _inherit = ["subscription.wizard.line.mixin"]
    _description = "Line after a subscription change"

    wizard_id = fields.Many2one("subscription.change.wizard", required=True, ondelete="cascade")
