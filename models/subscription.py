import uuid
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.fields import Domain
from odoo.tools import format_date

from .. import const
from ..tools import log_notes, queue_mails
from ..utils import add_period, period_end

# Marks the one write that may change ``state`` (see _update_state). An object, not a string:
# contexts sent over RPC are JSON, so no caller can forge it.
_STATE_CHANGE = object()
# Marks the write of a plan change through *Change plan or quantities* (plans lock once invoiced).
_PLAN_CHANGE = object()
# Fields whose change can change a subscription's MRR: the revenue event log follows them.
MRR_FIELDS = frozenset({"state", "plan_id", "currency_id", "company_id", "line_ids", "is_trial"})


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
        precompute=True, check_company=True, tracking=True,
        help="Maps the products' taxes for this customer (country, VAT status). It follows the customer "
        "(each invoice uses their current one) unless fixed here by hand.",
    )
    is_fiscal_position_manual = fields.Boolean(
        string="Fiscal position fixed by hand", copy=False, tracking=True,
        help="Set when the fiscal position was chosen by hand (it then stays); clear it to follow the customer again.",
    )
    date_start = fields.Date(
        string="Start date", required=True, default=fields.Date.context_today, tracking=True,
    )
    date_end = fields.Date(
        string="End of term", tracking=True, copy=False,
        help="Last day of the current commitment term; empty for open-ended plans. A date set by hand "
        "is the end: nothing is billed after it and no renewal moves it.",
    )
    is_end_scheduled = fields.Boolean(
        string="Ends on the end date", tracking=True, copy=False,
        help="The end date was set by hand or by the customer's notice: the last period is cut at it, no "
        "renewal moves it, and the subscription closes on that day with its close reason.",
    )
    date_suspended = fields.Date(
        string="Suspended since", copy=False, readonly=True,
        help="Day the subscription was last suspended: the time from then to its reactivation is not invoiced "
        "unless the plan bills suspended time.",
    )
    date_anchor = fields.Date(
        string="Billing anchor", copy=False, readonly=True,
        help="Day periods and terms are counted from: the start date, or the day billing restarted after "
        "a renewal of an ended subscription or a reactivation that skipped suspended time.",
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
         ("failed", "Payment failed"), ("suspended", "Suspended"), ("paused", "Paused"), ("closed", "Closed")],
        compute="_compute_health",
        help="Payment failed: autopay's last charge of an unpaid invoice failed. Overdue: an invoice is "
        "unpaid past its due date. Suspended: by staff, after failed payments or an unpaid invoice. "
        "Paused: not invoiced until resumed.",
    )
    color = fields.Integer(compute="_compute_health")
    partner_email = fields.Char(related="partner_id.email", string="Customer e-mail")
    has_next_invoice = fields.Boolean(
        compute="_compute_has_next_invoice",
        help="A next invoice will come: billed, and not past the end of a term that does not renew.",
    )
    product_summary = fields.Char(
        compute="_compute_product_summary", string="Subscribed to",
        help="What the customer subscribed to, as e-mails and the portal name it: the first product "
        "('Trendhouse Weekly'), and how many more.",
    )

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
            if sub.is_fiscal_position_manual and sub.fiscal_position_id:
                continue  # fixed by hand: it stays
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
                 "currency_id", "company_id", "is_trial")
    def _compute_recurring_monthly(self):
        today = fields.Date.context_today(self)
        for sub in self:
            # 0 while suspended, paused, on trial or ended
            if sub.state not in const.BILLABLE_STATES or not sub.plan_id or sub.is_trial:
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

    @api.depends("state", "date_end", "auto_renew", "is_end_scheduled", "plan_id.renewal_reminder_days")
    def _compute_is_expiring(self):
        today = fields.Date.context_today(self)
        for sub in self:
            sub.is_expiring = bool(
                sub.state in const.RUNNING_STATES
                and (sub.state != "paused" or sub.is_end_scheduled)  # a paused term's end moves on resume
                and not sub.auto_renew
                and sub.date_end
                and sub.date_end - timedelta(days=sub.plan_id.renewal_reminder_days) <= today
            )

    def _search_is_expiring(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on 'Expiring soon'."))
        today = fields.Date.context_today(self)
        self.env["subscription.subscription"].flush_model(
            ["state", "auto_renew", "date_end", "is_end_scheduled", "plan_id"])
        self.env["subscription.plan"].flush_model(["renewal_reminder_days"])
        self.env.cr.execute(
            """
            SELECT s.id FROM subscription_subscription s
              JOIN subscription_plan p ON p.id = s.plan_id
             WHERE s.state IN %s AND NOT COALESCE(s.auto_renew, FALSE) AND s.date_end IS NOT NULL
               AND (s.state != 'paused' OR s.is_end_scheduled)
               AND s.date_end - COALESCE(p.renewal_reminder_days, 0) <= %s
            """,
            [const.RUNNING_STATES, today],
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        positive = (operator == "=") == value
        return [("id", "in" if positive else "not in", ids)]

    @api.depends("state", "is_expiring", "has_overdue_invoice", "charge_ids.state")
    def _compute_health(self):
        colors = {"ok": 10, "expiring": 3, "overdue": 2, "failed": 1, "suspended": 1, "paused": 4, "closed": 0}
        collection = self.sudo()._collection_data()
        for sub in self:
            values = collection.get(sub) or {}
            if sub.state in const.CLOSED_STATES:
                health = "closed"
            elif sub.state == "suspended":
                health = "suspended"
            elif values.get("failed"):
                health = "failed"
            elif values.get("overdue_since") or sub.state == "past_due":
                health = "overdue"
            elif sub.state == "paused":
                health = "paused"
            elif sub.is_expiring:
                health = "expiring"
            else:
                health = "ok"
            sub.health = health
            sub.color = colors[health]

    @api.depends("state", "next_invoice_date", "date_end", "auto_renew", "is_end_scheduled", "plan_id.term_value")
    def _compute_has_next_invoice(self):
        for sub in self:
            sub.has_next_invoice = bool(
                sub.state in const.BILLABLE_STATES and sub.next_invoice_date
                and not (sub.date_end and sub.next_invoice_date > sub.date_end and not sub._renews()))

    @api.depends("line_ids.product_id")
    def _compute_product_summary(self):
        for sub in self:
            products = sub.line_ids.product_id
            if len(products) > 1:
                sub.product_summary = self.env._("%(product)s and %(count)s more", product=products[0].name,
                                                 count=len(products) - 1)
            else:
                sub.product_summary = products.name or sub.plan_id.name or ""

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

    @api.constrains("date_start", "date_end", "next_invoice_date")
    def _check_dates_in_range(self):
        """Dates accounting can hold: the start within ``const.MAX_YEARS_FROM_TODAY`` years of today,
        the other dates within that many years of the start (no year 1900 or 9999 by a typo)."""
        years = const.MAX_YEARS_FROM_TODAY
        for sub in self:
            sub._check_date_in_range(sub.date_start)
            limit = add_period(sub.date_start, years, "year")
            for day in (sub.date_end, sub.next_invoice_date):
                if day and day > limit:
                    raise ValidationError(self.env._(
                        "%(sub)s: %(date)s is more than %(years)s years after the start date.",
                        sub=sub.display_name, date=format_date(self.env, day), years=years))

    @api.constrains("next_invoice_date")
    def _check_next_invoice_date_not_invoiced(self):
        """The next invoice date cannot go back over periods that have a live invoice: re-invoicing a
        period is done with *Invoice a period again*, never by moving the dates."""
        if self.env.context.get("subscription_plan_change") is _PLAN_CHANGE:
            return  # a plan change restarts billing today; the overlap was credited
        Move = self.env["account.move"].sudo()
        invoiced = dict(Move._read_group(
            Domain("subscription_id", "in", self.ids) & Move._subscription_live_domain(),
            ["subscription_id"], ["subscription_period_end:max"],
        ))
        for sub in self:
            last = invoiced.get(sub)
            if sub.next_invoice_date and last and sub.next_invoice_date <= last:
                raise ValidationError(self.env._(
                    "%(sub)s: the days up to %(last)s are already invoiced, so the next period must start after "
                    "that. To invoice a past period again (e.g. after cancelling its invoice), use "
                    "'Invoice a period again'.",
                    sub=sub.display_name, last=format_date(self.env, last)))

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
            if sub.state in const.RUNNING_STATES and not sub.line_ids:
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
        for vals in vals_list:
            # Created draft, or running for an import of live subscriptions; every other state is
            # reached through the lifecycle, which records why.
            if vals.get("state", "draft") not in ("draft", "active"):
                raise UserError(self.env._(
                    "A subscription is created draft or active; %(state)s is reached through its actions.",
                    state=dict(self._fields["state"]._description_selection(self.env)).get(vals["state"],
                                                                                           vals["state"])))
            if "date_anchor" in vals:
                raise UserError(self.env._("The billing anchor is set by the subscription itself."))
        subs = super(SubscriptionSubscription, self.with_context(subscription_term_write=True)).create(
            vals_list).with_env(self.env)
        for sub, vals in zip(subs, vals_list, strict=True):
            if vals.get("fiscal_position_id") and "is_fiscal_position_manual" not in vals:
                sub.is_fiscal_position_manual = sub.fiscal_position_id != sub._customer_fiscal_position()
            if vals.get("date_end") and "is_end_scheduled" not in vals:
                # An end given by hand is the end, unless it is just the plan's own term end.
                sub.is_end_scheduled = not sub.plan_id.term_value or sub.date_end != sub._term_end(sub.date_start)
        # Subscriptions created already running (import, demo, RPC) get their dates.
        running = subs.filtered(lambda s: s.state in const.RUNNING_STATES)
        running._init_running_dates()
        self.env["subscription.mrr.log"]._sync(running)
        return subs

    def write(self, vals):
        vals = self._prepare_hand_written_vals(vals)
        self._check_protected_fields(vals)
        res = super().write(vals)
        if vals.get("is_end_scheduled") and vals.get("date_end"):
            self._warn_invoiced_past_end()
        if vals.get("auto_renew") and "close_reason_id" not in vals:
            # Renewing again: the reason given for not renewing no longer holds.
            super(SubscriptionSubscription, self.filtered(
                lambda s: s.state in const.RUNNING_STATES and not s.is_end_scheduled and s.close_reason_id,
            )).write({"close_reason_id": False})
        if vals.get("is_end_scheduled") is False and "date_end" in vals and not vals["date_end"]:
            # The scheduled end is removed: term plans get their term end back.
            for sub in self.filtered(lambda s: s.state in const.RUNNING_STATES and s.plan_id.term_value):
                sub._set_term_end(sub._current_term_end())
        if ("fiscal_position_id" in vals and "is_fiscal_position_manual" not in vals
                and not self.env.context.get("subscription_fiscal_position_auto")):
            # Chosen by hand, it stays; unless it is what the customer's own would be anyway.
            manual = self.filtered(lambda s: s.fiscal_position_id != s._customer_fiscal_position())
            if manual:
                super(SubscriptionSubscription, manual).write({"is_fiscal_position_manual": True})
            if self - manual:
                super(SubscriptionSubscription, self - manual).write({"is_fiscal_position_manual": False})
        if MRR_FIELDS.intersection(vals):
            self.env["subscription.mrr.log"]._sync(self)
        return res

    def _prepare_hand_written_vals(self, vals):
        """What dates written by hand (form, import, RPC) mean, as opposed to the subscription's own
        writes (context ``subscription_term_write``): an end date is the end, a next invoice date
        restarts the periods on that day; the billing anchor is never written from outside."""
        if self.env.context.get("subscription_term_write"):
            return vals
        if "date_anchor" in vals:
            raise UserError(self.env._("The billing anchor is set by the subscription itself."))
        if vals.get("next_invoice_date"):
            vals = dict(vals, date_anchor=vals["next_invoice_date"])
        if "date_end" in vals:
            vals = dict(vals, is_end_scheduled=bool(vals["date_end"]))
        return vals

    def _check_protected_fields(self, vals):
        """The state moves only through ``_update_state``; plan, company and currency are fixed once
        invoiced (the model's ``_get_protected_fields``, as sale order lines have).

        :raise UserError: with what to do instead
        """
        if "state" in vals and self.env.context.get("subscription_state_change") is not _STATE_CHANGE:
            self.check_access("write")  # who may not write at all hears that first
            changed = self.filtered(lambda s: s.state != vals["state"])
            if changed:
                raise UserError(self.env._(
                    "The status of %(subs)s changes only through its actions (Start, Pause, Resume, Suspend, "
                    "Reactivate, Renew, Close) and the scheduled actions, not by editing it.",
                    subs=", ".join(changed.mapped("display_name")),
                ))
        locked = self.filtered(lambda s: s.state != "draft" and s.invoice_ids) if (
            {"plan_id", "company_id", "currency_id"} & set(vals)) else self.browse()
        if "plan_id" in vals and self.env.context.get("subscription_plan_change") is not _PLAN_CHANGE \
                and any(s.plan_id.id != vals["plan_id"] for s in locked):
            raise UserError(self.env._(
                "The plan of an invoiced subscription is changed with 'Change plan or quantities' (prorated or from "
                "the next period), not by editing it."
            ))
        if "company_id" in vals and any(s.company_id.id != vals["company_id"] for s in locked):
            raise UserError(self.env._("The company of an invoiced subscription cannot be changed."))
        if "currency_id" in vals and any(s.currency_id.id != vals["currency_id"] for s in locked):
            raise UserError(self.env._("The currency of an invoiced subscription cannot be changed."))

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
        return self._warn_no_email() or True

    def action_suspend(self, reason=None):
        """Suspend running subscriptions by hand: no new invoices until reactivated.

        :param str reason: why (shown on the form, the contact's tab and the collections list;
            the customer reads "suspended, contact us"); required from the form's dialog
        :return: True
        :raise UserError: a subscription is neither active nor past due
        """
        wrong = self.filtered(lambda s: s.state not in const.BILLABLE_STATES)
        if wrong:
            raise UserError(self.env._(
                "Only active or past due subscriptions can be suspended (%(subs)s).",
                subs=", ".join(wrong.mapped("display_name")),
            ))
        reason = (reason or "").strip()
        message = (self.env._("Suspended by %(user)s: %(reason)s", user=self.env.user.name, reason=reason) if reason
                   else self.env._("Suspended by %(user)s.", user=self.env.user.name))
        self._update_state("suspended", message=message,
                           vals={"suspension_cause": "staff", "suspension_note": reason or False})
        return True

    def action_open_suspend_wizard(self):
        """The *Suspend* dialog: asks for the reason."""
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Suspend"),
            "res_model": "subscription.suspend.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"active_ids": self.ids, "active_model": self._name},
        }

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

    def action_renew(self, date_start=None):
        """Start the next commitment term.

        A running subscription's term is extended by one term from its end. An expired one
        starts a new term on ``date_start`` (default: today): the time it was ended is not
        invoiced, unless staff choose an earlier day.

        :param date_start: first day of the new term of an expired subscription (date or string)
        :return: True
        :raise UserError: a subscription is draft or cancelled, its plan is open-ended, or its
            end was scheduled (remove the end date first)
        """
        for sub in self:
            if sub.state not in (*const.RUNNING_STATES, "expired"):
                raise UserError(self.env._("%(sub)s cannot be renewed in state %(state)s.",
                                           sub=sub.display_name, state=sub._state_label()))
            if not sub.plan_id.term_value or not sub.date_end:
                raise UserError(self.env._("%(sub)s has no commitment term to renew (open-ended plan).",
                                           sub=sub.display_name))
            if sub.is_end_scheduled and sub.state != "expired":
                raise UserError(self.env._(
                    "%(sub)s is scheduled to end on %(date)s: remove that end date to renew it.",
                    sub=sub.display_name, date=format_date(self.env, sub.date_end)))
        restart = None
        if date_start:
            try:
                restart = fields.Date.to_date(date_start)
            except (TypeError, ValueError) as error:
                raise UserError(self.env._("%(value)s is not a date.", value=date_start)) from error
            running = self.filtered(lambda s: s.state != "expired")
            if running:
                raise UserError(self.env._(
                    "%(subs)s is running: its next term follows the current one; only an ended subscription "
                    "restarts on a chosen day.", subs=", ".join(running.mapped("display_name"))))
        for sub in self:
            if sub.state == "expired":
                start = restart or sub.company_id._subscription_today()
                sub._check_date_in_range(start)
                new_end = sub._restart_billing(start, vals={"is_end_scheduled": False})
                sub._update_state("active", vals={"close_reason_id": False, "date_closed": False, "close_note": False})
                body = self.env._("Renewed: a new term from %(start)s until %(end)s.",
                                  start=format_date(self.env, start), end=format_date(self.env, new_end))
            else:
                new_end = sub._term_end(sub.date_end + timedelta(days=1))
                sub._set_term_end(new_end)
                body = self.env._("Renewed until %(date)s.", date=format_date(self.env, new_end))
            sub.message_post(body=body)
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

    def action_open_renew_wizard(self):
        """*Renew*: one subscription opens the renewal dialog (the next term as it is, or with a new
        plan, prices or quantities from its first day); several running ones renew at once as they
        are; an expired one asks when the new term starts."""
        if len(self) > 1 and "expired" not in self.mapped("state"):
            return self.action_renew()
        context = {"active_model": self._name, "active_ids": self.ids}
        if self.env.context.get("subscription_renewal_lead_id"):
            context["subscription_renewal_lead_id"] = self.env.context["subscription_renewal_lead_id"]
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Renew"),
            "res_model": "subscription.renew.wizard",
            "view_mode": "form",
            "target": "new",
            "context": context,
        }

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

    def _warn_no_email(self, next_action=None):
        """A warning notification when a customer of these subscriptions has no e-mail address (their
        invoices and payment e-mails cannot reach them), then ``next_action``; None when all have one."""
        missing = self.partner_id.filtered(lambda p: not p.email)
        if not missing:
            return next_action
        params = {
            "type": "warning",
            "sticky": True,
            "title": self.env._("No e-mail address"),
            "message": self.env._(
                "%(customers)s has no e-mail address: invoices and payment reminders cannot be e-mailed. Add one "
                "on the contact, or send the invoices another way.", customers=", ".join(missing.mapped("name"))),
        }
        if next_action:
            params["next"] = next_action
        return {"type": "ir.actions.client", "tag": "display_notification", "params": params}

    def _update_state(self, target, message=None, vals=None):
        """Move these subscriptions to ``target``: the only way a subscription's state changes.

        Idempotent: subscriptions already in ``target`` are left alone (no message). The allowed
        moves are ``const.STATE_TRANSITIONS`` (the state diagram of the README).

        :param str target: the new state
        :param str message: logged as an internal note on each subscription that moved, in one
            create for all (``tools.log_notes``; the state change itself is tracked)
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
            was_suspended = moving.filtered(lambda s: s.state == "suspended")
            vals = dict(vals or {}, state=target)
            Moving = moving.with_context(subscription_state_change=_STATE_CHANGE)
            if target == "suspended":  # the day it stops being billed, in its company's calendar
                for company in moving.company_id:
                    Moving.filtered(lambda s, c=company: s.company_id == c).write(
                        dict(vals, date_suspended=company._subscription_today()))
            else:
                Moving.write(vals)
            if target in const.BILLABLE_STATES:
                was_suspended._skip_suspended_time()
            if message:
                log_notes((sub, message) for sub in moving)
        return moving

    def _init_running_dates(self):
        """Fill the anchor, the term end and the first invoice date of subscriptions that just started."""
        for sub in self:
            vals = {}
            if not sub.date_anchor:
                vals["date_anchor"] = sub.date_start
            if not sub.next_invoice_date:
                vals["next_invoice_date"] = sub.date_start
            if not sub.date_end and sub.plan_id.term_value:
                vals["date_end"] = sub._term_end(sub.date_start)
            if vals:
                sub.with_context(subscription_term_write=True).write(vals)

    def _warn_invoiced_past_end(self):
        """A scheduled end before periods already invoiced: say which invoices cover days after it
        (they are not credited automatically: the customer may be owed a refund)."""
        Move = self.env["account.move"].sudo()
        invoices = Move.search(Domain("subscription_id", "in", self.ids) & Move._subscription_live_domain())
        for sub in self:
            after = invoices.filtered(
                lambda m, s=sub: m.subscription_id == s and m.subscription_period_end > s.date_end)
            if after:
                sub.message_post(body=self.env._(
                    "Ends on %(date)s, but %(invoices)s already cover days after it: credit them if the customer "
                    "is owed a refund.", date=format_date(self.env, sub.date_end),
                    invoices=", ".join(after.mapped("name"))))

    def _customer_fiscal_position(self):
        """The fiscal position Odoo finds for the customer today (country, VAT, their own setting)."""
        self.ensure_one()
        return self.env["account.fiscal.position"].with_company(self.company_id)._get_fiscal_position(
            self.partner_id)

    def _anchor_day(self):
        """Day of the month periods and terms are anchored on (month ends clip to shorter months)."""
        self.ensure_one()
        return (self.date_anchor or self.date_start).day

    def _term_end(self, term_start):
        """Last day of a commitment term starting on ``term_start`` (None when open-ended)."""
        self.ensure_one()
        plan = self.plan_id
        if not plan.term_value:
            return None
        return period_end(term_start, plan.term_value, plan.term_unit, anchor_day=self._anchor_day())

    def _current_term_end(self):
        """End of the term that contains the next period to invoice (None when open-ended)."""
        self.ensure_one()
        if not self.plan_id.term_value:
            return None
        anchor = self.date_anchor or self.date_start
        end = self._term_end(anchor)
        target = self.next_invoice_date or anchor
        while end and end < target:
            end = self._term_end(end + timedelta(days=1))
        return end

    def _set_term_end(self, date_end):
        """Write the end of the term as the system computes it (not a scheduled end)."""
        self.with_context(subscription_term_write=True).write({"date_end": date_end})

    def _restart_billing(self, day, vals=None):
        """Billing restarts on ``day``: periods and the term are counted from it.

        :return: the end of the new term (None when open-ended)
        """
        self.ensure_one()
        write_vals = dict(vals or {}, date_anchor=day, next_invoice_date=max(day, self.date_start))
        self.with_context(subscription_term_write=True).write(write_vals)
        new_end = self._term_end(day)
        if self.plan_id.term_value:
            self._set_term_end(new_end)
        return new_end

    def _schedule_end(self, date_end, reason=None, note=False, author=None):
        """End these subscriptions on ``date_end`` (their last day of service).

        Nothing is invoiced for periods starting after it, the last period is cut at it (billed
        in full or prorated per day as the plan says), no renewal moves it, and the subscription
        closes that day with ``reason``.

        :param date_end: the last day (date or string), not before the start date
        :param reason: a ``subscription.close.reason`` (default: customer request)
        :param str note: kept with the reason
        :param author: the ``res.partner`` the chatter message is attributed to (default: the user)
        :raise UserError: a subscription is not running
        """
        date_end = fields.Date.to_date(date_end)
        wrong = self.filtered(lambda s: s.state not in ("draft", *const.RUNNING_STATES))
        if wrong:
            raise UserError(self.env._("%(subs)s is already closed.", subs=", ".join(wrong.mapped("display_name"))))
        reason = reason or self.env.ref("subscription_billing.close_reason_customer_request",
                                        raise_if_not_found=False)
        self.write({"date_end": date_end, "close_reason_id": reason.id if reason else False,
                    "close_note": note or False})
        for sub in self:
            sub.message_post(body=self.env._("Scheduled to end on %(date)s (%(reason)s).",
                                             date=format_date(self.env, date_end), reason=reason.name or ""),
                             author_id=author.id if author else None)

    def _skip_suspended_time(self):
        """After a suspension, billing resumes with a period starting today, unless the plan bills
        the suspended periods: the time without service is not invoiced. Periods that started
        before the suspension (billing may have lagged) are invoiced first, as the billing day
        would have. The commitment term keeps the number of periods it had left (its end moves
        with them); a scheduled end stays where it is."""
        for sub in self.filtered(lambda s: not s.plan_id.bill_suspended_periods and s.next_invoice_date):
            today = sub.company_id._subscription_today()
            suspended_on = sub.date_suspended or today
            if sub.next_invoice_date < suspended_on:
                sub.sudo()._bill(until=suspended_on - timedelta(days=1))._subscription_notify_billed()
            skipped_from = sub.next_invoice_date
            if skipped_from >= today:
                continue
            vals = {"date_anchor": today, "next_invoice_date": today}
            if sub.plan_id.term_value and sub.date_end and not sub.is_end_scheduled and sub.date_end >= skipped_from:
                vals["date_end"] = sub._shifted_term_end(skipped_from, today)
            sub.with_context(subscription_term_write=True).write(vals)
            sub.message_post(body=self.env._(
                "The suspended time (%(start)s to %(end)s) is not invoiced: billing resumes today.",
                start=format_date(self.env, skipped_from), end=format_date(self.env, today - timedelta(days=1))))

    def _shifted_term_end(self, old_start, new_start):
        """The term end once the periods left from ``old_start`` are counted from ``new_start``."""
        self.ensure_one()
        plan = self.plan_id
        periods, start = 0, old_start
        while start <= self.date_end:
            start = add_period(start, plan.billing_period_value, plan.billing_period_unit,
                               anchor_day=self._anchor_day())
            periods += 1
        return period_end(new_start, periods * plan.billing_period_value, plan.billing_period_unit,
                          anchor_day=new_start.day)

    def _check_date_in_range(self, day):
        """A start date accounting can hold: within ``const.MAX_YEARS_FROM_TODAY`` years of today.

        :raise ValidationError: the day is further away
        """
        today = fields.Date.context_today(self)
        if abs((day - today).days) > const.MAX_YEARS_FROM_TODAY * 366:
            raise ValidationError(self.env._(
                "%(sub)s: %(date)s is too far from today (at most %(years)s years either way).",
                sub=self.display_name, date=format_date(self.env, day), years=const.MAX_YEARS_FROM_TODAY))

    def _action_close(self, state, reason, note=False, date_closed=None):
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
        paused = self.filtered(lambda s: s.state == "paused")
        self._update_state(state, vals={
            "close_reason_id": reason.id if reason else False,
            "close_note": note or False,
            "date_closed": date_closed or fields.Date.context_today(self),
            "date_paused": False,
            "date_resume": False,
        })
        self.env["subscription.mrr.log"]._churn_paused(paused)
        self.env["subscription.charge"]._stop_retries(self)
        return True

    def _stop_renewal_by_customer(self, author=None, by_customer=True, reason=None):
        """Renewal is turned off from the portal (where the plan allows it): a term ends at its
        end date, an open-ended subscription at the end of the period already invoiced.

        :param author: the ``res.partner`` the change is attributed to (default: the customer)
        :param bool by_customer: the customer made the change (else staff, from the portal)
        :param reason: the ``subscription.close.reason`` the customer picked (one offered to
            customers), kept as the reason the subscription ends
        :raise UserError: the plan does not let customers stop renewal, nothing renews, or the
            reason is not one offered to customers
        """
        self.ensure_one()
        if (not self.plan_id.customer_can_stop_renewal or not self.auto_renew or self.is_end_scheduled
                or self.state not in const.RUNNING_STATES):
            raise UserError(self.env._("The renewal of %(sub)s cannot be stopped here.", sub=self.display_name))
        if reason and not reason.sudo().customer_selectable:
            raise UserError(self.env._("This reason cannot be chosen here."))
        author = author or self.partner_id
        reason = reason or self.env.ref("subscription_billing.close_reason_customer_request")
        if self.plan_id.term_value:
            self.write({"auto_renew": False, "close_reason_id": reason.id})
        else:
            last_day = max(self.next_invoice_date - timedelta(days=1), self.date_start)
            self._schedule_end(last_day, reason, author=author)
        end = format_date(self.env, self.date_end)
        body = self.env._(
            "The customer turned off the renewal (%(reason)s): the subscription ends on %(date)s.",
            reason=reason.name, date=end,
        ) if by_customer else self.env._(
            "%(who)s turned off the renewal (%(reason)s): the subscription ends on %(date)s.", who=author.name,
            reason=reason.name, date=end)
        self.message_post(body=body, author_id=author.id, partner_ids=self.user_id.partner_id.ids)
        return True

    # === TOOLING === #

    def _summary_next_step(self):
        """The " — next invoice …" or " — ends on …" of a one-line standing (no amounts)."""
        self.ensure_one()
        if self.state not in const.RUNNING_STATES:
            return ""
        if self.state == "paused":
            return self.env._(" — resumes on %(date)s", date=format_date(self.env, self.date_resume)) \
                if self.date_resume else self.env._(" — until resumed by hand")
        ends = self.date_end and (self.is_end_scheduled or not self.auto_renew or not self.plan_id.term_value)
        if ends and (not self.next_invoice_date or self.next_invoice_date > self.date_end):
            return self.env._(" — ends on %(date)s", date=format_date(self.env, self.date_end))
        if self.next_invoice_date and self.state in const.BILLABLE_STATES:
            return self.env._(" — next invoice %(date)s", date=format_date(self.env, self.next_invoice_date))
        return ""

    def _state_label(self):
        return dict(self._fields["state"]._description_selection(self.env)).get(self.state, self.state)

    def _send_template(self, xmlid):
        """Queue the e-mail template ``xmlid`` for these subscriptions (never raises)."""
        return queue_mails(self.env.ref(xmlid, raise_if_not_found=False), self)

    def _schedule_salesperson_activity(self, summary, note=False, activity_xmlid="mail.mail_activity_data_todo",
                                       date_deadline=None):
        """An activity for each subscription's salesperson (the administrator when there is none),
        created in one ``create`` per salesperson (Odoo's ``activity_schedule`` on a recordset)."""
        admin = self.env.ref("base.user_admin")
        for user, subs in self.grouped(lambda sub: sub.user_id or admin).items():
            subs.activity_schedule(activity_xmlid, date_deadline=date_deadline, summary=summary, note=note or "",
                                   user_id=user.id)
