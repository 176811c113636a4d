from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Command
from odoo.tools import format_amount


class SaleOrder(models.Model):
    _inherit = "sale.order"

    # === FIELDS === #

    subscription_plan_id = fields.Many2one(
        "subscription.plan", string="Subscription plan", check_company=True,
        help="On confirmation, the subscription products of this quotation start a subscription on this plan; "
        "they are then invoiced by the subscription every period, not by the order.",
    )
    subscription_ids = fields.One2many("subscription.subscription", "sale_order_id", string="Subscriptions")
    subscription_count = fields.Integer(compute="_compute_subscription_count")

    # === COMPUTE METHODS === #

    @api.depends("subscription_ids")
    def _compute_subscription_count(self):
        for order in self:
            order.subscription_count = len(order.subscription_ids)

    # === ONCHANGE METHODS === #

    @api.onchange("subscription_plan_id")
    def _onchange_subscription_plan_id(self):
        """A new plan re-prices the subscription lines, prices typed by hand included, and says which
        typed prices it replaced."""
        replaced = []
        for line in self.order_line.filtered(lambda l: l.product_id.recurring_invoice and not l.qty_invoiced):
            typed = line.currency_id.compare_amounts(line.technical_price_unit, line.price_unit) != 0
            before = line.price_unit
            line._reset_price_unit()
            if typed and line.currency_id.compare_amounts(before, line.price_unit):
                replaced.append(self.env._("%(product)s: %(old)s replaced by %(new)s",
                                           product=line.product_id.display_name,
                                           old=format_amount(self.env, before, line.currency_id),
                                           new=format_amount(self.env, line.price_unit, line.currency_id)))
        if replaced:
            return {"warning": {
                "title": self.env._("Prices typed by hand were replaced"),
                "message": self.env._("The plan's prices now apply:\n%(lines)s", lines="\n".join(replaced)),
            }}
        return None

    # === CORE METHODS OVERRIDES === #

    def _action_confirm(self):
        res = super()._action_confirm()
        self._create_subscriptions()
        return res

    # === ACTION METHODS === #

    def action_view_subscriptions(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("subscription_billing.subscription_action")
        action["domain"] = [("sale_order_id", "=", self.id)]
        action["context"] = {}
        if len(self.subscription_ids) == 1:
            action.update(res_id=self.subscription_ids.id, view_mode="form",
                          views=[(self.env.ref("subscription_billing.subscription_view_form").id, "form")])
        return action

    # === BUSINESS METHODS === #

    def _get_recurring_lines(self):
        self.ensure_one()
        if not self.subscription_plan_id:
            return self.env["sale.order.line"]
        return self.order_line.filtered(lambda line: not line.display_type and line.product_id.recurring_invoice)

    def _prepare_subscription_vals(self):
        self.ensure_one()
        return {
            "partner_id": self.partner_invoice_id.id or self.partner_id.id,
            "plan_id": self.subscription_plan_id.id,
            "company_id": self.company_id.id,
            "currency_id": self.currency_id.id,
            "user_id": self.user_id.id,
            "team_id": self.team_id.id,
            "fiscal_position_id": self.fiscal_position_id.id,
            "date_start": self.commitment_date.date() if self.commitment_date else fields.Date.context_today(self),
            "sale_order_id": self.id,
            "payment_token_id": False,
            "note": self.note,
            "line_ids": [
                Command.create({
                    "product_id": line.product_id.id,
                    "name": line.name,
                    "quantity": line.product_uom_qty,
                    "price_unit": line.price_unit,
                    "discount": line.discount,
                    "tax_ids": [Command.set(line.tax_ids.ids)],
                })
                for line in self._get_recurring_lines()
            ],
        }

    def _create_subscriptions(self):
        """Start one subscription per confirmed order that has a plan and subscription products."""
        orders = self.filtered(lambda o: o.subscription_plan_id and not o.subscription_ids)
        vals_list = []
        for order in orders:
            if not order._get_recurring_lines():
                raise UserError(self.env._(
                    "%(order)s has a subscription plan but no subscription product.", order=order.name
                ))
            vals_list.append(order._prepare_subscription_vals())
        if not vals_list:
            return self.env["subscription.subscription"]
        subs = self.env["subscription.subscription"].sudo().create(vals_list)
        subs.action_start()
        for sub in subs:
            sub.message_post_with_source(
                "mail.message_origin_link",
                render_values={"self": sub, "origin": sub.sale_order_id},
                subtype_xmlid="mail.mt_note",
            )
        return subs


class SaleOrderLine(models.Model):
    _inherit = "sale.order.line"

    @api.depends("order_id.subscription_plan_id")
    def _compute_price_unit(self):
        """Prices follow the order's plan too (see ``_get_display_price``)."""
        return super()._compute_price_unit()

    def _get_display_price(self):
        """A subscription product on a quotation with a plan costs the plan's price per period,
        however the quotation was built (plan before or after the product): Odoo prices a line
        through this hook both when the product is chosen and when prices are recomputed."""
        self.ensure_one()
        price = self._subscription_plan_price()
        return super()._get_display_price() if price is None else price

    def _subscription_plan_price(self):
        """The order's plan price of this line's product (in the order's currency), or None."""
        order = self.order_id
        if not (order.subscription_plan_id and self.product_id.recurring_invoice):
            return None
        return self.env["subscription.pricing"]._get_price(
            self.product_id, order.subscription_plan_id, order.currency_id or order.company_id.currency_id)

    @api.depends("order_id.subscription_plan_id")
    def _compute_qty_to_invoice(self):
        """The subscription invoices subscription products, not the order."""
        res = super()._compute_qty_to_invoice()
        for line in self:
            if line.order_id.subscription_plan_id and line.product_id.recurring_invoice:
                line.qty_to_invoice = 0.0
        return res
