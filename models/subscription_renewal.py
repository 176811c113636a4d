from odoo import api, fields, models
from odoo.fields import Domain
from odoo.tools import format_date

from .. import const
from ..tools import log_notes


class SubscriptionCloseReason(models.Model):
    _inherit = "subscription.close.reason"

    lost_reason_id = fields.Many2one(
        "crm.lost.reason", string="CRM lost reason",
        help="A renewal opportunity lost for this reason ends the subscription with this close reason.")


class SubscriptionSubscription(models.Model):
    """Renewals in the CRM pipeline: a term that will not renew by itself gets one renewal
    opportunity when it enters the plan's reminder days; the opportunity's outcome decides."""

    _inherit = "subscription.subscription"

    # === FIELDS === #

    renewal_lead_ids = fields.One2many("crm.lead", "subscription_id", string="Renewal opportunities",
                                       context={"active_test": False}, groups="sales_team.group_sale_salesman")
    renewal_lead_count = fields.Integer(compute="_compute_renewal_lead_count", string="Renewals")
    renewal_lead_for = fields.Date(
        copy=False, readonly=True,
        help="End of the term for which the renewal opportunity was created (one per term).")

    # === COMPUTE METHODS === #

    def _compute_renewal_lead_count(self):
        counts = dict(self.env["crm.lead"].sudo().with_context(active_test=False)._read_group(
            [("subscription_id", "in", self.ids)], ["subscription_id"], ["__count"]))
        for sub in self:
            sub.renewal_lead_count = counts.get(sub, 0)

    # === ACTION METHODS === #

    def action_view_renewal_leads(self):
        self.ensure_one()
        action = self.env["ir.actions.actions"]._for_xml_id("crm.crm_lead_all_leads")
        leads = self.renewal_lead_ids
        action.update(
            domain=[("id", "in", leads.ids)],
            context={"active_test": False, "default_type": "opportunity", "create": False},
        )
        if len(leads) == 1:
            action.update(res_id=leads.id, view_mode="form",
                          views=[(self.env.ref("crm.crm_lead_view_form").id, "form")])
        return action

    # === BUSINESS METHODS === #

    @api.model
    def _renewal_lead_domain(self):
        """Running subscriptions whose term ends within their plan's reminder days without renewing
        by itself, with no renewal opportunity for this term yet."""
        no_lead = self.env["res.company"]._subscription_per_company(
            lambda _c, today: Domain("date_end", ">=", today) & (
                Domain("renewal_lead_for", "=", False) | Domain("renewal_lead_for", "<", today)))
        return Domain("is_expiring", "=", True) & no_lead

    def _create_renewal_leads(self):
        """One renewal opportunity per subscription of this batch for its current term, in the
        salesperson's team pipeline, tagged *Renewal*: expected revenue = the next term's untaxed
        value in the company currency, expected closing = the term end. A term that already has
        one (any state, archived included) gets none: the unique index on (subscription, term end)
        is the last guard.

        :return: the opportunities created
        """
        subs = self.filtered(lambda s: s.state in const.RUNNING_STATES and s.date_end)
        existing = {(lead.subscription_id.id, lead.subscription_term_end) for lead in
                    self.env["crm.lead"].sudo().with_context(active_test=False).search(
                        [("subscription_id", "in", subs.ids)])}
        todo = subs.filtered(lambda s: (s.id, s.date_end) not in existing)
        leads = self.env["crm.lead"].sudo().create([sub._renewal_lead_vals() for sub in todo]) if todo \
            else self.env["crm.lead"]
        for sub in subs:
            sub.renewal_lead_for = sub.date_end
        log_notes((lead.subscription_id, self.env._(
            "Renewal opportunity %(lead)s created for the term ending on %(date)s.",
            lead=lead._get_html_link(), date=format_date(self.env, lead.subscription_term_end))) for lead in leads)
        return leads

    def _renewal_lead_vals(self):
        """Values of the renewal opportunity of this subscription's current term."""
        self.ensure_one()
        Team = self.env["crm.team"].sudo().with_company(self.company_id)
        team = self.team_id or Team._get_default_team_id(
            user_id=self.user_id.id or None, domain=[("company_id", "in", [False, self.company_id.id])])
        tag = self.env["crm.lead"]._subscription_renewal_tag()
        return {
            "name": self.env._("Renewal %(sub)s — %(customer)s", sub=self.name, customer=self.partner_id.name),
            "type": "opportunity",
            "partner_id": self.partner_id.id,
            "user_id": self.user_id.id,
            "team_id": team.id,
            "company_id": self.company_id.id,
            "subscription_id": self.id,
            "subscription_term_end": self.date_end,
            "date_deadline": self.date_end,
            "expected_revenue": self._next_term_value(),
            "tag_ids": [fields.Command.set(tag.ids)] if tag else False,
        }

    def _next_term_value(self):
        """The untaxed value of one more term at today's lines and prices, in the company currency
        (converted at today's rate): the amount per period × the periods in a term."""
        self.ensure_one()
        value = self.amount_untaxed * self.plan_id._periods_per_term()
        company_currency = self.company_id.currency_id
        if self.currency_id and self.currency_id != company_currency:
            value = self.currency_id._convert(value, company_currency, self.company_id,
                                              self.company_id._subscription_today())
        return company_currency.round(value)

    def _close_renewal_leads(self):
        """These subscriptions closed (or their end was scheduled): their open renewal opportunities
        are lost (reason: the close reason's CRM lost reason, if any)."""
        leads = self.env["crm.lead"].sudo().search([
            ("subscription_id", "in", self.ids), ("won_status", "=", "pending")])
        for lead in leads:
            lead.with_context(subscription_closing=True).action_set_lost(
                lost_reason_id=lead.subscription_id.close_reason_id.lost_reason_id.id or False)
            lead.message_post(body=self.env._("The subscription ends without this renewal (%(reason)s).",
                                              reason=lead.subscription_id.close_reason_id.name or "-"))

    def _action_close(self, state, reason, note=False, date_closed=None):
        res = super()._action_close(state, reason, note=note, date_closed=date_closed)
        self._close_renewal_leads()
        return res

    def _schedule_end(self, date_end, reason=None, note=False, author=None):
        """An end scheduled by hand also settles the open renewal opportunity (lost)."""
        res = super()._schedule_end(date_end, reason=reason, note=note, author=author)
        self._close_renewal_leads()
        return res

    @api.model
    def _status_jobs(self):
        """Renewal opportunities are created after the renewal reminders."""
        jobs = super()._status_jobs()
        index = next((i for i, job in enumerate(jobs) if job[1] == "_send_renewal_reminder"), len(jobs) - 1)
        jobs.insert(index + 1, ("_renewal_lead_domain", "_create_renewal_leads", "date_end, id"))
        return jobs
