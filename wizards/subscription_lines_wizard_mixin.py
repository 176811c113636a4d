from odoo import api, fields, models


class SubscriptionLinesWizardMixin(models.AbstractModel):
    """A dialog that edits a subscription's plan and lines before applying them (change now or at
    the next period, renewal terms): its ``plan_id``, ``currency_id`` and ``line_ids``."""

    _name = "subscription.lines.wizard.mixin"
    _description = "Dialog editing a subscription's plan and lines"

    @api.onchange("plan_id")
    def _onchange_plan_id(self):
        """A new plan brings its prices (the product's plan pricing); prices can then be typed."""
        Pricing = self.env["subscription.pricing"]
        for line in self.line_ids.filtered("product_id"):
            price = Pricing._get_price(line.product_id, self.plan_id, self.currency_id)
            if price is not None:
                line.price_unit = price

    def _lines_vals(self):
        """The lines as ``subscription._new_lines`` / ``_apply_change`` take them."""
        return [{"line_id": line.line_id.id, "product_id": line.product_id.id, "quantity": line.quantity,
                 "price_unit": line.price_unit, "discount": line.discount}
                for line in self.line_ids if line.product_id]


class SubscriptionWizardLineMixin(models.AbstractModel):
    """A line of such a dialog (its ``wizard_id`` is the concrete model's)."""

    _name = "subscription.wizard.line.mixin"
    _description = "Line edited in a subscription dialog"

    line_id = fields.Many2one("subscription.line", string="Current line")
    product_id = fields.Many2one("product.product", required=True,
                                 domain=[("recurring_invoice", "=", True), ("sale_ok", "=", True)])
    quantity = fields.Float(default=1.0, digits="Product Unit")
    price_unit = fields.Float(string="Unit price", digits="Product Price")
    discount = fields.Float(string="Discount (%)", digits="Discount")

    @api.onchange("product_id")
    def _onchange_product_id(self):
        """Another product takes its price on the dialog's plan."""
        if self.product_id and self.product_id != self.line_id.product_id:
            wizard = self.wizard_id
            price = self.env["subscription.pricing"]._get_price(self.product_id, wizard.plan_id, wizard.currency_id)
            self.price_unit = self.product_id.lst_price if price is None else price
