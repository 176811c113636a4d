from odoo import api, fields, models
from odoo.exceptions import ValidationError


class ProductTemplate(models.Model):
    _inherit = "product.template"

    recurring_invoice = fields.Boolean(
        string="Subscription product",
        help="Sold on subscription plans and invoiced every billing period.",
    )
    subscription_pricing_ids = fields.One2many(
        "subscription.pricing", "product_tmpl_id", string="Subscription prices", copy=True,
    )

    @api.constrains("recurring_invoice", "type")
    def _check_recurring_invoice_type(self):
        for product in self:
            if product.recurring_invoice and product.type == "combo":
                raise ValidationError(
                    self.env._("Combo product %(name)s cannot be a subscription product.", name=product.name)
                )
