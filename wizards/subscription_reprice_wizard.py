from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import format_date

from .. import const
from ..utils import period_end

MAX_NOTICE_DAYS = 365


class SubscriptionRepriceWizard(models.TransientModel):
    """Roll a new price out to running subscriptions: from the plan's current pricing or by a
    percentage, at their next period or next renewal, with an optional notice e-mail; some
    customers may keep their price (grandfathered)."""

    _name = "subscription.reprice.wizard"
    _inherit = ["subscription.wizard.mixin"]
    _description = "Change the prices of running subscriptions"

    scope = fields.Selection(
        [("selected", "Selected subscriptions"), ("plan", "All running subscriptions of a plan")],
        required=True, default=lambda self: "selected" if self.env.context.get("active_ids") else "plan")
    plan_id = fields.Many2one("subscription.plan", string="Plan")
    product_id = fields.Many2one(
        "product.product", string="Only the product", domain=[("recurring_invoice", "=", True)],
        help="Change only the lines of this product (default: every line).")
    method = fields.Selection(
        [("pricing", "The plan's current price"), ("percent", "By a percentage")],
        string="New price", required=True, default="pricing",
        help="The plan's current price: each line takes its product's price on the subscription's plan "
        "(Subscription prices of the product). By a percentage: each line's price changes by it, rounded "
        "in the currency.")
    percent = fields.Float(string="Change (%)", help="e.g. 5 for +5 %, -10 for -10 %.")
    when = fields.Selection(
        [("next_period", "At the next period"), ("next_renewal", "At the next renewal")],
        string="Effective", required=True, default="next_period",
        help="At the next period: from each subscription's next invoice date. At the next renewal: from the "
        "first day of its next term (subscriptions without a term change at their next period).")
    notify = fields.Boolean(string="E-mail a notice", default=True)
    notice_days = fields.Integer(string="Days before", default=30,
                                 help="The notice goes out this many days before the change (at once if later).")
    respect_notice = fields.Boolean(
        string="Give the full notice", default=True,
        help="A subscription whose change would come sooner than the notice allows changes at its first period (or "
        "renewal) after the notice instead. Unticked, its notice goes out at once and the change keeps its day.")
    keep_ids = fields.Many2many(
        "subscription.subscription", "subscription_reprice_wizard_keep_rel", string="Keep their price",
        help="Grandfathered: these subscriptions keep the price they have.")
    summary = fields.Text(compute="_compute_summary", string="What will change")

    # === COMPUTE METHODS === #

    @api.depends("scope", "plan_id", "product_id", "method", "percent", "when", "subscription_ids", "keep_ids",
                 "notify", "notice_days", "respect_notice")
    def _compute_summary(self):
        for wizard in self:
            try:
                changes = wizard._planned_changes()
            except UserError as error:
                wizard.summary = str(error)
                continue
            if not changes:
                wizard.summary = self.env._("No price changes: every line already has that price.")
                continue
            subs = {change["subscription"] for change in changes}
            first = min(change["date"] for change in changes)
            wizard.summary = self.env._(
                "New prices for %(subs)s subscription(s) (%(lines)s line(s)), the first from %(date)s.",
                lines=len(changes), subs=len(subs), date=format_date(self.env, first))

    # === ACTION METHODS === #

    def action_apply(self):
        """Schedule the new prices (replacing the changes still scheduled on the same lines).

        :return: a notification with what was scheduled
        :raise UserError: nothing selected, a bad percentage or notice, or no price changes
        """
        self.ensure_one()
        changes = self._planned_changes()
        if not changes:
            raise UserError(self.env._("No price changes: every line already has that price."))
        PriceChange = self.env["subscription.price.change"]
        lines = self.env["subscription.line"].browse([change["line"].id for change in changes])
        PriceChange.search([("line_id", "in", lines.ids), ("state", "=", "scheduled")]).write({"state": "cancelled"})
        notice = self.notice_days if self.notify else 0
        created = PriceChange.create([{
            "subscription_id": change["subscription"].id, "line_id": change["line"].id,
            "price_before": change["before"], "price_after": change["after"], "date_effective": change["date"],
            "notice_days": notice,
        } for change in changes])
        for sub, sub_changes in created.grouped("subscription_id").items():
            sub.message_post(body=self.env._(
                "New prices scheduled by %(user)s from %(date)s: %(changes)s.", user=self.env.user.name,
                date=format_date(self.env, sub_changes[0].date_effective),
                changes=", ".join(change._label() for change in sub_changes)))
        return {"type": "ir.actions.client", "tag": "display_notification", "params": {
            "type": "success", "title": self.env._("Prices scheduled"), "message": self.summary,
            "next": {"type": "ir.actions.act_window_close"}}}

    # === BUSINESS METHODS === #

    def _target_subscriptions(self):
        self.ensure_one()
        Subscription = self.env["subscription.subscription"]
        if self.scope == "plan":
            if not self.plan_id:
                raise UserError(self.env._("Choose the plan whose subscriptions get the new price."))
            subs = Subscription.search([("plan_id", "=", self.plan_id.id), ("state", "in", const.RUNNING_STATES)])
        else:
            subs = self.subscription_ids
            if not subs:
                raise UserError(self.env._("Select the subscriptions to re-price."))
            closed = subs.filtered(lambda s: s.state not in const.RUNNING_STATES)
            if closed:
                raise UserError(self.env._("%(subs)s is not running: only running subscriptions are re-priced.",
                                           subs=", ".join(closed.mapped("display_name"))))
        return subs - self.keep_ids

    def _planned_changes(self):
        """``[{"subscription", "line", "before", "after", "date"}]`` of the lines whose price changes.

        :raise UserError: see ``action_apply``
        """
        self.ensure_one()
        if self.method == "percent" and (not self.percent or self.percent <= -100 or self.percent > 1000):
            raise UserError(self.env._("The percentage must be above -100 and at most 1000 (and not 0)."))
        if self.notify and not 0 <= self.notice_days <= MAX_NOTICE_DAYS:
            raise UserError(self.env._("The notice is between 0 and %(max)s days.", max=MAX_NOTICE_DAYS))
        Pricing = self.env["subscription.pricing"]
        changes = []
        for sub in self._target_subscriptions():
            not_before = None
            if self.notify and self.respect_notice and self.notice_days:
                not_before = sub.company_id._subscription_today() + timedelta(days=self.notice_days)
            day = sub._price_change_day(self.when, not_before=not_before)
            if not day:
                continue
            for line in sub.line_ids.filtered(lambda l: l.product_id and (
                    not self.product_id or l.product_id == self.product_id)):
                if self.method == "pricing":
                    after = Pricing._get_price(line.product_id, sub.plan_id, sub.currency_id)
                    if after is None:
                        continue
                else:
                    after = line.price_unit * (1 + self.percent / 100)
                after = sub.currency_id.round(after)
                if sub.currency_id.compare_amounts(after, line.price_unit):
                    changes.append({"subscription": sub, "line": line, "before": line.price_unit, "after": after,
                                    "date": day})
        return changes


class SubscriptionSubscription(models.Model):
    _inherit = "subscription.subscription"

    def _price_change_day(self, when, not_before=None):
        """First day billed at a new price: the next period, or the first day of the next term
        (the next period for open-ended plans), and with ``not_before`` the first such day on or
        after it (a full notice); None when nothing more is billed by then."""
        self.ensure_one()
        plan = self.plan_id
        if when == "next_renewal" and self.date_end and plan.term_value and not self.is_end_scheduled:
            day = self.date_end + timedelta(days=1)
            while not_before and day < not_before:
                day = self._term_end(day) + timedelta(days=1)
        elif self.next_invoice_date:
            day = self.next_invoice_date
            while not_before and day < not_before:
                day = period_end(day, plan.billing_period_value, plan.billing_period_unit,
                                 anchor_day=self._anchor_day()) + timedelta(days=1)
            if self.date_end and day > self.date_end and not self._renews():
                return None  # it ends before
        else:
            return None
        return day
