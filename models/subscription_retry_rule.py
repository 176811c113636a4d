from odoo import api, fields, models
from odoo.exceptions import ValidationError

DEFAULT_RETRY_DELAYS = (1, 3, 5)


class SubscriptionRetryRule(models.Model):
    _name = "subscription.retry.rule"
    _description = "Autopay retry rule"
    _order = "company_id, sequence, id"
    _check_company_auto = True

    # === FIELDS === #

    sequence = fields.Integer(default=10)
    company_id = fields.Many2one(
        "res.company", required=True, index=True, ondelete="cascade", default=lambda self: self.env.company,
    )
    delay_days = fields.Integer(
        string="Retry after (days)", required=True, default=1,
        help="Days after the previous failed attempt before this retry is charged.",
    )
    mail_template_id = fields.Many2one(
        "mail.template", string="E-mail to the customer",
        domain="[('model', '=', 'subscription.charge')]",
        default=lambda self: self.env.ref("subscription_billing.mail_template_payment_failed",
                                          raise_if_not_found=False),
        help="Sent when the attempt before this retry fails; empty sends nothing.",
    )

    # === CONSTRAINT METHODS === #

    @api.constrains("delay_days")
    def _check_delay_days(self):
        for rule in self:
            if rule.delay_days < 1:
                raise ValidationError(self.env._("A retry must wait at least one day."))
            if rule.delay_days > 365:
                raise ValidationError(self.env._("A retry waits at most 365 days."))

    # === BUSINESS METHODS === #

    @api.model
    def _get_for_company(self, company):
        """The company's retry rules as ``[(delay_days, template), ...]`` (defaults when none)."""
        rules = self.sudo().search([("company_id", "=", company.id)])
        if rules:
            return [(rule.delay_days, rule.mail_template_id) for rule in rules]
        template = self.env.ref("subscription_billing.mail_template_payment_failed", raise_if_not_found=False)
        return [(delay, template) for delay in DEFAULT_RETRY_DELAYS]
