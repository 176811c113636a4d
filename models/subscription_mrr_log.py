import logging

from odoo import api, fields, models
from odoo.fields import Domain
from odoo.tools import split_every

from .. import const

_logger = logging.getLogger(__name__)

EVENT_TYPES = [
    ("new", "New"),
    ("expansion", "Expansion"),
    ("contraction", "Contraction"),
    ("churn", "Churn"),
    ("reactivation", "Reactivation"),
    ("transfer", "Transfer"),
]
CHURN_KINDS = [("voluntary", "Voluntary"), ("involuntary", "Involuntary")]
SEED_BATCH = 1000


class SubscriptionMrrLog(models.Model):
    """The revenue event log: one row per change of a subscription's monthly recurring revenue
    (MRR, the model Odoo Enterprise and Chargebee use). For every subscription the sum of its rows
    equals its current ``recurring_monthly`` (0 while suspended and once ended): the log is written
    where the MRR changes, as the difference with what the log already holds, so a rerun adds
    nothing."""

    _name = "subscription.mrr.log"
    _description = "Subscription MRR event"
    _order = "event_date desc, id desc"
    _rec_name = "subscription_id"

    subscription_id = fields.Many2one(
        "subscription.subscription", required=True, index=True, ondelete="cascade", readonly=True)
    event_date = fields.Date(required=True, readonly=True, index=True)
    event_type = fields.Selection(EVENT_TYPES, required=True, readonly=True)
    mrr_change = fields.Monetary(
        string="MRR change", currency_field="currency_id", readonly=True, aggregator="sum",
        help="Signed change of the monthly recurring revenue, untaxed, in the company currency.")
    churn_kind = fields.Selection(CHURN_KINDS, readonly=True,
                                  help="On churn: the customer left (voluntary) or stopped paying (involuntary).")
    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    currency_id = fields.Many2one(related="company_id.currency_id", store=True, string="Currency")
    partner_id = fields.Many2one("res.partner", string="Customer", readonly=True)
    plan_id = fields.Many2one("subscription.plan", readonly=True)
    user_id = fields.Many2one("res.users", string="Salesperson", readonly=True)
    team_id = fields.Many2one("crm.team", string="Sales Team", readonly=True)

    # === BUSINESS METHODS === #

    @api.model
    def _sync(self, subscriptions, event_date=None):
        """Log the MRR changes of these subscriptions: for each, the difference between its current
        ``recurring_monthly`` and the sum of its log, typed (new, expansion, contraction, churn,
        reactivation); nothing when they agree. Set-based: one grouped read, one create.

        :param subscriptions: ``subscription.subscription`` records
        :param event_date: the day of the change (default: each company's today)
        :return: the events created
        """
        subs = subscriptions.sudo().filtered("id")
        if not subs:
            return self.browse()
        subs.flush_recordset(["recurring_monthly"])
        logged = {sub.id: (total, count) for sub, total, count in self.sudo()._read_group(
            [("subscription_id", "in", subs.ids)], ["subscription_id"], ["mrr_change:sum", "__count"])}
        vals_list = []
        for sub in subs:
            total, count = logged.get(sub.id, (0.0, 0))
            currency = sub.company_id.currency_id
            change = currency.round(sub.recurring_monthly - total)
            if currency.is_zero(change):
                continue
            vals = sub._mrr_event_vals(change, event_date or sub.company_id._subscription_today())
            if currency.is_zero(total):
                vals["event_type"] = "reactivation" if count else "new"
            elif currency.is_zero(sub.recurring_monthly):
                vals.update(event_type="churn", churn_kind=sub._churn_kind())
            else:
                vals["event_type"] = "expansion" if change > 0 else "contraction"
            vals_list.append(vals)
        return self.sudo().create(vals_list) if vals_list else self.browse()

    @api.model
    def _seed(self):
        """Existing databases: each subscription without a log gets one ``new`` event at its start
        (the MRR it has, or would have if running) and, if it is not earning now, a ``churn`` event
        (on its closing or suspension day). In batches of ``SEED_BATCH``."""
        Subscription = self.env["subscription.subscription"].sudo()
        domain = Domain("state", "!=", "draft") & Domain("mrr_log_ids", "=", False)
        ids = Subscription.search(domain).ids
        for batch in split_every(SEED_BATCH, ids, Subscription.browse):
            vals_list = []
            for sub in batch:
                potential = sub._mrr_if_running()
                if sub.company_id.currency_id.is_zero(potential):
                    continue
                vals_list.append(dict(sub._mrr_event_vals(potential, sub.date_start), event_type="new"))
                if sub.company_id.currency_id.is_zero(sub.recurring_monthly):
                    day = sub.date_closed or sub.date_suspended or sub.date_end or sub.date_start
                    vals_list.append(dict(sub._mrr_event_vals(-potential, day), event_type="churn",
                                          churn_kind=sub._churn_kind()))
            self.create(vals_list)
            batch.invalidate_recordset()
        _logger.info("MRR log seeded for %s subscriptions", len(ids))

    @api.model
    def _upgrade(self):
        """Upgrading a database to the log: suspended subscriptions' stored MRR becomes 0 (it used to
        count them), then the log is seeded (see ``_seed``)."""
        Subscription = self.env["subscription.subscription"].sudo()
        suspended = Subscription.search([("state", "=", "suspended")])
        self.env.add_to_compute(Subscription._fields["recurring_monthly"], suspended)
        suspended.flush_recordset(["recurring_monthly"])
        self._seed()

    @api.model
    def _check_invariant(self, subscriptions=None):
        """The subscriptions (default: all started ones) whose log does not add up to their current
        MRR, as ``{subscription: (logged, current)}`` (empty when all agree)."""
        subs = (subscriptions or self.env["subscription.subscription"].sudo().search(
            [("state", "!=", "draft")])).sudo()
        logged = dict(self.sudo()._read_group([("subscription_id", "in", subs.ids)], ["subscription_id"],
                                              ["mrr_change:sum"]))
        return {sub: (logged.get(sub, 0.0), sub.recurring_monthly) for sub in subs
                if not sub.company_id.currency_id.is_zero(logged.get(sub, 0.0) - sub.recurring_monthly)}


class SubscriptionSubscription(models.Model):
    _inherit = "subscription.subscription"

    mrr_log_ids = fields.One2many("subscription.mrr.log", "subscription_id", string="MRR events",
                                  groups=const.SUBSCRIPTION_DETAIL_GROUPS)

    def _mrr_event_vals(self, change, event_date):
        """Values of an MRR event of this subscription (type to add)."""
        self.ensure_one()
        return {
            "subscription_id": self.id, "event_date": event_date, "mrr_change": change,
            "company_id": self.company_id.id, "partner_id": self.commercial_partner_id.id,
            "plan_id": self.plan_id.id, "user_id": self.user_id.id, "team_id": self.team_id.id,
        }

    def _churn_kind(self):
        """Involuntary when the customer stopped paying (suspended after failed payments or an unpaid
        invoice, or closed for a payment failure), else voluntary."""
        self.ensure_one()
        if self.state == "suspended":
            return "voluntary" if self.suspension_cause == "staff" else "involuntary"
        if self.close_reason_id == self.env.ref("subscription_billing.close_reason_payment_failure",
                                                raise_if_not_found=False):
            return "involuntary"
        return "voluntary"

    def _mrr_if_running(self):
        """The MRR this subscription brings when it runs (its lines, normalized to a month, in the
        company currency), whatever its state."""
        self.ensure_one()
        monthly = self.amount_untaxed * self.plan_id._monthly_factor() if self.plan_id else 0.0
        company_currency = self.company_id.currency_id
        if self.currency_id and self.currency_id != company_currency:
            monthly = self.currency_id._convert(monthly, company_currency, self.company_id,
                                                fields.Date.context_today(self))
        return company_currency.round(monthly)
