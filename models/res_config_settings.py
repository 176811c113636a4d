from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    subscription_retry_rule_ids = fields.One2many(
        related="company_id.subscription_retry_rule_ids", readonly=False,
    )
    subscription_after_retries = fields.Selection(
        related="company_id.subscription_after_retries", readonly=False,
    )
    subscription_grace_days = fields.Integer(related="company_id.subscription_grace_days", readonly=False)
    subscription_tz = fields.Selection(related="company_id.subscription_tz", readonly=False)
