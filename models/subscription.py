import logging
import uuid
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.fields import Command, Domain
from odoo.tools import format_date

from .. import const
from ..utils import add_period, period_end
from .mail_queue import queue_mails

_logger = logging.getLogger(__name__)

STATES = [
    ("draft", "Draft"),
    ("active", "Active"),
    ("past_due", "Past Due"),
    ("suspended", "Suspended"),
    ("expired", "Expired"),
    ("cancelled", "Cancelled"),
]
# States in which a subscription is running (a customer relationship exists).
RUNNING_STATES = ("active", "past_due", "suspended")
# States in which the billing day creates invoices.
BILLABLE_STATES = ("active", "past_due")
CLOSED_STATES = ("expired", "cancelled")

DEFAULT_BATCH_SIZE = 200


class SubscriptionSubscription(models.Model):
    _name = "subscription.subscription"
    _description = "Subscription"
    _inherit = ["portal.mixin", "mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _check_company_auto = True
    _mail_post_access = "read"

    # ------------------------------------------------------------------ fields
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
    line_ids = fields.One2many("subscription.line", "subscription_id", string="Lines", copy=True)
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
        STATES, required=True, default="draft", tracking=True, index=True, copy=False,
        group_expand=True,
    )
    payment_token_id = fields.Many2one(
        "payment.token", string="Autopay payment method", tracking=True, copy=False,
        domain="[('partner_id', 'child_of', commercial_partner_id)]", check_company=True,
        help="Saved payment method charged automatically for each invoice.",
    )
    renewal_reminded_for = fields.Date(
        copy=False, readonly=True,
        help="End of the term for which the renewal reminder was sent (one reminder per term).",
    )
    autopay_requested = fields.Boolean(
        string="Awaiting payment method", copy=False, tracking=True,
        help="An autopay setup link was sent; the customer has not saved a payment method yet.",
    )
    close_reason_id = fields.Many2one("subscription.close.reason", tracking=True, copy=False)
    close_note = fields.Text(copy=False)
    date_closed = fields.Date(copy=False, readonly=True)
    note = fields.Html(string="Terms and conditions")
    sale_order_id = fields.Many2one(
        "sale.order", string="Sales order", copy=False, readonly=True, index="btree_not_null",
        help="The confirmed quotation this subscription was started from.",
    )

    amount_untaxed = fields.Monetary(compute="_compute_amounts", store=True, string="Untaxed amount")
    amount_tax = fields.Monetary(compute="_compute_amounts", store=True, string="Taxes")
    amount_total = fields.Monetary(compute="_compute_amounts", store=True, string="Total per period")
    company_currency_id = fields.Many2one(related="company_id.currency_id", string="Company currency")
    recurring_monthly = fields.Monetary(
        compute="_compute_recurring_monthly", store=True, currency_field="company_currency_id",
        string="MRR", aggregator="sum",
        help="Untaxed recurring revenue normalized to one month, in the company currency.",
    )

    invoice_ids = fields.One2many("account.move", "subscription_id", string="Invoices", readonly=True)
    charge_ids = fields.One2many("subscription.charge", "subscription_id", string="Autopay charges", readonly=True)
    invoice_count = fields.Integer(compute="_compute_invoice_count")
    billing_failed_on = fields.Date(
        copy=False, readonly=True,
        help="Day the billing day last failed for this subscription; it is retried the next day.",
    )
    billing_error = fields.Text(copy=False, readonly=True)
    is_expiring = fields.Boolean(
        compute="_compute_is_expiring", search="_search_is_expiring", string="Expiring soon",
    )
    has_overdue_invoice = fields.Boolean(
        compute="_compute_has_overdue_invoice", search="_search_has_overdue_invoice", string="Overdue",
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

    # ------------------------------------------------------------------ computes
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
            if sub.state not in RUNNING_STATES or not sub.plan_id:
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
                sub.state in RUNNING_STATES
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
            [RUNNING_STATES, today],
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        positive = (operator == "=") == value
        return [("id", "in" if positive else "not in", ids)]

    @api.model
    def _open_invoice_domain(self):
        """Posted customer invoices not fully paid yet."""
        return Domain([
            ("move_type", "=", "out_invoice"),
            ("state", "=", "posted"),
            ("payment_state", "in", ("not_paid", "partial")),
        ])

    def _overdue_invoice_domain(self, today=None):
        today = today or fields.Date.context_today(self)
        return self._open_invoice_domain() & Domain("invoice_date_due", "<", today)

    def _compute_has_overdue_invoice(self):
        overdue = {
            sub for [sub] in self.env["account.move"].sudo()._read_group(
                self._overdue_invoice_domain() & Domain("subscription_id", "in", self.ids),
                ["subscription_id"],
            )
        }
        for sub in self:
            sub.has_overdue_invoice = sub in overdue

    def _search_has_overdue_invoice(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on 'Overdue'."))
        query = self.env["account.move"].sudo()._search(
            self._overdue_invoice_domain() & Domain("subscription_id", "!=", False)
        )
        positive = (operator == "=") == value
        return [("id", "in" if positive else "not in", query.subselect("subscription_id"))]

    @api.depends("state", "is_expiring", "has_overdue_invoice")
    def _compute_health(self):
        colors = {"ok": 10, "expiring": 3, "overdue": 2, "failed": 1, "closed": 0}
        for sub in self:
            if sub.state in CLOSED_STATES:
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

    # ------------------------------------------------------------------ constraints
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

    @api.constrains("payment_token_id", "partner_id", "currency_id")
    def _check_payment_token(self):
        """Autopay only with an active saved method of the customer's own commercial entity."""
        for sub in self.filtered("payment_token_id"):
            token = sub.payment_token_id.sudo()
            if token.partner_id.commercial_partner_id != sub.commercial_partner_id:
                raise ValidationError(self.env._(
                    "%(sub)s: the payment method %(token)s belongs to another customer.",
                    sub=sub.display_name, token=token.display_name,
                ))
            problem = sub._autopay_problem(token, sub.currency_id)
            if problem:
                raise ValidationError(self.env._("%(sub)s: %(problem)s", sub=sub.display_name, problem=problem[1]))

    def _autopay_problem(self, token, currency):
        """``(code, message)`` when ``token`` cannot be charged in ``currency``, else None."""
        token = token.sudo()
        if not token.active:
            return const.CODE_TOKEN_INACTIVE, self.env._(
                "the payment method %(token)s was removed or deactivated.", token=token.display_name)
        return self._autopay_provider_problem(token.provider_id, currency)

    def _autopay_provider_problem(self, provider, currency):
        """``(code, message)`` when ``provider`` cannot charge this subscription's saved methods."""
        provider = provider.sudo()
        if provider.company_id and self.company_id and provider.company_id != self.company_id:
            return "provider_other_company", self.env._(
                "the payment provider %(provider)s belongs to another company.", provider=provider.name)
        if not provider.allow_tokenization:
            return "provider_no_tokenization", self.env._(
                "%(provider)s does not allow charging saved payment methods.", provider=provider.name)
        if provider.state == "disabled":
            return "provider_disabled", self.env._(
                "the payment provider %(provider)s is disabled.", provider=provider.name)
        if provider.available_currency_ids and currency not in provider.available_currency_ids:
            return "currency_not_supported", self.env._(
                "%(provider)s cannot charge in %(currency)s.", provider=provider.name, currency=currency.name)
        return None

    @api.constrains("state", "line_ids")
    def _check_lines_when_running(self):
        for sub in self:
            if sub.state in BILLABLE_STATES and not sub.line_ids:
                raise ValidationError(
                    self.env._("%(sub)s: a running subscription needs at least one line.", sub=sub.display_name)
                )

    # ------------------------------------------------------------------ CRUD
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
        subs.filtered(lambda s: s.state in RUNNING_STATES)._init_running_dates()
        return subs

    def write(self, vals):
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

    # ------------------------------------------------------------------ onchanges
    @api.onchange("plan_id")
    def _onchange_plan_id(self):
        for line in self.line_ids:
            line._compute_price_unit()

    # ------------------------------------------------------------------ actions
    def action_start(self):
        """Start draft subscriptions: they become active and are billed from their start date."""
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
        self.write({"state": "active"})
        self._init_running_dates()
        return True

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

    def action_suspend(self):
        """Suspend running subscriptions: no new invoices until reactivated or paid."""
        wrong = self.filtered(lambda s: s.state not in ("active", "past_due"))
        if wrong:
            raise UserError(self.env._(
                "Only active or past due subscriptions can be suspended (%(subs)s).",
                subs=", ".join(wrong.mapped("display_name")),
            ))
        self.write({"state": "suspended"})
        return True

    def action_reactivate(self):
        """Bring past due or suspended subscriptions back to active."""
        wrong = self.filtered(lambda s: s.state not in ("past_due", "suspended"))
        if wrong:
            raise UserError(self.env._(
                "Only past due or suspended subscriptions can be reactivated (%(subs)s).",
                subs=", ".join(wrong.mapped("display_name")),
            ))
        self.write({"state": "active"})
        return True

    def action_renew(self):
        """Extend the commitment by one term; an expired subscription becomes active again."""
        for sub in self:
            if sub.state not in RUNNING_STATES + ("expired",):
                raise UserError(self.env._("%(sub)s cannot be renewed in state %(state)s.",
                                           sub=sub.display_name, state=sub._state_label()))
            if not sub.plan_id.term_value or not sub.date_end:
                raise UserError(self.env._("%(sub)s has no commitment term to renew (open-ended plan).",
                                           sub=sub.display_name))
        for sub in self:
            new_end = sub._term_end(sub.date_end + timedelta(days=1))
            vals = {"date_end": new_end}
            if sub.state == "expired":
                vals.update(state="active", close_reason_id=False, date_closed=False, close_note=False)
            sub.write(vals)
            sub.message_post(body=self.env._("Renewed until %(date)s.", date=format_date(self.env, new_end)))
        return True

    def action_cancel(self):
        """Cancel subscriptions (no further invoices); use the close wizard to give a reason."""
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

    def _action_close(self, state, reason, note=False):
        """Close subscriptions with ``state`` (expired or cancelled) and a reason."""
        already = self.filtered(lambda s: s.state in CLOSED_STATES)
        if already:
            raise UserError(self.env._("%(subs)s is already closed.",
                                       subs=", ".join(already.mapped("display_name"))))
        self.write({
            "state": state,
            "close_reason_id": reason.id if reason else False,
            "close_note": note or False,
            "date_closed": fields.Date.context_today(self),
        })
        self.env["subscription.charge"]._stop_retries(self)
        return True

    def action_generate_invoice(self):
        """Invoice now: every period due up to today, or else the next period in advance.

        Never invoices a period twice (the database refuses a second invoice for
        the same subscription and period).
        """
        self.check_access("write")
        today = fields.Date.context_today(self)
        for sub in self:
            if sub.state not in BILLABLE_STATES:
                raise UserError(self.env._("%(sub)s is %(state)s: only active or past due subscriptions are invoiced.",
                                           sub=sub.display_name, state=sub._state_label()))
            if sub.date_end and sub.next_invoice_date > sub.date_end and not sub.auto_renew:
                raise UserError(self.env._("%(sub)s has been invoiced up to the end of its term; renew it first.",
                                           sub=sub.display_name))
        invoices = self.env["account.move"]
        for sub in self:
            until = max(today, sub.next_invoice_date)
            result = sub._bill(until, raise_on_error=True)
            invoices |= result
        invoices._subscription_notify_billed()
        return self.action_view_invoices(invoices) if invoices else True

    def action_view_invoices(self, invoices=None):
        invoices = invoices if invoices is not None else self.invoice_ids
        action = self.env["ir.actions.actions"]._for_xml_id("account.action_move_out_invoice_type")
        if len(invoices) == 1:
            action.update(res_id=invoices.id, views=[(self.env.ref("account.view_move_form").id, "form")])
        else:
            action["domain"] = [("id", "in", invoices.ids)]
        action["context"] = {"default_move_type": "out_invoice", "create": False}
        return action

    # ------------------------------------------------------------------ autopay enrollment
    def action_send_autopay_link(self):
        """E-mail the customer a link to save a payment method for this subscription."""
        for sub in self:
            if sub.state in CLOSED_STATES:
                raise UserError(self.env._("%(sub)s is closed.", sub=sub.display_name))
            if not sub.partner_id.email:
                raise UserError(self.env._("%(customer)s has no e-mail address.", customer=sub.partner_id.name))
        self.write({"autopay_requested": True})
        for sub in self:
            sub.message_post_with_source(
                "subscription_billing.mail_template_autopay_setup", subtype_xmlid="mail.mt_comment",
            )
        return True

    def _enroll_autopay(self, token):
        """Make ``token`` the subscription's autopay method (from the portal or a setup link).

        A draft subscription starts; open invoices of a past due or suspended one are
        charged on the next autopay run, which is woken up now.
        """
        self.ensure_one()
        if self.state in CLOSED_STATES:
            raise UserError(self.env._("%(sub)s is closed.", sub=self.display_name))
        previous = self.payment_token_id
        self.write({"payment_token_id": token.id, "autopay_requested": False})
        self.message_post(body=self.env._(
            "Autopay set up by the customer with %(method)s.", method=token.display_name,
        ) if not previous else self.env._(
            "The customer replaced the autopay method %(old)s with %(new)s.",
            old=previous.display_name, new=token.display_name,
        ))
        if self.state == "draft":
            self.action_start()
        open_invoices = self.invoice_ids.sudo().filtered_domain(self._open_invoice_domain())
        if open_invoices:
            if self.state == "suspended":
                self.write({"state": "past_due"})
            open_invoices.write({"subscription_charge_date": fields.Date.context_today(self)})
            self.env.ref("subscription_billing.ir_cron_charge_autopay")._trigger()
        return True

    def _disable_autopay(self):
        """The customer turns autopay off: invoices must then be paid by hand."""
        self.ensure_one()
        if not self.payment_token_id:
            raise UserError(self.env._("%(sub)s is not on autopay.", sub=self.display_name))
        self.write({"payment_token_id": False})
        self.env["subscription.charge"]._stop_retries(self)
        self.message_post(body=self.env._(
            "The customer turned autopay off: invoices are now e-mailed to be paid by hand."))
        return True

    def _stop_renewal_by_customer(self):
        """The customer turns off renewal at the end of the term (where the plan allows it)."""
        self.ensure_one()
        if not self.plan_id.customer_can_stop_renewal or not self.auto_renew or self.state not in RUNNING_STATES:
            raise UserError(self.env._("The renewal of %(sub)s cannot be stopped here.", sub=self.display_name))
        self.write({"auto_renew": False})
        self.message_post(
            body=self.env._("The customer turned off the renewal: the subscription ends on %(date)s.",
                            date=format_date(self.env, self.date_end)),
            partner_ids=self.user_id.partner_id.ids,
        )
        return True

    # ------------------------------------------------------------------ payment status
    def _reactivate_if_paid(self):
        """Past due or suspended subscriptions without an open invoice left become active again."""
        subs = self.filtered(lambda s: s.state in ("past_due", "suspended"))
        if not subs:
            return
        still_open = {
            sub for [sub] in self.env["account.move"].sudo()._read_group(
                self._open_invoice_domain() & Domain("subscription_id", "in", subs.ids), ["subscription_id"],
            )
        }
        paid = subs.filtered(lambda s: s not in still_open)
        if not paid:
            return
        paid.write({"state": "active"})
        self.env["subscription.charge"].sudo().search([
            ("subscription_id", "in", paid.ids), ("next_retry_date", "!=", False),
        ]).write({"next_retry_date": False})
        for sub in paid:
            sub.message_post(body=self.env._("All invoices are paid: the subscription is active again."))

    @api.model
    def _cron_update_statuses(self, batch_size=None):
        """Manual payers: an overdue invoice makes the subscription past due (reminder e-mailed);
        still overdue after the company's grace period, it is suspended (e-mail and activity).

        Autopay subscriptions follow their charges instead. Commits per batch; safe to rerun.
        """
        batch_size = batch_size or DEFAULT_BATCH_SIZE
        cron = self.env["ir.cron"]
        today = fields.Date.context_today(self)
        late_domain = [("state", "=", "active"), ("payment_token_id", "=", False), ("has_overdue_invoice", "=", True)]
        while True:
            late = self.search(late_domain, limit=batch_size)
            if not late:
                break
            late.write({"state": "past_due"})
            late._send_template("subscription_billing.mail_template_payment_reminder")
            for sub in late:
                sub.message_post(body=self.env._(
                    "An invoice is overdue: the subscription is past due. Payment reminder e-mailed."))
            if not cron._commit_progress(len(late)):
                return
        self._send_renewal_reminders(batch_size)
        for company in self.env["res.company"].sudo().search([]):
            limit_date = today - timedelta(days=company.subscription_grace_days)
            overdue = self._overdue_invoice_domain(limit_date)
            domain = [("state", "=", "past_due"), ("payment_token_id", "=", False), ("company_id", "=", company.id),
                      ("invoice_ids", "any", overdue)]
            while True:
                subs = self.search(domain, limit=batch_size)
                if not subs:
                    break
                subs.write({"state": "suspended"})
                subs._send_template("subscription_billing.mail_template_subscription_suspended")
                subs._schedule_salesperson_activity(self.env._("Suspended: invoice unpaid"))
                for sub in subs:
                    sub.message_post(body=self.env._(
                        "An invoice is still unpaid %(days)s days after its due date: the subscription is "
                        "suspended. Customer e-mailed.", days=company.subscription_grace_days))
                if not cron._commit_progress(len(subs)):
                    return

    @api.model
    def _demo_enroll_autopay(self, sub_ids):
        """Demo data: autopay with a demo card, when the demo payment provider is installed."""
        if "demo_simulated_state" not in self.env["payment.token"]._fields:
            return
        provider = self.env.ref("payment.payment_provider_demo", raise_if_not_found=False)
        if not provider or provider.state == "disabled":
            return
        for sub in self.browse(sub_ids):
            token = self.env["payment.token"].create({
                "provider_id": provider.id,
                "payment_method_id": self.env.ref("payment_demo.payment_method_demo").id,
                "partner_id": sub.partner_id.id,
                "provider_ref": f"demo-{sub.partner_id.id}",
                "payment_details": "4242",
                "demo_simulated_state": "done",
            })
            sub.payment_token_id = token

    @api.model
    def _demo_pay_invoices(self, sub_ids, count):
        """Demo data: the first ``count`` invoices of these subscriptions are paid."""
        invoices = self.browse(sub_ids).invoice_ids.sorted("invoice_date")[:count]
        if invoices:
            self.env["account.payment.register"].with_context(
                active_model="account.move", active_ids=invoices.ids,
            ).create({"group_payment": False})._create_payments()

    @api.model
    def _send_renewal_reminders(self, batch_size=DEFAULT_BATCH_SIZE):
        """Subscriptions ending within their plan's reminder days without automatic renewal:
        one reminder e-mail per term to the customer and an activity for the salesperson."""
        cron = self.env["ir.cron"]
        today = fields.Date.context_today(self)
        # Reminded terms keep their end date in renewal_reminded_for (>= today while current).
        domain = Domain([("is_expiring", "=", True), ("date_end", ">=", today)]) & (
            Domain("renewal_reminded_for", "=", False) | Domain("renewal_reminded_for", "<", today)
        )
        while True:
            subs = self.search(domain, order="date_end, id", limit=batch_size)
            if not subs:
                return
            for sub in subs:
                sub.renewal_reminded_for = sub.date_end
                sub._schedule_salesperson_activity(
                    self.env._("Renewal: ends on %(date)s", date=format_date(self.env, sub.date_end)),
                    date_deadline=sub.date_end,
                )
                sub.message_post(body=self.env._("Renewal reminder e-mailed: the subscription ends on %(date)s.",
                                                 date=format_date(self.env, sub.date_end)))
            subs._send_template("subscription_billing.mail_template_renewal_reminder")
            if not cron._commit_progress(len(subs)):
                return

    def _send_template(self, xmlid):
        """Queue the e-mail template ``xmlid`` for these subscriptions (never raises)."""
        queue_mails(self.env.ref(xmlid, raise_if_not_found=False), self)

    def _schedule_salesperson_activity(self, summary, note=False, activity_xmlid="mail.mail_activity_data_todo",
                                       date_deadline=None):
        """An activity for each subscription's salesperson (the administrator when there is none)."""
        admin = self.env.ref("base.user_admin")
        for sub in self:
            sub.activity_schedule(activity_xmlid, date_deadline=date_deadline, summary=summary, note=note or "",
                                  user_id=(sub.user_id or admin).id)

    # ------------------------------------------------------------------ billing day
    @api.model
    def _billable_domain(self, today):
        """Subscriptions the billing day must process on ``today``."""
        return Domain("state", "in", BILLABLE_STATES) & Domain("next_invoice_date", "<=", today) & (
            Domain("billing_failed_on", "=", False) | Domain("billing_failed_on", "<", today)
        )

    @api.model
    def _cron_generate_invoices(self, batch_size=None):
        """Billing day: invoice every due period of every running subscription.

        Works in batches committed through ``ir.cron._commit_progress`` (a crash
        loses at most one batch; a rerun resumes where it stopped) and stops when
        the worker's time is up, reporting what remains so the scheduler runs
        it again. Safe to run twice or on two workers at once.
        """
        batch_size = batch_size or int(
            self.env["ir.config_parameter"].sudo().get_param("subscription_billing.batch_size", DEFAULT_BATCH_SIZE)
        )
        cron = self.env["ir.cron"]
        today = fields.Date.context_today(self)
        self._expire_suspended(today)
        domain = self._billable_domain(today)
        while True:
            # Look a few batches ahead so that a second worker skips the rows the first one
            # holds (FOR UPDATE SKIP LOCKED) and takes the next batch instead of waiting.
            candidates = self.search(domain, limit=batch_size * 4, order="next_invoice_date, id")
            if not candidates:
                break
            remaining = self.search_count(domain) if len(candidates) == batch_size * 4 else len(candidates)
            cron._commit_progress(remaining=remaining)
            locked = candidates.try_lock_for_update(limit=batch_size).filtered_domain(domain)
            if not locked:
                break  # other workers hold all of them
            invoices = locked._bill(today)
            invoices._subscription_notify_billed()
            # A subscription still due after billing would loop forever: park it for today.
            stuck = locked.filtered_domain(domain)
            if stuck:
                stuck.write({"billing_failed_on": today, "billing_error": self.env._("Still due after billing.")})
            _logger.info("Billing day: %s subscriptions billed, %s invoices, about %s left",
                         len(locked), len(invoices), remaining - len(locked))
            if not cron._commit_progress(len(locked)):
                break

    @api.model
    def _generate_due_invoices(self):
        """Bill every due subscription up to today in the current transaction.

        For small bases, imports and demo data; the scheduled action does the
        same in committed batches. Returns the invoices created.
        """
        today = fields.Date.context_today(self)
        self._expire_suspended(today)
        invoices = self.search(self._billable_domain(today))._bill(today)
        invoices._subscription_notify_billed()
        return invoices

    @api.model
    def _expire_suspended(self, today):
        """Suspended subscriptions past the end of a non-renewing term expire."""
        ended = self.search([
            ("state", "=", "suspended"), ("auto_renew", "=", False),
            ("date_end", "!=", False), ("date_end", "<", today),
        ])
        if ended:
            ended._action_close("expired", self.env.ref("subscription_billing.close_reason_expired"))

    def _plan_billing(self, until):
        """Compute, without writing, what billing these subscriptions up to ``until`` means.

        Returns ``{sub: {'periods': [(start, end), ...], 'vals': {...}, 'messages': [...]}}``
        where ``vals`` are the subscription's new dates/state after billing.
        """
        plans = {}
        for sub in self:
            plan = sub.plan_id
            anchor = sub.date_start.day
            start = sub.next_invoice_date or sub.date_start
            date_end = sub.date_end
            periods, messages, vals = [], [], {}
            while start <= until:
                if date_end and start > date_end:
                    if sub.auto_renew:
                        date_end = sub._term_end(date_end + timedelta(days=1))
                        vals["date_end"] = date_end
                        messages.append(self.env._("Renewed until %(date)s.", date=format_date(self.env, date_end)))
                        continue
                    vals["state"] = "expired"
                    break
                nxt = add_period(start, plan.billing_period_value, plan.billing_period_unit, anchor_day=anchor)
                periods.append((start, nxt - timedelta(days=1)))
                start = nxt
            vals["next_invoice_date"] = start
            plans[sub] = {"periods": periods, "vals": vals, "messages": messages}
        return plans

    def _bill(self, until, raise_on_error=False):
        """Create and post one invoice per due period up to ``until`` and move the dates.

        Each subscription's invoices, posting and date move are atomic: first the
        whole batch is tried at once (fast path); if anything fails, each
        subscription is retried alone in its own savepoint and a failing one is
        logged on it and parked until tomorrow. Returns the posted invoices.
        """
        plans = self._plan_billing(until)
        try:
            with self.env.cr.savepoint():
                return self._bill_apply(plans)
        except Exception:  # any failure falls back to per-subscription isolation
            if raise_on_error and len(self) == 1:
                raise
            _logger.info("Billing batch failed; retrying %s subscriptions one by one", len(self), exc_info=True)
        invoices = self.env["account.move"]
        for sub in self:
            try:
                with self.env.cr.savepoint():
                    invoices |= sub._bill_apply({sub: plans[sub]})
            except Exception as e:  # one subscription must not stop the batch
                if raise_on_error:
                    raise
                sub._log_billing_error(e, until)
        return invoices

    def _bill_apply(self, plans):
        """Write what ``_plan_billing`` computed: invoices posted, dates and states moved."""
        vals_list, owners = [], []
        journals = {}
        for sub, plan in plans.items():
            for start, end in plan["periods"]:
                if sub.company_id not in journals:
                    journals[sub.company_id] = sub._get_sale_journal()
                vals_list.append(sub._prepare_invoice_vals(start, end, journals[sub.company_id]))
                owners.append(sub)
        Move = self.env["account.move"].sudo().with_context(
            default_move_type="out_invoice",
            mail_create_nolog=True,
            mail_create_nosubscribe=True,
            mail_notrack=True,
        )
        invoices = Move.create(vals_list) if vals_list else Move
        if invoices:
            invoices.action_post()
        expired = self.env["subscription.subscription"]
        for sub, plan in plans.items():
            vals = dict(plan["vals"], billing_failed_on=False, billing_error=False)
            if vals.get("state") == "expired":
                vals.pop("state")
                expired |= sub
            sub.write(vals)
            for message in plan["messages"]:
                sub.message_post(body=message)
        if expired:
            expired._action_close("expired", self.env.ref("subscription_billing.close_reason_expired"))
        return invoices.sudo(False)

    def _log_billing_error(self, error, today):
        """Record a billing failure on the subscription, visible to its salesperson."""
        self.ensure_one()
        message = str(error.args[0] if getattr(error, "args", None) else error)
        _logger.warning("Billing failed for %s: %s", self.display_name, message)
        self.write({"billing_failed_on": today, "billing_error": message})
        self.message_post(body=self.env._("The invoice could not be created: %(error)s", error=message))
        self._schedule_salesperson_activity(
            self.env._("Billing failed"), note=message, activity_xmlid="mail.mail_activity_data_warning",
        )

    def _get_sale_journal(self):
        self.ensure_one()
        journal = self.env["account.journal"].sudo().search([
            *self.env["account.journal"]._check_company_domain(self.company_id),
            ("type", "=", "sale"),
        ], limit=1)
        if not journal:
            raise UserError(self.env._("Company %(company)s has no sales journal to invoice subscriptions in.",
                                       company=self.company_id.name))
        return journal

    def _prepare_invoice_vals(self, period_start, period_end_, journal):
        """Values of the customer invoice for one period, complete (lines included)."""
        self.ensure_one()
        label = self.env._("%(start)s to %(end)s",
                           start=format_date(self.env, period_start), end=format_date(self.env, period_end_))
        return {
            "move_type": "out_invoice",
            "partner_id": self.partner_id.id,
            "company_id": self.company_id.id,
            "journal_id": journal.id,
            "currency_id": self.currency_id.id,
            "invoice_date": period_start,
            "invoice_origin": self.name,
            "invoice_user_id": self.user_id.id,
            "team_id": self.team_id.id,
            "fiscal_position_id": self.fiscal_position_id.id,
            "invoice_payment_term_id": self.plan_id.payment_term_id.id,
            "subscription_id": self.id,
            "subscription_period_start": period_start,
            "subscription_period_end": period_end_,
            # Portal token and "sent" flag set at creation: writing them afterwards would run
            # the whole invoice write machinery once per invoice.
            "access_token": str(uuid.uuid4()),
            # Autopay invoices are charged first; the customer gets a receipt or a failure notice.
            "is_move_sent": bool(self.partner_id.email) and not self.payment_token_id,
            "subscription_charge_date": fields.Date.context_today(self) if self.payment_token_id else False,
            "invoice_line_ids": [Command.create(line._prepare_invoice_line_vals(label)) for line in self.line_ids],
        }

    def _state_label(self):
        return dict(STATES).get(self.state, self.state)


class AccountMoveSubscriptionMails(models.Model):
    _inherit = "account.move"

    def _subscription_notify_billed(self):
        """After billing: e-mail manual payers their invoice, have autopay invoices charged now."""
        self._subscription_send_invoice_mails()
        if any(self.mapped("subscription_charge_date")):
            cron = self.env.ref("subscription_billing.ir_cron_charge_autopay", raise_if_not_found=False)
            if cron:
                cron._trigger()

    def _subscription_send_invoice_mails(self):
        """Queue the invoice e-mail (with its portal link to view and pay) for each invoice.

        Mails are only queued (the mail cron sends them); no PDF is rendered here.
        A failure is logged and never undoes the invoices.
        """
        if not self:
            return
        template = self.env.ref("subscription_billing.mail_template_subscription_invoice", raise_if_not_found=False)
        if not template:
            return
        invoices = self.sudo().filtered(lambda m: m.partner_id.email and not m.subscription_charge_date)
        not_mailed = invoices - queue_mails(template, invoices)
        not_mailed.filtered("is_move_sent").write({"is_move_sent": False})
