from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, format_date

from .. import const
from ..tools import log_notes, not_mailed_reason, queue_mails


class PaymentToken(models.Model):
    _inherit = "payment.token"

    subscription_expiry_reminded = fields.Char(
        readonly=True, copy=False,
        help="The expiry (YYYY-MM) the customer was reminded of for this method: one reminder per method and "
        "expiry.")

    def _expiry_key(self):
        self.ensure_one()
        return f"{self.card_exp_year:04d}-{self.card_exp_month:02d}" if self.card_exp_year and self.card_exp_month \
            else False

    def _subscription_mail_header(self):
        """Header of the customer e-mails about this payment method (see ``mail_layout_customer``)."""
        self.ensure_one()
        return {"caption": self.env._("Your payment method"), "title": self._subscription_label()}

    def _subscription_expiring_subs(self):
        """The running subscriptions this method pays whose next charge falls after its expiry."""
        self.ensure_one()
        return self.env["subscription.subscription"].sudo().search(
            [("payment_token_id", "=", self.id), ("is_card_expiring", "=", True)], order="next_invoice_date, id")


class SubscriptionSubscription(models.Model):
    """Card-expiry reminders: an autopay method that expires before the next charge gets its
    customer one reminder (per method and expiry) with the link to replace it, and the
    subscriptions are flagged in the lists. Methods without an expiry (not every provider gives
    one) are skipped."""

    _inherit = "subscription.subscription"

    is_card_expiring = fields.Boolean(
        compute="_compute_is_card_expiring", search="_search_is_card_expiring", string="Card expiring",
        help="On autopay with a card that expires before the next invoice date.")

    is_card_expiry_reminded = fields.Boolean(
        compute="_compute_is_card_expiring", search="_search_is_card_expiry_reminded",
        help="The customer was reminded of this expiry of the autopay method.")

    @api.depends("payment_token_id.card_exp_month", "payment_token_id.card_exp_year", "next_invoice_date", "state",
                 "payment_token_id.subscription_expiry_reminded")
    def _compute_is_card_expiring(self):
        expiring = set(self.search([("id", "in", self.ids), ("is_card_expiring", "=", True)]).ids) if self.ids \
            else set()
        for sub in self:
            sub.is_card_expiring = sub.id in expiring
            token = sub.payment_token_id.sudo()
            sub.is_card_expiry_reminded = bool(token and token._expiry_key()
                                               and token.subscription_expiry_reminded == token._expiry_key())

    def _search_is_card_expiry_reminded(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on 'Card expiring'."))
        self.env["payment.token"].flush_model(["card_exp_month", "card_exp_year", "subscription_expiry_reminded"])
        self.env.cr.execute("""
            SELECT id FROM payment_token
             WHERE subscription_expiry_reminded IS NOT NULL AND card_exp_year > 0 AND card_exp_month > 0
               AND subscription_expiry_reminded
                   = lpad(card_exp_year::text, 4, '0') || '-' || lpad(card_exp_month::text, 2, '0')
        """)
        tokens = [row[0] for row in self.env.cr.fetchall()]
        positive = (operator == "=") == value
        return [("payment_token_id", "in" if positive else "not in", tokens)]

    def _search_is_card_expiring(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on 'Card expiring'."))
        self.flush_model(["payment_token_id", "next_invoice_date", "state"])
        self.env["payment.token"].flush_model(["card_exp_month", "card_exp_year", "active"])
        self.env.cr.execute(SQL("""
            SELECT s.id FROM subscription_subscription s
              JOIN payment_token t ON t.id = s.payment_token_id
             WHERE s.state IN %s AND t.active AND s.next_invoice_date IS NOT NULL
               AND t.card_exp_year BETWEEN 1 AND 9999 AND t.card_exp_month BETWEEN 1 AND 12
               AND (make_date(t.card_exp_year, t.card_exp_month, 1) + INTERVAL '1 month')::date <= s.next_invoice_date
        """, const.BILLABLE_STATES))
        ids = [row[0] for row in self.env.cr.fetchall()]
        positive = (operator == "=") == value
        return [("id", "in" if positive else "not in", ids)]

    @api.model
    def _card_expiry_domain(self):
        """Autopay subscriptions whose method expires before the next charge and whose customer was
        not reminded of that expiry yet."""
        return [("is_card_expiring", "=", True), ("is_card_expiry_reminded", "=", False)]

    def _send_card_expiry_reminders(self):
        """Status run job: one reminder per payment method and expiry, to its customer, naming the
        subscriptions it pays; each subscription's chatter says so."""
        tokens = self.payment_token_id.sudo().filtered(
            lambda t: t._expiry_key() and t.subscription_expiry_reminded != t._expiry_key())
        self.flush_recordset()
        for token in tokens:
            token.subscription_expiry_reminded = token._expiry_key()
        mailed = queue_mails(
            self.env.ref("subscription_billing.mail_template_card_expiring", raise_if_not_found=False), tokens)
        notes = []
        for sub in self.filtered(lambda s: s.payment_token_id in tokens):
            token = sub.payment_token_id.sudo()
            method, date = token._subscription_label(), format_date(self.env, sub.next_invoice_date)
            notes.append((sub, self.env._(
                "Card expiry reminder e-mailed: %(method)s expires before the next charge on %(date)s.",
                method=method, date=date) if token in mailed else self.env._(
                "No card expiry reminder was e-mailed (%(why)s): %(method)s expires before the next charge on "
                "%(date)s.", why=not_mailed_reason(token), method=method, date=date)))
        log_notes(notes)
        return self  # done for today, whatever happened (never taken again in this run)

    @api.model
    def _status_jobs(self):
        """Card-expiry reminders go out with the day's other customer e-mails."""
        return super()._status_jobs() + [("_card_expiry_domain", "_send_card_expiry_reminders", "id")]
