from odoo import api, fields, models


class SubscriptionPricing(models.Model):
    _name = "subscription.pricing"
    _description = "Subscription Pricing"
    _order = "product_tmpl_id, plan_id"
    _check_company_auto = True

    # === FIELDS === #

    product_tmpl_id = fields.Many2one(
        "product.template", string="Product", required=True, ondelete="cascade", index=True,
        domain=[("recurring_invoice", "=", True)], check_company=True,
    )
    plan_id = fields.Many2one("subscription.plan", required=True, ondelete="cascade", index=True, check_company=True)
    price = fields.Monetary(required=True, default=0.0)
    currency_id = fields.Many2one(
        "res.currency", required=True, default=lambda self: self.env.company.currency_id,
    )
    company_id = fields.Many2one(related="plan_id.company_id", store=True, index=True)

    _price_not_negative = models.Constraint("CHECK(price >= 0)", "A subscription price cannot be negative.")
    _product_plan_currency_uniq = models.Constraint(
        "UNIQUE(product_tmpl_id, plan_id, currency_id)",
        "A product has one price per plan and currency.",
    )

    # === BUSINESS METHODS === #

    @api.model
    def _get_price(self, product, plan, currency):
        """Price of ``product`` on ``plan`` in ``currency`` (its own or converted), or None."""
        pricings = self.search([("product_tmpl_id", "=", product.product_tmpl_id.id), ("plan_id", "=", plan.id)])
        exact = pricings.filtered(lambda p: p.currency_id == currency)[:1]
        if exact:
            return exact.price
        if not pricings:
            return None
        pricing = pricings[0]
        company = plan.company_id or self.env.company
        return pricing.currency_id._convert(pricing.price, currency, company, fields.Date.context_today(self))
