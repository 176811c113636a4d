from odoo import api, fields, models
from odoo.exceptions import UserError

from ..utils import period_end


class SubscriptionRenewWizard(models.TransientModel):
    """*Renew*: the next term as it is, or (one subscription) with a new plan, prices or
    quantities that take effect on the first day of that term; the next term's amounts are shown
    before confirming. Opened from a renewal opportunity marked won, it also wins it."""

    _name = "subscription.renew.wizard"
    _inherit = ["subscription.wizard.mixin", "subscription.lines.wizard.mixin"]
    _description = "Renew subscriptions"

    date_start = fields.Date(
        string="New term starts on", required=True, default=fields.Date.context_today,
        help="Billing restarts on this day. An earlier day also invoices the time the subscription was ended.",
    )
    subscription_id = fields.Many2one("subscription.subscription", compute="_compute_subscription_id")
    lead_id = fields.Many2one("crm.lead", string="Renewal opportunity", readonly=True,
                              default=lambda self: self.env.context.get("subscription_renewal_lead_id"))
    has_expired = fields.Boolean(compute="_compute_subscription_id")
    currency_id = fields.Many2one(related="subscription_id.currency_id")
    plan_id = fields.Many2one("subscription.plan", string="Plan of the new term",
                              default=lambda self: self._default_plan(),
                              domain="[('company_id', 'in', (False, company_id))]")
    company_id = fields.Many2one(related="subscription_id.company_id")
    waiting_summary = fields.Char(compute="_compute_subscription_id", string="Terms already agreed")
    line_ids = fields.One2many("subscription.renew.wizard.line", "wizard_id", string="Lines of the new term",
                               default=lambda self: self._default_line_ids())
    date_effective = fields.Date(compute="_compute_preview", string="New terms from")
    term_end = fields.Date(compute="_compute_preview", string="New term until")
    amount_untaxed = fields.Monetary(compute="_compute_preview", string="Untaxed per period")
    amount_tax = fields.Monetary(compute="_compute_preview", string="Taxes per period")
    amount_total = fields.Monetary(compute="_compute_preview", string="Total per period")
    current_term_total = fields.Monetary(compute="_compute_preview", string="Term value today",
                                         help="One term at the current plan and lines, taxes included.")
    periods = fields.Integer(compute="_compute_preview", string="Periods in the term")
    term_total = fields.Monetary(compute="_compute_preview", string="Term value (taxes included)")
    is_changed = fields.Boolean(compute="_compute_preview")
    preview_error = fields.Char(compute="_compute_preview")

    def _default_subscription(self):
        ids = self.env.context.get("active_ids") or []
        return self.env["subscription.subscription"].browse(ids if len(ids) == 1 else [])

    def _default_plan(self):
        sub = self._default_subscription()
        waiting = sub._pending_renewal_change() if sub else None
        return waiting.plan_id if waiting else sub.plan_id

    def _default_line_ids(self):
        """The current lines, or the terms already agreed for the next term (they are edited)."""
        sub = self._default_subscription()
        waiting = sub._pending_renewal_change() if sub else None
        lines = waiting.line_ids if waiting else sub.line_ids
        return [fields.Command.create({
            "line_id": (line.line_id.id if waiting else line.id), "product_id": line.product_id.id,
            "quantity": line.quantity, "price_unit": line.price_unit, "discount": line.discount}) for line in lines]

    @api.depends("subscription_ids")
    def _compute_subscription_id(self):
        for wizard in self:
            wizard.subscription_id = wizard.subscription_ids if len(wizard.subscription_ids) == 1 else False
            wizard.has_expired = "expired" in wizard.subscription_ids.mapped("state")
            waiting = wizard.subscription_id._pending_renewal_change() if wizard.subscription_id else None
            wizard.waiting_summary = waiting._summary() if waiting else False

    @api.depends("subscription_id", "plan_id", "date_start", "line_ids.product_id", "line_ids.quantity",
                 "line_ids.price_unit", "line_ids.discount")
    def _compute_preview(self):
        for wizard in self:
            values = {"date_effective": False, "term_end": False, "amount_untaxed": 0.0, "amount_tax": 0.0,
                      "amount_total": 0.0, "current_term_total": 0.0, "periods": 0, "term_total": 0.0,
                      "is_changed": False, "preview_error": False}
            sub, plan = wizard.subscription_id, wizard.plan_id
            if sub and plan:
                current_term_total = sub.amount_total * sub.plan_id._periods_per_term()
                waiting = sub._pending_renewal_change()
                try:
                    new_lines = sub._new_lines(wizard._lines_vals(), plan)
                    sub._check_change(plan, new_lines, "renewal")
                except UserError as error:
                    values["preview_error"] = error.args[0]
                else:
                    untaxed, total = sub._lines_total([(line, None, 1) for line in new_lines])
                    start = wizard.date_start if sub.state == "expired" else (
                        waiting.date_effective or sub._renewal_day())
                    periods = plan._periods_per_term() if plan.term_value else 0
                    values.update(
                        date_effective=start, amount_untaxed=untaxed, amount_tax=total - untaxed, amount_total=total,
                        current_term_total=current_term_total, periods=periods,
                        term_total=total * periods,
                        is_changed=plan != sub.plan_id or sub._lines_differ(new_lines),
                        term_end=start and plan.term_value and self._term_end_from(sub, plan, start))
            wizard.update(values)

    @api.model
    def _term_end_from(self, sub, plan, start):
        """End of a term of ``plan`` starting on ``start`` for ``sub`` (a new plan counts from ``start``)."""
        if plan == sub.plan_id:
            return sub._term_end(start)
        return period_end(start, plan.term_value, plan.term_unit, anchor_day=start.day)

    def action_renew(self):
        """Renew: several subscriptions as they are; one with the terms in the dialog (see
        ``subscription._renew_with_terms``). From an opportunity, it is marked won.

        :raise UserError: what ``action_renew`` / ``_renew_with_terms`` raise; the opportunity's
            subscription was already renewed past the opportunity's term
        """
        self.ensure_one()
        if self.lead_id:
            self.lead_id._subscription_renewal_prepare()
        if not self.subscription_id:
            self.subscription_ids.action_renew(
                date_start=self.date_start if self.has_expired else None)
        else:
            if self.preview_error:
                raise UserError(self.preview_error)
            self.subscription_id._renew_with_terms(
                self.plan_id, self._lines_vals(), date_start=self.date_start, lead=self.lead_id)
        if self.lead_id:
            self.lead_id.with_context(subscription_renewed=True).action_set_won()
            self.subscription_id.message_post(body=self.env._(
                "Renewal won (%(lead)s).", lead=self.lead_id._get_html_link()))
        return {"type": "ir.actions.act_window_close"}


class SubscriptionRenewWizardLine(models.TransientModel):
    _name = "subscription.renew.wizard.line"
    _inherit = ["subscription.wizard.line.mixin"]
    _description = "Line of a subscription's next term"

    wizard_id = fields.Many2one("subscription.renew.wizard", required=True, ondelete="cascade")
