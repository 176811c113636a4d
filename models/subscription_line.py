import math

from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import float_round

from .. import const


class SubscriptionLine(models.Model):
    _name = "subscription.line"
    _description = "Subscription Line"
    _order = "subscription_id, sequence, id"
    _check_company_auto = True

    # === FIELDS === #

    subscription_id = fields.Many2one(
        "subscription.subscription", required=True, ondelete="cascade", index=True,
    )
    sequence = fields.Integer(default=10)
    company_id = fields.Many2one(related="subscription_id.company_id", store=True, index=True)
    currency_id = fields.Many2one(related="subscription_id.currency_id", store=True)
    product_id = fields.Many2one(
        "product.product", required=True, check_company=True,
        domain=[("recurring_invoice", "=", True), ("sale_ok", "=", True)],
    )
    name = fields.Text(
        string="Description", compute="_compute_name", store=True, readonly=False, required=True, precompute=True,
    )
    quantity = fields.Float(default=1.0, digits="Product Unit", required=True)
    price_unit = fields.Float(
        string="Unit price", digits="Product Price", compute="_compute_price_unit", store=True, readonly=False,
        precompute=True, required=True,
    )
    discount = fields.Float(string="Discount (%)", digits="Discount", default=0.0)
    tax_ids = fields.Many2many(
        "account.tax", string="Taxes", compute="_compute_tax_ids", store=True, readonly=False, precompute=True,
        check_company=True,
        # As on invoice lines: no domain on the field and archived taxes read too, since a many2many
        # hides what its domain or active_test filter out and the next invoices would silently lose
        # that tax; the billing day refuses such a line with a reason instead. The choice offered
        # in the form is limited by the view (active sales taxes of the company).
        context={"active_test": False},
    )
    price_subtotal = fields.Monetary(compute="_compute_amount", store=True, string="Subtotal")
    price_tax = fields.Monetary(compute="_compute_amount", store=True, string="Tax")
    price_total = fields.Monetary(compute="_compute_amount", store=True, string="Total")

    _quantity_not_negative = models.Constraint(
        "CHECK(quantity >= 0)", "The quantity of a subscription line cannot be negative."
    )
    _price_not_negative = models.Constraint(
        "CHECK(price_unit >= 0)", "The unit price of a subscription line cannot be negative."
    )
    _discount_range = models.Constraint(
        "CHECK(discount >= 0 AND discount <= 100)", "A discount is between 0 and 100%."
    )

    # === COMPUTE METHODS === #

    @api.depends("product_id")
    def _compute_name(self):
        for line in self:
            if line.product_id:
                line.name = line.product_id.get_product_multiline_description_sale()
            elif not line.name:
                line.name = False

    @api.depends("product_id", "subscription_id.plan_id", "subscription_id.currency_id")
    def _compute_price_unit(self):
        Pricing = self.env["subscription.pricing"]
        for line in self:
            sub = line.subscription_id
            if not line.product_id:
                line.price_unit = 0.0
                continue
            price = None
            if sub.plan_id and sub.currency_id:
                price = Pricing._get_price(line.product_id, sub.plan_id, sub.currency_id)
            if price is None:
                price = line.product_id.lst_price
            line.price_unit = price

    @api.depends("product_id", "subscription_id.fiscal_position_id", "subscription_id.company_id")
    def _compute_tax_ids(self):
        cache = {}
        for line in self:
            company = line.subscription_id.company_id or self.env.company
            taxes = line.product_id.taxes_id._filter_taxes_by_company(company)
            fpos = line.subscription_id.fiscal_position_id
            key = (fpos.id, company.id, tuple(taxes.ids))
            if key not in cache:
                cache[key] = fpos.map_tax(taxes) if fpos else taxes
            line.tax_ids = cache[key]

    def _prepare_base_line_for_taxes_computation(self, **kwargs):
        """This line as a base line for ``account.tax``'s computation (as sale order lines do)."""
        self.ensure_one()
        sub = self.subscription_id
        company = sub.company_id or self.env.company
        values = {
            "tax_ids": self.tax_ids,
            "quantity": self.quantity,
            "partner_id": sub.partner_id,
            "currency_id": sub.currency_id or company.currency_id,
            **kwargs,
        }
        return self.env["account.tax"]._prepare_base_line_for_taxes_computation(self, **values)

    @api.depends("quantity", "discount", "price_unit", "tax_ids", "currency_id")
    def _compute_amount(self):
        AccountTax = self.env["account.tax"]
        for line in self:
            company = line.company_id or self.env.company
            base_line = line._prepare_base_line_for_taxes_computation()
            AccountTax._add_tax_details_in_base_line(base_line, company)
            AccountTax._round_base_lines_tax_details([base_line], company)
            line.price_subtotal = base_line["tax_details"]["total_excluded_currency"]
            line.price_total = base_line["tax_details"]["total_included_currency"]
            line.price_tax = line.price_total - line.price_subtotal

    # === CRUD METHODS === #

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._check_amount_values(vals)
        lines = super().create(vals_list)
        self.env["subscription.mrr.log"]._sync(lines.subscription_id)
        return lines

    def write(self, vals):
        self._check_amount_values(vals)
        subs = self.subscription_id
        res = super().write(vals)
        self.env["subscription.mrr.log"]._sync(subs | self.subscription_id)
        return res

    @api.ondelete(at_uninstall=False)
    def _unlink_except_last_line_of_running(self):
        emptied = self.subscription_id.filtered(lambda s: s.state in const.RUNNING_STATES and not s.line_ids - self)
        if emptied:
            raise ValidationError(self.env._(
                "%(subs)s: a running subscription needs at least one line (close it to stop it).",
                subs=", ".join(emptied.mapped("display_name"))))

    def unlink(self):
        subs = self.subscription_id
        res = super().unlink()
        self.env["subscription.mrr.log"]._sync(subs.exists())
        return res

    @api.model
    def _check_amount_values(self, vals):
        """Refuse, before the ORM converts them, numbers no column can hold (infinity, NaN)."""
        for name in ("quantity", "price_unit", "discount"):
            value = vals.get(name)
            if value is None or value is False or isinstance(value, bool):
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            if not math.isfinite(number):
                raise ValidationError(self.env._("The %(field)s of a subscription line must be a number.",
                                                 field=self._fields[name].string.lower()))

    # === CONSTRAINT METHODS === #

    @api.constrains("quantity", "price_unit")
    def _check_amount_bounds(self):
        """Quantities and prices an invoice can hold exactly (``const.MAX_QUANTITY``, ``MAX_LINE_AMOUNT``)."""
        for line in self:
            if not (math.isfinite(line.quantity) and math.isfinite(line.price_unit)):
                raise ValidationError(self.env._("%(line)s: the quantity and the price must be numbers.",
                                                 line=line.name or line.product_id.display_name))
            if line.quantity > const.MAX_QUANTITY:
                raise ValidationError(self.env._(
                    "%(line)s: a quantity of %(qty)s is more than an invoice can hold (at most %(max)s).",
                    line=line.name or line.product_id.display_name, qty=line.quantity, max=int(const.MAX_QUANTITY)))
            if line.price_unit > const.MAX_LINE_AMOUNT or line.quantity * line.price_unit > const.MAX_LINE_AMOUNT:
                raise ValidationError(self.env._(
                    "%(line)s: an amount above %(max)s per period is more than an invoice can hold exactly.",
                    line=line.name or line.product_id.display_name, max=int(const.MAX_LINE_AMOUNT)))

    @api.constrains("product_id")
    def _check_product_is_recurring(self):
        for line in self:
            if line.product_id and not line.product_id.recurring_invoice:
                raise ValidationError(self.env._(
                    "%(product)s is not a subscription product (tick 'Subscription product' on it first).",
                    product=line.product_id.display_name,
                ))

    # === BUSINESS METHODS === #

    def _prepare_invoice_line_vals(self, period_label, ratio=None):
        """Invoice line values for one billing period (label carries the period).

        :param ratio: share of the period billed (a prorated last period): the unit price is
            multiplied by it and rounded to the product price precision
        """
        self.ensure_one()
        price_unit = self.price_unit
        if ratio is not None:
            price_unit = float_round(price_unit * ratio, precision_digits=self.env["decimal.precision"].precision_get(
                "Product Price"))
        return {
            "display_type": "product",
            "sequence": self.sequence,
            "name": f"{self.name}\n{period_label}",
            "product_id": self.product_id.id,
            "product_uom_id": self.product_id.uom_id.id,
            "quantity": self.quantity,
            "price_unit": price_unit,
            "discount": self.discount,
            "tax_ids": [fields.Command.set(self.tax_ids.ids)],
        }
