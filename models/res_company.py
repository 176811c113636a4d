import pytz

from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.fields import Domain

from odoo.addons.base.models.res_partner import _tz_get


class ResCompany(models.Model):
    _inherit = "res.company"

    # === FIELDS === #

    subscription_retry_rule_ids = fields.One2many("subscription.retry.rule", "company_id", string="Autopay retries")
    subscription_after_retries = fields.Selection(
        [("suspend", "Suspend the subscription"), ("notify", "Keep it active and notify the salesperson")],
        string="When the retries are exhausted", default="suspend", required=True,
    )
    subscription_tz = fields.Selection(
        _tz_get, string="Subscriptions time zone",
        help="The billing day, the autopay run and the status run decide what 'today' is in this time zone: "
        "nothing is invoiced or charged before its period begins here. Empty: the company's address time "
        "zone, else the administrator's, else UTC.",
    )
    subscription_grace_days = fields.Integer(
        string="Grace period (days)", default=14,
        help="Days a manual payer's invoice may stay overdue before the subscription is suspended.",
    )

    # === CONSTRAINT METHODS === #

    @api.constrains("subscription_grace_days")
    def _check_subscription_grace_days(self):
        for company in self:
            if company.subscription_grace_days < 0:
                raise ValidationError(self.env._("The grace period cannot be negative."))
            if company.subscription_grace_days > 3650:
                raise ValidationError(self.env._("The grace period is at most 3650 days (ten years)."))

    # === BUSINESS METHODS === #

    @api.model
    def _subscription_per_company(self, domain_for):
        """A domain true in every company for what ``domain_for(company, today)`` says there, with
        ``today`` the company's own (its subscriptions time zone): what the scheduled actions
        select. Returns ``Domain.OR`` of ``company_id = company & domain_for(...)``."""
        return Domain.OR(
            Domain("company_id", "=", company.id) & domain_for(company, company._subscription_today())
            for company in self.sudo().search([])
        )

    def _subscription_today(self):
        """Today's date in the company's subscriptions time zone (see ``subscription_tz``)."""
        self.ensure_one()
        admin_tz = self.env.ref("base.user_admin", raise_if_not_found=False).sudo().tz if not (
            self.subscription_tz or self.partner_id.tz) else None
        tz = pytz.timezone(self.subscription_tz or self.partner_id.tz or admin_tz or "UTC")
        return fields.Datetime.now().replace(tzinfo=pytz.utc).astimezone(tz).date()
