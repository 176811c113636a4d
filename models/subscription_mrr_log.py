import logging

from odoo import api, fields, models
from odoo.fields import Domain
from odoo.tools import SQL, split_every

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
INVARIANT_NOTES = 200


class SubscriptionMrrLog(models.Model):
    """The revenue event log: one row per change of a subscription's monthly recurring revenue
    (MRR, the model Odoo Enterprise and Chargebee use). For every subscription the sum of its rows
    equals its current ``recurring_monthly`` (0 while suspended or paused and once ended): the log is written
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
    product_id = fields.Many2one(
        "product.product", string="Main product", readonly=True,
        help="The subscription's main product when the event happened (its line with the largest amount).")
    country_id = fields.Many2one("res.country", string="Country", readonly=True,
                                 help="The customer's country when the event happened.")
    close_reason_id = fields.Many2one("subscription.close.reason", string="Close reason", readonly=True,
                                      help="On churn: why the subscription was closed (empty for a suspension).")
    churn_cause = fields.Char(
        compute="_compute_churn_cause", string="Churn cause",
        help="On churn: the close reason, or why the subscription was suspended.")

    # === COMPUTE METHODS === #

    @api.depends("event_type", "close_reason_id", "churn_kind")
    def _compute_churn_cause(self):
        for event in self:
            if event.event_type != "churn":
                event.churn_cause = False
            elif event.close_reason_id:
                event.churn_cause = event.close_reason_id.name
            elif event.churn_kind == "involuntary":
                event.churn_cause = self.env._("Suspended for non-payment")
            else:
                event.churn_cause = self.env._("Suspended by staff")

    # === BUSINESS METHODS === #

    @api.model
    def _sync(self, subscriptions, event_date=None):
        """Log the MRR changes of these subscriptions: for each, the difference between its current
        ``recurring_monthly`` and the sum of its log, typed (new, expansion, contraction, churn,
        reactivation); nothing when they agree. Set-based: one grouped read, one create.

        :param subscriptions: ``subscription.subscription`` records
        Nothing under the context key ``subscription_mrr_defer`` (the caller syncs once at the end).

        :param event_date: the day of the change; default: the context's ``subscription_event_date``
            (a back-dated change), else the day the change takes effect (see
            ``subscription._mrr_event_day``)
        :return: the events created
        """
        if self.env.context.get("subscription_mrr_defer"):
            return self.browse()  # a change in several writes logs once, at its end
        event_date = event_date or self.env.context.get("subscription_event_date")
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
            if currency.is_zero(total):
                event_type = "reactivation" if count else "new"
            elif currency.is_zero(sub.recurring_monthly):
                # a pause is a contraction to 0 (churn only if it closes without resuming)
                event_type = "contraction" if sub.state == "paused" else "churn"
            else:
                event_type = "expansion" if change > 0 else "contraction"
            vals = sub._mrr_event_vals(change, event_date or sub._mrr_event_day(event_type))
            vals["event_type"] = event_type
            if event_type == "churn":
                vals.update(churn_kind=sub._churn_kind(), close_reason_id=sub.close_reason_id.id)
            vals_list.append(vals)
        return self.sudo().create(vals_list) if vals_list else self.browse()

    @api.model
    def _transfer_snapshot(self, subscription, event_date):
        """What ``_transfer`` needs from before a change of ``subscription``: its event values and
        the MRR its log holds (key ``_logged``)."""
        sub = subscription.sudo()
        sub.ensure_one()
        self.flush_model(["mrr_change"])
        [(logged,)] = self.sudo()._read_group([("subscription_id", "=", sub.id)], [], ["mrr_change:sum"])
        return {**sub._mrr_event_vals(0.0, event_date), "_logged": logged or 0.0}

    @api.model
    def _transfer(self, subscription, before):
        """The MRR of ``subscription`` moved to another plan or main product: a ``transfer`` event
        takes what its log held off the old plan/product and another puts it on the new ones, so
        breakdowns by plan or product stay true while the subscription's total (and the
        company's) is unchanged; the difference in amount is the expansion or contraction
        ``_sync`` logs. Nothing when neither changed.

        :param subscription: one ``subscription.subscription``
        :param dict before: ``_transfer_snapshot`` taken before the change
        :return: the two events created (or none)
        """
        sub = subscription.sudo()
        after = sub._mrr_event_vals(0.0, before["event_date"])
        moved = sub.company_id.currency_id.round(before["_logged"])
        if (after["plan_id"], after["product_id"]) == (before["plan_id"], before["product_id"]) \
                or sub.company_id.currency_id.is_zero(moved):
            return self.browse()
        old = {key: value for key, value in before.items() if not key.startswith("_")}
        return self.sudo().create([
            {**old, "mrr_change": -moved, "event_type": "transfer"},
            {**after, "mrr_change": moved, "event_type": "transfer"},
        ])

    @api.model
    def _churn_paused(self, subscriptions):
        """Paused subscriptions that closed without resuming: the contraction their pause logged
        becomes churn on the closing day (a ``contraction`` event giving it back and a ``churn``
        event of the same amount), so churn counts them and the log still adds up to 0.
        Set-based: one grouped read, one read, one create.

        :param subscriptions: closed ``subscription.subscription`` records that were paused
        :return: the events created
        """
        subs = subscriptions.sudo()
        if not subs:
            return self.browse()
        latest = [event_id for _sub, event_id in self.sudo()._read_group(
            [("subscription_id", "in", subs.ids), ("event_type", "=", "contraction")],
            ["subscription_id"], ["id:max"])]
        vals_list = []
        for pause in self.sudo().browse(latest):
            sub = pause.subscription_id
            lost = -pause.mrr_change
            if sub.company_id.currency_id.compare_amounts(lost, 0) <= 0:
                continue
            day = sub.date_closed or sub._mrr_event_day("churn")
            vals_list += [
                dict(sub._mrr_event_vals(lost, day), event_type="contraction"),
                dict(sub._mrr_event_vals(-lost, day), event_type="churn", churn_kind=sub._churn_kind(),
                     close_reason_id=sub.close_reason_id.id),
            ]
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
                                          churn_kind=sub._churn_kind(), close_reason_id=sub.close_reason_id.id))
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
        MRR, as ``{subscription: (logged, current)}`` (empty when all agree). One aggregate query
        (amounts are numeric: the sums are exact)."""
        if subscriptions is not None and not subscriptions:
            return {}
        Subscription = self.env["subscription.subscription"].sudo()
        self.flush_model(["subscription_id", "mrr_change"])
        Subscription.flush_model(["state", "recurring_monthly"])
        where = SQL("s.id IN %s", tuple(subscriptions.ids)) if subscriptions else SQL("s.state != 'draft'")
        self.env.cr.execute(SQL("""
            SELECT s.id, COALESCE(l.total, 0), COALESCE(s.recurring_monthly, 0)
              FROM subscription_subscription s
              LEFT JOIN (SELECT subscription_id, SUM(mrr_change) AS total
                           FROM subscription_mrr_log GROUP BY subscription_id) l ON l.subscription_id = s.id
             WHERE %s AND COALESCE(l.total, 0) != COALESCE(s.recurring_monthly, 0)
             ORDER BY s.id
        """, where))
        return {Subscription.browse(sub_id): (float(logged), float(current))
                for sub_id, logged, current in self.env.cr.fetchall()}

    @api.model
    def _cron_check_invariant(self):
        """Weekly check of the log: every subscription whose events do not add up to its current
        MRR is reported in the server log (an error naming at most 50) and gets a note in its
        chatter, once per week the check finds it. The log is not changed: a difference means a
        change of MRR was made around the ORM (SQL, another module) and is investigated, not hidden.

        :return: ``{subscription: (logged, current)}`` as ``_check_invariant``
        """
        wrong = self._check_invariant()
        if wrong:
            shown = list(wrong.items())[:50]
            _logger.error("MRR log does not add up for %s subscription(s): %s", len(wrong), ", ".join(
                f"{sub.name} (logged {logged}, current {current})" for sub, (logged, current) in shown))
            for sub, (logged, current) in list(wrong.items())[:INVARIANT_NOTES]:
                sub.message_post(body=self.env._(
                    "The MRR log of this subscription adds up to %(logged)s while its MRR is %(current)s: a change "
                    "was made without the log. Tell your administrator.", logged=logged, current=current))
        return wrong


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
            "product_id": self._main_product().id, "country_id": self.commercial_partner_id.country_id.id,
        }

    def _main_product(self):
        """The product of this subscription's line with the largest untaxed amount (the first line
        on a tie; empty without lines)."""
        self.ensure_one()
        lines = self.line_ids.sorted(lambda line: (-line.price_subtotal, line.sequence, line.id))
        return lines[:1].product_id

    def _mrr_event_day(self, event_type):
        """The day an MRR event of this subscription takes effect: a start on its start day (today
        at the latest), a churn on its closing or suspension day, anything else on the company's
        today."""
        self.ensure_one()
        today = self.company_id._subscription_today()
        if event_type == "new" and self.date_start:
            return min(self.date_start, today)
        if event_type == "churn":
            return self.date_closed or (self.state == "suspended" and self.date_suspended) or today
        return today

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
