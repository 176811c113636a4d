from odoo import api, fields, models
from odoo.exceptions import ValidationError


class ResCompany(models.Model):
    _inherit = "res.company"

    subscription_retry_rule_ids = fields.One2many("subscription.retry.rule", "company_id", string="Autopay retries")
    subscription_after_retries = fields.Selection(
        [("suspend", "Suspend the subscription"), ("notify", "Keep it active and notify the salesperson")],
        string="When the retries are exhausted", default="suspend", required=True,
    )
    subscription_grace_days = fields.Integer(
        string="Grace period (days)", default=14,
        help="Days a manual payer's invoice may stay overdue before the subscription is suspended.",
    )

    @api.constrains("subscription_grace_days")
    def _check_subscription_grace_days(self):
        for company in self:
            if company.subscription_grace_days < 0:
                raise ValidationError(self.env._("The grace period cannot be negative."))
