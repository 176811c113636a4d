from odoo import fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from .. import const


class SubscriptionCollection(models.Model):
    """Collections: one row per running subscription with money to collect (an invoice past due,
    or past due / suspended with an unpaid invoice), what is owed, since when, the last attempt and
    the next step. A SQL view, as Odoo's own reports: sortable and groupable by customer, salesperson
    or company, and secured by the subscriptions' own record rules (mirrored below)."""

    _name = "subscription.collection"
    _description = "Collections"
    _auto = False
    _order = "oldest_due_date, id"
    _rec_name = "subscription_id"

    subscription_id = fields.Many2one("subscription.subscription", readonly=True)
    partner_id = fields.Many2one("res.partner", string="Customer", readonly=True)
    user_id = fields.Many2one("res.users", string="Salesperson", readonly=True)
    team_id = fields.Many2one("crm.team", string="Sales Team", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    plan_id = fields.Many2one("subscription.plan", readonly=True)
    state = fields.Selection(const.SUBSCRIPTION_STATES, readonly=True)
    is_autopay = fields.Boolean(string="Autopay", readonly=True)
    amount_due = fields.Monetary(string="Unpaid", readonly=True, aggregator="sum")
    amount_overdue = fields.Monetary(string="Overdue", readonly=True, aggregator="sum")
    invoice_count = fields.Integer(string="Unpaid invoices", readonly=True, aggregator="sum")
    oldest_due_date = fields.Date(string="Oldest due date", readonly=True, aggregator="min")
    days_overdue = fields.Integer(readonly=True, aggregator="max")
    last_charge_id = fields.Many2one("subscription.charge", string="Last attempt", readonly=True)
    last_attempt_date = fields.Datetime(string="Last attempt on", readonly=True, aggregator="max")
    last_attempt_state = fields.Selection(
        [("pending", "In progress"), ("done", "Paid"), ("failed", "Failed"), ("cancelled", "Cancelled")],
        string="Last attempt result", readonly=True)
    last_attempt_reason = fields.Char(related="last_charge_id.failure_label", string="Reason")
    next_retry_date = fields.Date(string="Next retry", readonly=True, aggregator="min")
    next_step = fields.Char(compute="_compute_next_step")

    # === COMPUTE METHODS === #

    def _compute_next_step(self):
        subs = self.subscription_id
        collection = subs.sudo()._collection_data()
        for row in self:
            sub = row.subscription_id.sudo()
            row.next_step = sub._health_texts(collection.get(sub) or {})[1] if sub else False

    # === CORE METHODS OVERRIDES === #

    @property
    def _table_query(self):
        """The subscriptions with money to collect (set-based: one pass over the open invoices, the
        last charge per subscription through an index)."""
        return SQL(
            """
            WITH unpaid AS (
                SELECT m.subscription_id,
                       SUM(m.amount_residual) AS amount_due,
                       SUM(CASE WHEN m.invoice_date_due < CURRENT_DATE THEN m.amount_residual ELSE 0 END)
                           AS amount_overdue,
                       COUNT(*) AS invoice_count,
                       MIN(m.invoice_date_due) AS oldest_due_date,
                       MIN(m.subscription_charge_date) AS next_retry_date
                  FROM account_move m
                 WHERE m.subscription_id IS NOT NULL AND m.move_type = 'out_invoice' AND m.state = 'posted'
                   AND m.payment_state IN ('not_paid', 'partial')
                 GROUP BY m.subscription_id
            )
            SELECT s.id AS id, s.id AS subscription_id, s.partner_id, s.user_id, s.team_id, s.company_id,
                   s.currency_id, s.plan_id, s.state, s.payment_token_id IS NOT NULL AS is_autopay,
                   u.amount_due, u.amount_overdue, u.invoice_count, u.oldest_due_date,
                   GREATEST(CURRENT_DATE - u.oldest_due_date, 0) AS days_overdue,
                   CASE WHEN s.payment_token_id IS NOT NULL THEN u.next_retry_date END AS next_retry_date,
                   lc.id AS last_charge_id, lc.date_attempt AS last_attempt_date, lc.state AS last_attempt_state
              FROM subscription_subscription s
              JOIN unpaid u ON u.subscription_id = s.id
              LEFT JOIN LATERAL (
                    SELECT c.id, c.date_attempt, c.state FROM subscription_charge c
                     WHERE c.subscription_id = s.id ORDER BY c.id DESC LIMIT 1
              ) lc ON TRUE
             WHERE s.state IN ('active', 'past_due', 'suspended', 'paused')
               AND (s.state IN ('past_due', 'suspended') OR u.amount_overdue > 0)
            """
        )

    # === ACTION METHODS === #

    def action_open_subscription(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": "subscription.subscription",
            "res_id": self.subscription_id.id,
            "view_mode": "form",
            "views": [(False, "form")],
        }

    def action_send_reminder(self):
        """E-mail the selected customers a payment reminder naming their overdue invoices, the
        amount, the due dates and a pay link.

        :return: a notification saying how many were e-mailed and why others were skipped
        :raise AccessError: the user may not edit these subscriptions
        """
        return self.subscription_id.action_send_payment_reminder()

    def action_retry_now(self):
        """Charge again now the last failed attempt of each selected autopay subscription.

        :return: an action opening the new attempts
        :raise UserError: none of the selected rows has a failed charge to retry
        """
        charges = self.last_charge_id.filtered(lambda c: c.state == "failed" and c.is_latest_attempt)
        skipped = self - self.filtered(lambda r: r.last_charge_id in charges)
        if not charges:
            raise UserError(self.env._(
                "None of the selected subscriptions has a failed autopay charge to retry: manual payers pay "
                "their invoices themselves (send them a reminder)."))
        action = charges.action_retry_now()
        if skipped:
            return {"type": "ir.actions.client", "tag": "display_notification", "params": {
                "type": "warning", "sticky": False,
                "title": self.env._("%(count)s charged again", count=len(charges)),
                "message": self.env._("%(count)s skipped: no failed autopay charge to retry (%(subs)s).",
                                      count=len(skipped), subs=", ".join(skipped.subscription_id.mapped("name"))),
                "next": action,
            }}
        return action
