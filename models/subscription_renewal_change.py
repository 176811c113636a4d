import logging
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Domain
from odoo.tools import format_amount, format_date

from .. import const
from ..tools import is_transient_db_error, process_in_locked_batches

_logger = logging.getLogger(__name__)


class SubscriptionRenewalChange(models.Model):
    """The terms of a subscription's next term (plan, lines, prices) agreed at its renewal: they
    take effect on the first day of that term, never before. The billing day applies them before
    billing that day's periods, after billing what is left of the current term at the old terms."""

    _name = "subscription.renewal.change"
    _description = "Subscription renewal terms"
    _order = "date_effective desc, id desc"
    _check_company_auto = True

    # === FIELDS === #

    subscription_id = fields.Many2one("subscription.subscription", required=True, index=True, ondelete="cascade",
                                      readonly=True)
    company_id = fields.Many2one(related="subscription_id.company_id", store=True, index=True)
    currency_id = fields.Many2one(related="subscription_id.currency_id")
    partner_id = fields.Many2one(related="subscription_id.partner_id", string="Customer")
    plan_id = fields.Many2one("subscription.plan", string="Plan of the new term", required=True, readonly=True)
    line_ids = fields.One2many("subscription.renewal.change.line", "change_id", string="Lines of the new term",
                               readonly=True)
    date_effective = fields.Date(string="From", required=True, index=True, readonly=True,
                                 help="First day of the new term: the first period billed with these terms.")
    amount_untaxed = fields.Monetary(string="Untaxed per period", readonly=True)
    amount_total = fields.Monetary(string="Total per period", readonly=True)
    lead_id = fields.Many2one("crm.lead", string="Renewal opportunity", readonly=True, index="btree_not_null",
                              ondelete="set null")
    state = fields.Selection(
        [("scheduled", "Scheduled"), ("applied", "Applied"), ("cancelled", "Cancelled")],
        default="scheduled", required=True, readonly=True, index=True)

    _one_scheduled_per_subscription = models.UniqueIndex(
        "(subscription_id) WHERE state = 'scheduled'",
        "A subscription has one set of renewal terms waiting at a time.",
    )

    # === ACTION METHODS === #

    def action_cancel(self):
        """Cancel renewal terms not yet applied: the next term keeps the current plan and lines.

        :return: True
        :raise UserError: the terms were already applied
        """
        self.subscription_id.check_access("write")
        if self.filtered(lambda c: c.state == "applied"):
            raise UserError(self.env._("Renewal terms already applied cannot be cancelled: change the subscription "
                                       "instead (Change plan or quantities)."))
        todo = self.filtered(lambda c: c.state == "scheduled")
        todo.sudo().write({"state": "cancelled"})
        for change in todo:
            change.subscription_id.message_post(body=self.env._(
                "Renewal terms from %(date)s cancelled by %(user)s: the next term keeps the current plan and lines.",
                date=format_date(self.env, change.date_effective), user=self.env.user.name))
        return True

    # === BUSINESS METHODS === #

    @api.model
    def _apply_due_domain(self):
        return Domain("state", "=", "scheduled") & self.env["res.company"]._subscription_per_company(
            lambda _c, today: Domain("date_effective", "<=", today))

    @api.model
    def _cron_apply(self, batch_size):
        """The billing day's step before billing: apply the renewal terms whose day has come.

        :return: False when the worker's time is up"""
        return process_in_locked_batches(self, self._apply_due_domain(), "_apply", batch_size)

    def _apply(self):
        """Apply these renewal terms: what is left of the term before is billed at the old terms
        first, then the plan and lines change (``_apply_change`` at the renewal: no proration, the
        commitment term counts from the first day of the new term). Terms of subscriptions that
        are no longer running are cancelled; one subscription failing is logged on it and retried
        by the next run, the others go on."""
        for change in self:
            sub = change.subscription_id.sudo()
            if change.state != "scheduled":
                continue
            if sub.state not in const.RUNNING_STATES or (sub.date_end and sub.date_end < change.date_effective
                                                         and not sub._renews()):
                change.state = "cancelled"  # it ends before the new term
                continue
            try:
                with self.env.cr.savepoint():
                    change._apply_one()
            except Exception as error:  # one subscription must not stop the billing day
                if is_transient_db_error(error):
                    raise  # the database's doing: the run stops, the next goes on
                _logger.warning("Renewal terms of %s not applied", sub.display_name, exc_info=True)
                sub._log_billing_error(error, sub.company_id._subscription_today())

    def _apply_one(self):
        self.ensure_one()
        sub = self.subscription_id.sudo()
        before = self.date_effective - timedelta(days=1)
        if sub.state in const.BILLABLE_STATES and sub.next_invoice_date and sub.next_invoice_date <= before:
            sub._bill(until=before, raise_on_error=True)._subscription_notify_billed()
        sub.with_context(subscription_event_date=self.date_effective)._apply_change(
            self.plan_id, self._lines_vals(), "renewal")
        self.state = "applied"

    def _lines_vals(self):
        self.ensure_one()
        return [{"line_id": line.line_id.id if line.line_id.subscription_id == self.subscription_id else False,
                 "product_id": line.product_id.id, "quantity": line.quantity, "price_unit": line.price_unit,
                 "discount": line.discount} for line in self.line_ids]

    def _summary(self):
        """One line for the chatter and the form: plan, lines and amount per period from the day."""
        self.ensure_one()
        return self.env._(
            "from %(date)s: plan %(plan)s, %(lines)s, %(amount)s per period (taxes included)",
            date=format_date(self.env, self.date_effective), plan=self.plan_id.name,
            lines=", ".join(f"{line.product_id.display_name} × {line.quantity:g}" for line in self.line_ids),
            amount=format_amount(self.env, self.amount_total, self.currency_id))


class SubscriptionRenewalChangeLine(models.Model):
    _name = "subscription.renewal.change.line"
    _description = "Line of a subscription's renewal terms"
    _order = "sequence, id"

    change_id = fields.Many2one("subscription.renewal.change", required=True, index=True, ondelete="cascade")
    sequence = fields.Integer(default=10)
    line_id = fields.Many2one("subscription.line", string="Current line", ondelete="set null")
    product_id = fields.Many2one("product.product", required=True, ondelete="restrict")
    quantity = fields.Float(digits="Product Unit", required=True)
    price_unit = fields.Float(string="Unit price", digits="Product Price")
    discount = fields.Float(string="Discount (%)", digits="Discount")


class SubscriptionSubscription(models.Model):
    _inherit = "subscription.subscription"

    renewal_change_ids = fields.One2many(
        "subscription.renewal.change", "subscription_id", string="Renewal terms",
        groups="subscription_billing.group_subscription_viewer,subscription_billing.group_subscription_user")
    renewal_change_summary = fields.Char(
        compute="_compute_renewal_change_summary", string="Next term",
        groups="subscription_billing.group_subscription_viewer,subscription_billing.group_subscription_user")

    def _compute_renewal_change_summary(self):
        changes = self.env["subscription.renewal.change"].sudo().search(
            [("subscription_id", "in", self.ids), ("state", "=", "scheduled")])
        by_sub = {change.subscription_id: change for change in changes}
        for sub in self:
            change = by_sub.get(sub)
            sub.renewal_change_summary = change._summary() if change else False

    def _action_close(self, state, reason, note=False, date_closed=None):
        res = super()._action_close(state, reason, note=note, date_closed=date_closed)
        self._cancel_renewal_changes()
        return res

    def _schedule_end(self, date_end, reason=None, note=False, author=None):
        res = super()._schedule_end(date_end, reason=reason, note=note, author=author)
        self._cancel_renewal_changes()
        return res

    def _cancel_renewal_changes(self):
        """These subscriptions end (or will, before a new term): their waiting renewal terms go."""
        self.env["subscription.renewal.change"].sudo().search(
            [("subscription_id", "in", self.ids), ("state", "=", "scheduled")]).write({"state": "cancelled"})

    def action_cancel_renewal_change(self):
        """Cancel the renewal terms waiting for the next term (see ``subscription.renewal.change``)."""
        return self.renewal_change_ids.filtered(lambda c: c.state == "scheduled").action_cancel()

    def _pending_renewal_change(self):
        """The renewal terms waiting for this subscription's next term (empty if none)."""
        self.ensure_one()
        return self.env["subscription.renewal.change"].sudo().search(
            [("subscription_id", "=", self.id), ("state", "=", "scheduled")], limit=1)

    def _renewal_day(self):
        """First day of the next term: the day after the current term's end (None when open-ended
        or the subscription is not running)."""
        self.ensure_one()
        if self.state not in const.RUNNING_STATES or not self.date_end:
            return None
        return self.date_end + timedelta(days=1)

    def _renew_with_terms(self, plan, lines_vals, date_start=None, lead=None):
        """Renew this subscription for a new term, with new terms (plan, lines, prices) from the
        first day of that term.

        A running subscription that does not renew by itself is renewed now (its term is extended,
        see ``action_renew``) and the new terms wait for the day after the current term's end; an
        auto-renewing one only gets the new terms on that day. An expired one restarts on
        ``date_start`` (default: today) with the new terms at once. Unchanged terms simply renew.

        :param plan: the ``subscription.plan`` of the new term
        :param list lines_vals: the lines of the new term, ``[{"line_id": id or False, "product_id",
            "quantity", "price_unit", "discount"}]`` (current lines not listed are dropped then)
        :param date_start: first day of an expired subscription's new term (date or string)
        :param lead: the renewal ``crm.lead`` this renewal comes from, if any
        :return: the ``subscription.renewal.change`` scheduled (empty when applied at once or unchanged)
        :raise UserError: see ``action_renew``; a line with no quantity or a negative price; no line;
            the plan belongs to another company
        """
        self.ensure_one()
        self.check_access("write")
        new_lines = self._new_lines(lines_vals, plan)
        self._check_change(plan, new_lines, "renewal")
        Change = self.env["subscription.renewal.change"].sudo()
        changed = plan != self.plan_id or self._lines_differ(new_lines)
        if self.state == "expired":
            self.action_renew(date_start=date_start)
            if changed:
                self._apply_change(plan, lines_vals, "renewal")
            return Change
        waiting = self._pending_renewal_change()
        day = waiting.date_effective or self._renewal_day()
        if not day:
            raise UserError(self.env._("%(sub)s has no term end: change it with Change plan or quantities.",
                                       sub=self.display_name))
        if not waiting and not self._renews():
            self.action_renew()
        if waiting:
            # Terms already agreed for the next term: these replace them (the term is not extended again).
            waiting.write({"state": "cancelled"})
            waiting.flush_recordset(["state"])  # before the new terms' row (one waiting per subscription)
            if not changed:
                self.message_post(body=self.env._(
                    "Renewal terms from %(date)s withdrawn by %(user)s: the next term keeps the current plan and "
                    "lines.", date=format_date(self.env, day), user=self.env.user.name))
        if not changed:
            return Change
        untaxed, total = self._lines_total([(line, None, 1) for line in new_lines])
        change = Change.create({
            "subscription_id": self.id, "plan_id": plan.id, "date_effective": day, "amount_untaxed": untaxed,
            "amount_total": total, "lead_id": lead.id if lead else False,
            "line_ids": [fields.Command.create({
                "sequence": index, "line_id": vals.get("line_id") or False, "product_id": line.product_id.id,
                "quantity": line.quantity, "price_unit": line.price_unit, "discount": line.discount})
                for index, (vals, line) in enumerate(zip(lines_vals, new_lines, strict=True))],
        })
        self.message_post(body=self.env._("New terms agreed at the renewal by %(user)s: %(summary)s.",
                                          user=self.env.user.name, summary=change._summary()))
        return change
