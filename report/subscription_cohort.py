from odoo import fields, models
from odoo.tools import SQL

from .. import const

MONTHS_FOLLOWED = 12
RETENTION_MONTHS = [("%02d" % k, "Start" if not k else "+%d" % k) for k in range(MONTHS_FOLLOWED + 1)]


class SubscriptionCohort(models.Model):
    """Retention by cohort: one row per started subscription and month since its start (0 to 12,
    as far as today reaches for every subscription of its start month, so that no cohort's last
    column is a partial average), saying whether it was still running then. In a pivot, start month ×
    months since start with the average of ``retained`` is the cohort table (the share of a month's
    new subscriptions still running after 1..12 months) that Odoo's Enterprise-only cohort view
    draws. A subscription stops being retained on its closing day, or while it is suspended (on its
    suspension day), as its MRR does; a paused subscription is still a customer (retained). A SQL
    view secured by the subscriptions' rules (mirrored in ``security/subscription_security.xml``)."""

    _name = "subscription.cohort"
    _description = "Subscription retention by cohort"
    _auto = False
    _order = "date_start desc, months"
    _rec_name = "subscription_id"

    subscription_id = fields.Many2one("subscription.subscription", readonly=True)
    partner_id = fields.Many2one("res.partner", string="Customer", readonly=True)
    user_id = fields.Many2one("res.users", string="Salesperson", readonly=True)
    team_id = fields.Many2one("crm.team", string="Sales Team", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    plan_id = fields.Many2one("subscription.plan", readonly=True)
    date_start = fields.Date(string="Started on", readonly=True)
    months = fields.Selection(RETENTION_MONTHS, string="Months since start", readonly=True)
    retained = fields.Float(
        string="Retained (%)", readonly=True, aggregator="avg", digits=(16, 1),
        help="100 when the subscription was still running that many months after its start, else 0: "
        "averaged over a cohort, the share of it still running.")
    is_retained = fields.Boolean(string="Still running", readonly=True)

    @property
    def _table_query(self):
        return SQL(
            """
            SELECT s.id * %(width)s + k AS id, s.id AS subscription_id, s.commercial_partner_id AS partner_id,
                   s.user_id, s.team_id, s.company_id, s.plan_id, s.date_start,
                   LPAD(k::text, 2, '0') AS months,
                   (e.ended_on IS NULL
                    OR e.ended_on > (s.date_start + make_interval(months => k))::date) AS is_retained,
                   CASE WHEN e.ended_on IS NULL OR e.ended_on > (s.date_start + make_interval(months => k))::date
                        THEN 100.0 ELSE 0.0 END AS retained
              FROM subscription_subscription s
             CROSS JOIN LATERAL (
                   SELECT CASE WHEN s.state IN %(closed)s THEN COALESCE(s.date_closed, s.date_end, s.date_start)
                               WHEN s.state = 'suspended' THEN COALESCE(s.date_suspended, CURRENT_DATE)
                          END AS ended_on) e
             CROSS JOIN generate_series(0, %(months)s) k
             WHERE s.state != 'draft' AND s.date_start IS NOT NULL
               -- a cohort gets a column once all of its start month has reached that age
               AND (date_trunc('month', s.date_start) + make_interval(months => k + 1))::date - 1 <= CURRENT_DATE
               AND (e.ended_on IS NULL OR e.ended_on >= s.date_start)
            """,
            width=MONTHS_FOLLOWED + 1, closed=const.CLOSED_STATES, months=MONTHS_FOLLOWED,
        )
