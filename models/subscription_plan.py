from odoo import api, fields, models
from odoo.exceptions import ValidationError

from .. import const
from ..utils import PERIOD_UNITS, is_multiple, monthly_factor, period_in_days, period_in_months


class SubscriptionPlan(models.Model):
    _name = "subscription.plan"
    _description = "Subscription Plan"
    _order = "sequence, id"
    _check_company_auto = True

    # === FIELDS === #

    name = fields.Char(required=True, translate=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one("res.company", index=True, default=lambda self: self.env.company)
    billing_period_value = fields.Integer(
        string="Bill every", required=True, default=1,
        help="Number of units between two invoices.",
    )
    billing_period_unit = fields.Selection(PERIOD_UNITS, string="Billing unit", required=True, default="month")
    term_value = fields.Integer(
        string="Commitment term", default=0,
        help="Length of the commitment; 0 means the subscription runs until it is closed.",
    )
    term_unit = fields.Selection(PERIOD_UNITS, string="Term unit", required=True, default="year")
    auto_renew = fields.Boolean(
        default=True,
        help="At the end of the term, start another term automatically instead of expiring.",
    )
    customer_can_stop_renewal = fields.Boolean(
        string="Customers can stop renewal",
        help="Customers may turn off the automatic renewal at the end of the term from their portal.",
    )
    renewal_reminder_days = fields.Integer(
        default=30,
        help="Subscriptions ending within this many days are shown as expiring soon "
        "and their customers are reminded.",
    )
    auto_renewal_notice = fields.Boolean(
        string="Notify before renewing", default=True,
        help="Customers of a term that renews by itself are e-mailed the renewal day and amount within the "
        "renewal reminder days (once per term); terms that do not renew always get their reminder.",
    )
    prorate_last_period = fields.Boolean(
        string="Prorate the last period", default=True,
        help="A subscription that ends in the middle of a period (a scheduled end, a term cut short) pays "
        "that period per day of service; otherwise it pays the period in full.",
    )
    bill_suspended_periods = fields.Boolean(
        string="Bill suspended time",
        help="When a suspended subscription is reactivated (by staff or by paying), also invoice the "
        "periods it spent suspended. By default they are skipped: billing resumes with a period "
        "starting on the reactivation day, since the customer had no service.",
    )
    customer_can_pause = fields.Boolean(
        string="Customers can pause",
        help="Customers may pause their subscription from their portal (with a resume date) and resume it.",
    )
    max_pause_days = fields.Integer(
        string="Longest pause (days)",
        help="Longest pause allowed, in days; a pause without a resume date resumes after it. 0: no limit "
        "(a pause without a resume date lasts until resumed by hand).",
    )
    customer_can_change = fields.Boolean(
        string="Customers can change plan or quantities",
        help="Customers may change their quantities, product variant, or move to another plan that allows it, from "
        "their portal: now with proration or from the next period, after seeing the exact amounts.",
    )
    allow_downgrade = fields.Boolean(
        string="Allow downgrades during the term",
        help="Subscriptions may lower their quantities, prices or plan during a commitment term. Otherwise such a "
        "change waits for the renewal (a clear message says so); upgrades are always allowed.",
    )
    payment_term_id = fields.Many2one(
        "account.payment.term", check_company=True,
        help="Payment terms of the invoices of customers who pay by hand.",
    )
    pricing_ids = fields.One2many("subscription.pricing", "plan_id", string="Prices")
    subscription_ids = fields.One2many("subscription.subscription", "plan_id")
    subscription_count = fields.Integer(compute="_compute_subscription_count")
    billing_period_display = fields.Char(compute="_compute_billing_period_display", string="Billing period")
    description = fields.Text(translate=True)

    _billing_period_positive = models.Constraint(
        "CHECK(billing_period_value >= 1)", "The billing period must be at least 1 day, week, month or year."
    )
    _term_not_negative = models.Constraint(
        "CHECK(term_value >= 0)", "The commitment term cannot be negative (use 0 for open-ended plans)."
    )
    _max_pause_range = models.Constraint(
        "CHECK(max_pause_days >= 0 AND max_pause_days <= 3650)",
        "The longest pause is between 0 (no limit) and 3,650 days.",
    )
    _reminder_not_negative = models.Constraint(
        "CHECK(renewal_reminder_days >= 0)", "The renewal reminder cannot be a negative number of days."
    )

    # === COMPUTE METHODS === #

    @api.depends("subscription_ids")
    def _compute_subscription_count(self):
        counts = dict(
            self.env["subscription.subscription"]._read_group(
                [("plan_id", "in", self.ids)], ["plan_id"], ["__count"]
            )
        )
        for plan in self:
            plan.subscription_count = counts.get(plan, 0)

    @api.depends("billing_period_value", "billing_period_unit")
    def _compute_billing_period_display(self):
        labels = dict(self._fields["billing_period_unit"]._description_selection(self.env))
        singular = {"day": self.env._("day"), "week": self.env._("week"), "month": self.env._("month"),
                    "year": self.env._("year")}
        for plan in self:
            if plan.billing_period_value == 1:
                plan.billing_period_display = self.env._(
                    "Every %(unit)s", unit=singular.get(plan.billing_period_unit, plan.billing_period_unit or ""))
            else:
                plan.billing_period_display = self.env._(
                    "Every %(value)s %(unit)s",
                    value=plan.billing_period_value,
                    unit=labels.get(plan.billing_period_unit, "").lower(),
                )

    # === CONSTRAINT METHODS === #

    @api.constrains("term_value", "term_unit", "billing_period_value", "billing_period_unit")
    def _check_term_fits_periods(self):
        """Billing periods and terms of at most ``const.MAX_YEARS_FROM_TODAY`` years, terms a whole
        number of periods."""
        max_units = {unit: const.MAX_YEARS_FROM_TODAY * per_year
                     for unit, per_year in (("day", 366), ("week", 53), ("month", 12), ("year", 1))}
        for plan in self:
            if plan.billing_period_value < 1:
                raise ValidationError(self.env._("The billing period must be at least 1."))
            if plan.billing_period_value > max_units[plan.billing_period_unit] or (
                    plan.term_value and plan.term_value > max_units[plan.term_unit]):
                raise ValidationError(self.env._(
                    "Plan %(plan)s: billing periods and commitment terms are at most %(years)s years.",
                    plan=plan.name, years=const.MAX_YEARS_FROM_TODAY))
            if plan.term_value and not is_multiple(
                plan.term_value, plan.term_unit, plan.billing_period_value, plan.billing_period_unit
            ):
                raise ValidationError(
                    self.env._(
                        "Plan %(plan)s: the commitment term must be a whole number of billing periods "
                        "(e.g. a 1-year term billed monthly or quarterly).",
                        plan=plan.name,
                    )
                )

    # === BUSINESS METHODS === #

    def _monthly_factor(self):
        """Factor that turns one period's amount into a monthly amount (MRR)."""
        self.ensure_one()
        return monthly_factor(self.billing_period_value, self.billing_period_unit)

    def _periods_per_term(self):
        """Billing periods in one commitment term (1 when open-ended)."""
        self.ensure_one()
        term = period_in_months(self.term_value, self.term_unit)
        period = period_in_months(self.billing_period_value, self.billing_period_unit)
        if term is None or period is None:
            term = period_in_days(self.term_value, self.term_unit)
            period = period_in_days(self.billing_period_value, self.billing_period_unit)
        return max(term // period, 1) if term and period else 1

    # === ACTION METHODS === #

    def action_open_reprice_wizard(self):
        """*Change prices*: roll this plan's current prices (or a percentage) out to its running subscriptions."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Change prices"),
            "res_model": "subscription.reprice.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_scope": "plan", "default_plan_id": self.id, "active_ids": []},
        }

    def action_view_subscriptions(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("subscription_billing.subscription_action")
        action["domain"] = [("plan_id", "=", self.id)]
        action["context"] = {"default_plan_id": self.id}
        return action
