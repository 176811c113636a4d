import uuid
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import format_date

from .. import const
from ..tools import queue_mails
from ..utils import period_end

# Marks the one write that may change ``state`` (see _update_state). An object, not a string:
# contexts sent over RPC are JSON, so no caller can forge it.
_STATE_CHANGE = object()


class SubscriptionSubscription(models.Model):
    """The subscription record and its lifecycle.

    Separate concerns of the same model live in their own files, as Odoo core does with
    ``account_journal_dashboard.py``: ``subscription_billing.py`` (the billing day),
    ``subscription_autopay.py`` (enrollment and payment methods), ``subscription_dunning.py``
    (overdue manual payers, reminders, reactivation on payment).
    """

    _name = "subscription.subscription"
    _description = "Subscription"
    _inherit = ["portal.mixin", "mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _check_company_auto = True
    _mail_post_access = "read"

    # === FIELDS === #

    name = fields.Char(
        string="Reference", required=True, readonly=True, copy=False, default="/", index="trigram",
    )
    partner_id = fields.Many2one(
        "res.partner", string="Customer", required=True, tracking=True, index=True, check_company=True,
    )
    commercial_partner_id = fields.Many2one(
        related="partner_id.commercial_partner_id", store=True, index=True, string="Commercial entity",
    )
    user_id = fields.Many2one(
        "res.users", string="Salesperson", tracking=True, index=True,
        default=lambda self: self.env.user,
        domain="[('share', '=', False)]",
    )
    team_id = fields.Many2one("crm.team", string="Sales Team", check_company=True, tracking=True)
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company,
    )
    currency_id = fields.Many2one(
        "res.currency", required=True, compute="_compute_currency_id", store=True, readonly=False,
        precompute=True,
    )
    plan_id = fields.Many2one(
        "subscription.plan", required=True, tracking=True, index=True, check_company=True,
    )
    auto_renew = fields.Boolean(
        compute="_compute_auto_renew", store=True, readonly=False, precompute=True, tracking=True,
        help="At the end of the term, start another term automatically instead of expiring.",
    )
    line_ids = fields.One2many(
        "subscription.line", "subscription_id", string="Lines", copy=True, groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    fiscal_position_id = fields.Many2one(
        "account.fiscal.position", compute="_compute_fiscal_position_id", store=True, readonly=False,
        precompute=True, check_company=True,
        help="Maps the products' taxes for this customer (country, VAT status).",
    )
    date_start = fields.Date(
        string="Start date", required=True, default=fields.Date.context_today, tracking=True,
    )
    date_end = fields.Date(
        string="End of term", tracking=True, copy=False,
        help="Last day of the current commitment term; empty for open-ended plans.",
    )
    next_invoice_date = fields.Date(
        tracking=True, copy=False, index=True,
        help="Start of the next period to invoice.",
    )
    state = fields.Selection(
        const.SUBSCRIPTION_STATES, required=True, default="draft", tracking=True, index=True, copy=False,
        readonly=True, group_expand=True,
        help="Changes only through the lifecycle actions and the scheduled actions.",
    )
    close_reason_id = fields.Many2one("subscription.close.reason", tracking=True, copy=False)
    close_note = fields.Text(
        copy=False, groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    date_closed = fields.Date(copy=False, readonly=True)
    note = fields.Html(
        string="Terms and conditions", groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    sale_order_id = fields.Many2one(
        "sale.order", string="Sales order", copy=False, readonly=True, index="btree_not_null",
        help="The confirmed quotation this subscription was started from.",
    )

    amount_untaxed = fields.Monetary(
        compute="_compute_amounts", store=True, string="Untaxed amount", groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    amount_tax = fields.Monetary(
        compute="_compute_amounts", store=True, string="Taxes", groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    amount_total = fields.Monetary(
        compute="_compute_amounts", store=True, string="Total per period", groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    company_currency_id = fields.Many2one(related="company_id.currency_id", string="Company currency")
    recurring_monthly = fields.Monetary(
        compute="_compute_recurring_monthly", store=True, currency_field="company_currency_id",
        string="MRR", aggregator="sum",
        help="Untaxed recurring revenue normalized to one month, in the company currency.",
        groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )

    invoice_ids = fields.One2many(
        "account.move", "subscription_id", string="Invoices", readonly=True, groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    charge_ids = fields.One2many(
        "subscription.charge", "subscription_id", string="Autopay charges", readonly=True,
        groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    invoice_count = fields.Integer(
        compute="_compute_invoice_count", groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    is_expiring = fields.Boolean(
        compute="_compute_is_expiring", search="_search_is_expiring", string="Expiring soon",
    )
    health = fields.Selection(
        [("ok", "In good standing"), ("expiring", "Expiring soon"), ("overdue", "Overdue"),
         ("failed", "Payment failed"), ("closed", "Closed")],
        compute="_compute_health",
    )
    color = fields.Integer(compute="_compute_health")

    _date_end_after_start = models.Constraint(
        "CHECK(date_end IS NULL OR date_end >= date_start)", "The end of the term cannot be before the start date."
    )
    _name_company_uniq = models.UniqueIndex(
        "(name, company_id) WHERE name != '/'", "A subscription with this reference already exists."
    )
    _state_next_invoice_idx = models.Index("(state, next_invoice_date)")

    # === COMPUTE METHODS === #

    @api.depends("company_id", "partner_id")
    def _compute_currency_id(self):
        for sub in self:
            if not sub.currency_id or sub.state == "draft":
                pricelist_currency = sub.partner_id.with_company(sub.company_id).property_product_pricelist.currency_id
                sub.currency_id = pricelist_currency or sub.company_id.currency_id or self.env.company.currency_id

    @api.depends("plan_id")
    def _compute_auto_renew(self):
        for sub in self:
            sub.auto_renew = sub.plan_id.auto_renew

    @api.depends("partner_id", "company_id")
    def _compute_fiscal_position_id(self):
        cache = {}
        for sub in self:
            if not sub.partner_id:
                sub.fiscal_position_id = False
                continue
            key = (sub.company_id.id, sub.partner_id.id)
            if key not in cache:
                cache[key] = (
                    self.env["account.fiscal.position"].with_company(sub.company_id)._get_fiscal_position(sub.partner_id)
                )
            sub.fiscal_position_id = cache[key]

    @api.depends("line_ids.price_subtotal", "line_ids.price_total", "currency_id", "company_id")
    def _compute_amounts(self):
        AccountTax = self.env["account.tax"]
        for sub in self:
            base_lines = [line._prepare_base_line_for_taxes_computation() for line in sub.line_ids]
            AccountTax._add_tax_details_in_base_lines(base_lines, sub.company_id)
            AccountTax._round_base_lines_tax_details(base_lines, sub.company_id)
            totals = AccountTax._get_tax_totals_summary(
                base_lines=base_lines,
                currency=sub.currency_id or sub.company_id.currency_id,
                company=sub.company_id,
            )
            sub.amount_untaxed = totals["base_amount_currency"]
            sub.amount_tax = totals["tax_amount_currency"]
            sub.amount_total = totals["total_amount_currency"]

    @api.depends("amount_untaxed", "plan_id.billing_period_value", "plan_id.billing_period_unit", "state",
                 "currency_id", "company_id")
    def _compute_recurring_monthly(self):
        today = fields.Date.context_today(self)
        for sub in self:
            if sub.state not in const.RUNNING_STATES or not sub.plan_id:
                sub.recurring_monthly = 0.0
                continue
            monthly = sub.amount_untaxed * sub.plan_id._monthly_factor()
            company_currency = sub.company_id.currency_id
            if sub.currency_id and sub.currency_id != company_currency:
                monthly = sub.currency_id._convert(monthly, company_currency, sub.company_id, today)
            sub.recurring_monthly = company_currency.round(monthly)

    def _compute_invoice_count(self):
        counts = dict(
            self.env["account.move"]._read_group(
                [("subscription_id", "in", self.ids), ("move_type", "=", "out_invoice")],
                ["subscription_id"], ["__count"],
            )
        )
        for sub in self:
            sub.invoice_count = counts.get(sub, 0)

    @api.depends("state", "date_end", "auto_renew", "plan_id.renewal_reminder_days")
    def _compute_is_expiring(self):
        today = fields.Date.context_today(self)
        for sub in self:
            sub.is_expiring = bool(
                sub.state in const.RUNNING_STATES
                and not sub.auto_renew
                and sub.date_end
                and sub.date_end - timedelta(days=sub.plan_id.renewal_reminder_days) <= today
            )

    def _search_is_expiring(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on 'Expiring soon'."))
        today = fields.Date.context_today(self)
        self.env["subscription.subscription"].flush_model(["state", "auto_renew", "date_end", "plan_id"])
        self.env["subscription.plan"].flush_model(["renewal_reminder_days"])
        self.env.cr.execute(
            """
            SELECT s.id FROM subscription_subscription s
              JOIN subscription_plan p ON p.id = s.plan_id
             WHERE s.state IN %s AND NOT COALESCE(s.auto_renew, FALSE) AND s.date_end IS NOT NULL
               AND s.date_end - COALESCE(p.renewal_reminder_days, 0) <= %s
            """,
            [const.RUNNING_STATES, today],
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        positive = (operator == "=") == value
        return [("id", "in" if positive else "not in", ids)]

    @api.depends("state", "is_expiring", "has_overdue_invoice")
    def _compute_health(self):
        colors = {"ok": 10, "expiring": 3, "overdue": 2, "failed": 1, "closed": 0}
        for sub in self:
            if sub.state in const.CLOSED_STATES:
                health = "closed"
            elif sub.state in ("past_due", "suspended"):
                health = "failed"
            elif sub.has_overdue_invoice:
                health = "overdue"
            elif sub.is_expiring:
                health = "expiring"
            else:
                health = "ok"
            sub.health = health
            sub.color = colors[health]

    def _compute_access_url(self):
        for sub in self:
            sub.access_url = f"/my/subscriptions/{sub.id}"

    # === CONSTRAINT METHODS === #

    @api.constrains("date_start", "date_end", "next_invoice_date")
    def _check_dates(self):
        for sub in self:
            if sub.date_end and sub.date_end < sub.date_start:
                raise ValidationError(
                    self.env._("%(sub)s: the end of the term cannot be before the start date.", sub=sub.display_name)
                )
            if sub.next_invoice_date and sub.next_invoice_date < sub.date_start:
                raise ValidationError(
                    self.env._("%(sub)s: the next invoice date cannot be before the start date.", sub=sub.display_name)
                )

    @api.constrains("currency_id", "company_id")
    def _check_currency_active(self):
        for sub in self:
            if sub.currency_id and not sub.currency_id.active:
                raise ValidationError(
                    self.env._("Currency %(currency)s is not active.", currency=sub.currency_id.name)
                )

    @api.constrains("state", "line_ids")
    def _check_lines_when_running(self):
        for sub in self:
            if sub.state in const.BILLABLE_STATES and not sub.line_ids:
                raise ValidationError(
                    self.env._("%(sub)s: a running subscription needs at least one line.", sub=sub.display_name)
                )

    # === ONCHANGE METHODS === #

    @api.onchange("plan_id")
    def _onchange_plan_id(self):
        for line in self.line_ids:
            line._compute_price_unit()

    # === CRUD METHODS === #

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            # The token of the links in e-mails (failure notices, reminders) exists from the start.
            vals.setdefault("access_token", str(uuid.uuid4()))
            if vals.get("name", "/") == "/":
                company = self.env["res.company"].browse(vals.get("company_id")) or self.env.company
                vals["name"] = self.env["ir.sequence"].with_company(company).next_by_code(
                    "subscription.subscription", sequence_date=vals.get("date_start")
                ) or "/"
        subs = super().create(vals_list)
        # Subscriptions created already running (import, demo, RPC) get their dates.
        subs.filtered(lambda s: s.state in const.RUNNING_STATES)._init_running_dates()
        return subs

    def write(self, vals):
        if "state" in vals and self.env.context.get("subscription_state_change") is not _STATE_CHANGE:
            self.check_access("write")  # who may not write at all hears that first
            changed = self.filtered(lambda s: s.state != vals["state"])
            if changed:
                raise UserError(self.env._(
                    "The status of %(subs)s changes only through its actions (Start, Suspend, Reactivate, "
                    "Renew, Close) and the scheduled actions, not by editing it.",
                    subs=", ".join(changed.mapped("display_name")),
                ))
        if "plan_id" in vals or "company_id" in vals or "currency_id" in vals:
            locked = self.filtered(lambda s: s.state != "draft" and s.invoice_ids)
            if locked:
                if "plan_id" in vals and any(s.plan_id.id != vals["plan_id"] for s in locked):
                    raise UserError(self.env._(
                        "The plan of an invoiced subscription cannot be changed: close it and start a new one."
                    ))
                if "company_id" in vals and any(s.company_id.id != vals["company_id"] for s in locked):
                    raise UserError(self.env._("The company of an invoiced subscription cannot be changed."))
                if "currency_id" in vals and any(s.currency_id.id != vals["currency_id"] for s in locked):
                    raise UserError(self.env._("The currency of an invoiced subscription cannot be changed."))
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_invoiced(self):
        for sub in self:
            if sub.state not in ("draft", "cancelled") or sub.invoice_ids:
                raise UserError(self.env._(
                    "%(sub)s cannot be deleted: only draft or cancelled subscriptions without invoices can be. "
                    "Close it instead.", sub=sub.display_name,
                ))

    # === ACTION METHODS === #

    def action_start(self):
        """Start draft subscriptions: they become active and are billed from their start date.

        :return: True
        :raise UserError: a subscription is not draft, or has no lines
        """
        not_draft = self.filtered(lambda s: s.state != "draft")
        if not_draft:
            raise UserError(self.env._(
                "Only draft subscriptions can be started (%(subs)s is not draft).",
                subs=", ".join(not_draft.mapped("display_name")),
            ))
        for sub in self:
            if not sub.line_ids:
                raise UserError(self.env._("%(sub)s has no lines: add what the customer subscribes to.",
                                           sub=sub.display_name))
        self._update_state("active")
        self._init_running_dates()
        return True

    def action_suspend(self):
        """Suspend running subscriptions: no new invoices until reactivated or paid.

        :return: True
        :raise UserError: a subscription is neither active nor past due
        """
        wrong = self.filtered(lambda s: s.state not in const.BILLABLE_STATES)
        if wrong:
            raise UserError(self.env._(
                "Only active or past due subscriptions can be suspended (%(subs)s).",
                subs=", ".join(wrong.mapped("display_name")),
            ))
        self._update_state("suspended", message=self.env._("Suspended by %(user)s.", user=self.env.user.name))
        return True

    def action_reactivate(self):
        """Bring past due or suspended subscriptions back to active.

        :return: True
        :raise UserError: a subscription is neither past due nor suspended
        """
        wrong = self.filtered(lambda s: s.state not in ("past_due", "suspended"))
        if wrong:
            raise UserError(self.env._(
                "Only past due or suspended subscriptions can be reactivated (%(subs)s).",
                subs=", ".join(wrong.mapped("display_name")),
            ))
        self._update_state("active", message=self.env._("Reactivated by %(user)s.", user=self.env.user.name))
        return True

    def action_renew(self):
        """Extend the commitment by one term; an expired subscription becomes active again.

        :return: True
        :raise UserError: a subscription is draft or cancelled, or its plan is open-ended
        """
        for sub in self:
            if sub.state not in (*const.RUNNING_STATES, "expired"):
                raise UserError(self.env._("%(sub)s cannot be renewed in state %(state)s.",
                                           sub=sub.display_name, state=sub._state_label()))
            if not sub.plan_id.term_value or not sub.date_end:
                raise UserError(self.env._("%(sub)s has no commitment term to renew (open-ended plan).",
                                           sub=sub.display_name))
        for sub in self:
            new_end = sub._term_end(sub.date_end + timedelta(days=1))
            sub.write({"date_end": new_end})
            if sub.state == "expired":
                sub._update_state("active", vals={"close_reason_id": False, "date_closed": False, "close_note": False})
            sub.message_post(body=self.env._("Renewed until %(date)s.", date=format_date(self.env, new_end)))
        return True

    def action_cancel(self):
        """Cancel subscriptions (no further invoices); the close wizard gives a reason.

        The reason is taken from the context key ``close_reason_id`` when given.

        :return: True
        :raise UserError: a subscription is already closed
        """
        reason = self.env["subscription.close.reason"].browse(self.env.context.get("close_reason_id"))
        return self._action_close("cancelled", reason or self.env.ref(
            "subscription_billing.close_reason_cancelled", raise_if_not_found=False))

    def action_open_close_wizard(self):
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Close subscription"),
            "res_model": "subscription.close.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"active_model": self._name, "active_ids": self.ids},
        }

    def action_view_invoices(self, invoices=None):
        invoices = invoices if invoices is not None else self.invoice_ids
        action = self.env["ir.actions.actions"]._for_xml_id("account.action_move_out_invoice_type")
        if len(invoices) == 1:
            action.update(res_id=invoices.id, views=[(self.env.ref("account.view_move_form").id, "form")])
        else:
            action["domain"] = [("id", "in", invoices.ids)]
        action["context"] = {"default_move_type": "out_invoice", "create": False}
        return action

    # === BUSINESS METHODS === #

    def _update_state(self, target, message=None, vals=None):
        """Move these subscriptions to ``target``: the only way a subscription's state changes.

        Idempotent: subscriptions already in ``target`` are left alone (no message). The allowed
        moves are ``const.STATE_TRANSITIONS`` (the state diagram of the README).

        :param str target: the new state
        :param str message: posted in the chatter of each subscription that moved (the state
            change itself is tracked)
        :param dict vals: more values written together with the state
        :return: the subscriptions whose state changed
        :raise UserError: a subscription cannot reach ``target`` from its current state
        """
        allowed = const.STATE_TRANSITIONS.get(target, ())  # nothing goes back to draft
        moving = self.filtered(lambda s: s.state != target)
        wrong = moving.filtered(lambda s: s.state not in allowed)
        if wrong:
            labels = dict(self._fields["state"]._description_selection(self.env))
            raise UserError(self.env._(
                "%(subs)s cannot become %(target)s from %(state)s.",
                subs=", ".join(wrong.mapped("display_name")), target=labels[target],
                state=", ".join(sorted({sub._state_label() for sub in wrong})),
            ))
        if moving:
            moving.with_context(subscription_state_change=_STATE_CHANGE).write(dict(vals or {}, state=target))
            if message:
                for sub in moving:
                    sub.message_post(body=message)
        return moving

    def _init_running_dates(self):
        """Fill the term end and the first invoice date of subscriptions that just started."""
        for sub in self:
            vals = {}
            if not sub.next_invoice_date:
                vals["next_invoice_date"] = sub.date_start
            if not sub.date_end and sub.plan_id.term_value:
                vals["date_end"] = sub._term_end(sub.date_start)
            if vals:
                sub.write(vals)

    def _term_end(self, term_start):
        """Last day of a commitment term starting on ``term_start`` (None when open-ended)."""
        self.ensure_one()
        plan = self.plan_id
        if not plan.term_value:
            return None
        return period_end(term_start, plan.term_value, plan.term_unit, anchor_day=self.date_start.day)

    def _action_close(self, state, reason, note=False):
        """Close subscriptions with ``state`` (expired or cancelled) and a reason.

        Retries and queued dunning e-mails stop at once.

        :param str state: ``expired`` or ``cancelled``
        :param reason: a ``subscription.close.reason`` (may be empty)
        :param str note: free text kept on the subscription
        :return: True
        :raise UserError: a subscription is already closed
        """
        already = self.filtered(lambda s: s.state in const.CLOSED_STATES)
        if already:
            raise UserError(self.env._("%(subs)s is already closed.",
                                       subs=", ".join(already.mapped("display_name"))))
        self._update_state(state, vals={
            "close_reason_id": reason.id if reason else False,
            "close_note": note or False,
            "date_closed": fields.Date.context_today(self),
        })
        self.env["subscription.charge"]._stop_retries(self)
        return True

    def _stop_renewal_by_customer(self, author=None, by_customer=True):
        """Renewal at the end of the term is turned off from the portal (where the plan allows it).

        :param author: the ``res.partner`` the change is attributed to (default: the customer)
        :param bool by_customer: the customer made the change (else staff, from the portal)
        :raise UserError: the plan does not let customers stop renewal, or nothing renews
        """
        self.ensure_one()
        if not self.plan_id.customer_can_stop_renewal or not self.auto_renew or self.state not in const.RUNNING_STATES:
            raise UserError(self.env._("The renewal of %(sub)s cannot be stopped here.", sub=self.display_name))
        self.write({"auto_renew": False})
        author = author or self.partner_id
        end = format_date(self.env, self.date_end)
        body = self.env._(
            "The customer turned off the renewal: the subscription ends on %(date)s.", date=end,
        ) if by_customer else self.env._(
            "%(who)s turned off the renewal: the subscription ends on %(date)s.", who=author.name, date=end)
        self.message_post(body=body, author_id=author.id, partner_ids=self.user_id.partner_id.ids)
        return True

    # === TOOLING === #

    def _state_label(self):
        return dict(self._fields["state"]._description_selection(self.env)).get(self.state, self.state)

    def _send_template(self, xmlid):
        """Queue the e-mail template ``xmlid`` for these subscriptions (never raises)."""
        return queue_mails(self.env.ref(xmlid, raise_if_not_found=False), self)

    def _schedule_salesperson_activity(self, summary, note=False, activity_xmlid="mail.mail_activity_data_todo",
                                       date_deadline=None):
        """An activity for each subscription's salesperson (the administrator when there is none)."""
        admin = self.env.ref("base.user_admin")
        for sub in self:
            sub.activity_schedule(activity_xmlid, date_deadline=date_deadline, summary=summary, note=note or "",
                                  user_id=(sub.user_id or admin).id)
