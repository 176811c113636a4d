from collections import defaultdict
from datetime import timedelta

from odoo import api, fields, models
from odoo.fields import Domain
from odoo.tools import format_amount, format_date

from .. import const

# Why a subscription was suspended: the summaries and e-mails explain each in its own words.
SUSPENSION_CAUSES = [
    ("staff", "By staff"),
    ("payment", "Autopay failed"),
    ("overdue", "Invoice unpaid"),
]


class SubscriptionSubscription(models.Model):
    """A subscription's standing and why: what is owed and since when, the last failure, the next
    retry or the end of the grace period, and what to do next — one line on the form's banner, the
    contact's tab, the collections list and (in the customer's words) the portal."""

    _inherit = "subscription.subscription"

    # === FIELDS === #

    suspension_cause = fields.Selection(
        SUSPENSION_CAUSES, copy=False, readonly=True, groups=const.SUBSCRIPTION_DETAIL_GROUPS,
        help="Why the subscription was last suspended.",
    )
    suspension_note = fields.Text(
        string="Suspension reason", copy=False, readonly=True, groups=const.SUBSCRIPTION_DETAIL_GROUPS,
        help="The reason staff gave when suspending.",
    )
    amount_due = fields.Monetary(
        compute="_compute_collection", string="Unpaid", groups=const.SUBSCRIPTION_DETAIL_GROUPS,
        help="What is left to pay on the subscription's posted invoices, in its currency.",
    )
    amount_overdue = fields.Monetary(
        compute="_compute_collection", string="Overdue amount", groups=const.SUBSCRIPTION_DETAIL_GROUPS,
        help="What is left to pay on the invoices past their due date, in the subscription's currency.",
    )
    overdue_invoice_ids = fields.Many2many(
        "account.move", compute="_compute_collection", string="Overdue invoices",
        groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    overdue_invoices_label = fields.Char(
        compute="_compute_collection", string="Overdue invoices (names)", groups=const.SUBSCRIPTION_DETAIL_GROUPS,
        help="The overdue invoices as e-mail subjects name them: their numbers, or how many beyond three.",
    )
    grace_end_date = fields.Date(
        compute="_compute_collection", string="Suspended on", groups=const.SUBSCRIPTION_DETAIL_GROUPS,
        help="Day a manual payer's subscription is suspended if the overdue invoice is still unpaid.",
    )
    payment_method_label = fields.Char(
        compute="_compute_payment_method_label", string="Autopay with",
        help="The autopay payment method as the customer knows it, e.g. Visa •••• 4242, exp. 12/28.",
    )
    health_summary = fields.Char(
        compute="_compute_collection", string="Standing", groups=const.SUBSCRIPTION_DETAIL_GROUPS,
        help="Since when, how much, why, and the next step: one line.",
    )
    health_next_step = fields.Char(compute="_compute_collection", string="Next step",
                                   groups=const.SUBSCRIPTION_DETAIL_GROUPS)

    # === COMPUTE METHODS === #

    @api.depends("payment_token_id")
    def _compute_payment_method_label(self):
        for sub in self:
            sub.payment_method_label = sub.payment_token_id._subscription_label()

    @api.depends("state", "payment_token_id", "suspension_cause", "invoice_ids.amount_residual",
                 "invoice_ids.payment_state", "charge_ids.state")
    def _compute_collection(self):
        data = self._collection_data()
        for sub in self:
            values = data.get(sub) or {}
            sub.amount_due = values.get("amount_due", 0.0)
            sub.amount_overdue = values.get("amount_overdue", 0.0)
            sub.overdue_invoice_ids = values.get("overdue", self.env["account.move"])
            overdue = sub.overdue_invoice_ids
            sub.overdue_invoices_label = ", ".join(overdue.mapped("name")) if len(overdue) <= 3 else self.env._(
                "%(count)s invoices", count=len(overdue))
            sub.grace_end_date = values.get("grace_end", False)
            sub.health_summary, sub.health_next_step = sub._health_texts(values)

    # === BUSINESS METHODS === #

    def _collection_data(self):
        """What each subscription owes and how its collection stands, in three queries whatever the
        number of subscriptions (lists, the contact's tab, the collections view).

        :return: ``{subscription: {"unpaid": invoices, "overdue": invoices, "amount_due": float,
            "amount_overdue": float, "overdue_since": date, "last_charge": charge, "failed": bool,
            "failed_since": date, "next_retry": date, "grace_end": date}}`` for subscriptions with
            something unpaid or a charge; amounts in the subscription's currency
        """
        subs = self.filtered("id")
        if not subs:
            return {}
        Move = self.env["account.move"].sudo()
        unpaid = Move.search(Move._subscription_open_domain() & Domain("subscription_id", "in", subs.ids),
                             order="invoice_date_due, id")
        Charge = self.env["subscription.charge"].sudo()
        last_charge = {sub: Charge.browse(last_id) for sub, last_id in Charge._read_group(
            [("subscription_id", "in", subs.ids)], ["subscription_id"], ["id:max"])}
        # The failure episode started with the first failed attempt on a still unpaid invoice.
        first_failure = dict(Charge._read_group(
            [("invoice_id", "in", unpaid.ids), ("state", "=", "failed")], ["subscription_id"], ["date_attempt:min"]))
        by_sub = defaultdict(lambda: Move.browse())
        for move in unpaid:
            by_sub[move.subscription_id] |= move
        result = {}
        for sub in subs:
            sub_sudo = sub.sudo()
            invoices = by_sub.get(sub_sudo, Move.browse())
            charge = last_charge.get(sub_sudo)
            if not invoices and not charge:
                continue
            today = sub_sudo.company_id._subscription_today()
            overdue = invoices.filtered(lambda m, t=today: m.invoice_date_due and m.invoice_date_due < t)
            retry_dates = [d for d in invoices.mapped("subscription_charge_date") if d]
            since = overdue[:1].invoice_date_due or False
            grace_end = False
            if since and not sub_sudo.payment_token_id and sub_sudo.state in const.BILLABLE_STATES:
                grace_end = since + timedelta(days=sub_sudo.company_id.subscription_grace_days + 1)
            result[sub] = {
                "unpaid": invoices.sudo(False).with_env(self.env),
                "overdue": overdue.with_env(self.env),
                "amount_due": sum(invoices.mapped("amount_residual")),
                "amount_overdue": sum(overdue.mapped("amount_residual")),
                "overdue_since": since,
                "last_charge": charge and charge.with_env(self.env),
                # The last attempt on a still unpaid invoice failed (a paid invoice's old failure is history).
                "failed": bool(charge and charge.state == "failed" and charge.invoice_id in invoices),
                "failed_since": first_failure.get(sub_sudo) and fields.Datetime.context_timestamp(
                    self, first_failure[sub_sudo]).date(),
                "next_retry": min(retry_dates) if retry_dates and sub_sudo.payment_token_id else False,
                "grace_end": grace_end,
                "today": today,
            }
        return result

    def _health_texts(self, values, with_amounts=True):
        """``(summary, next step)`` of this subscription's standing for staff, from
        ``_collection_data``: e.g. ``("Payment failed since 05/01/2026 · 13.20 unpaid, oldest
        INV/2026/00012 due 05/01/2026 · Declined: insufficient funds · next retry on 05/04/2026",
        "Ask the customer to update their payment method, or retry now")``. Empty for a subscription
        in good standing. Without ``with_amounts`` (employees who do not read amounts nor act on
        subscriptions, e.g. support), the amount is left out and the next step says what the
        customer or the salesperson does."""
        self.ensure_one()
        sub = self.sudo()
        if sub.state not in const.RUNNING_STATES:
            return "", ""
        unpaid = values.get("unpaid") or self.env["account.move"]
        charge = values.get("last_charge")
        parts = []
        if sub.state == "suspended" and sub.suspension_cause == "staff":
            parts.append(self.env._("Suspended by staff since %(date)s",
                                    date=format_date(self.env, sub.date_suspended)))
            if sub.suspension_note:
                parts.append(sub.suspension_note)
            step = (self.env._("Reactivate it when the reason is settled") if with_amounts
                    else self.env._("The salesperson reactivates it when the reason is settled"))
        elif sub.state == "suspended":
            parts.append(self.env._("Suspended since %(date)s", date=format_date(self.env, sub.date_suspended)) + (
                self.env._(" after failed payments") if sub.suspension_cause == "payment"
                else self.env._(": invoice unpaid")))
            if not with_amounts:
                step = self.env._("The customer pays the invoice in the portal: the subscription is active again")
            elif sub.suspension_cause == "payment":
                step = self.env._("The customer saves a new payment method in the portal (charged at once), or "
                                  "register a payment")
            else:
                step = self.env._("Register the payment (the subscription is active again once paid)")
        elif values.get("failed"):
            parts.append(self.env._("Payment failed since %(date)s",
                           date=format_date(self.env, values.get("failed_since"))))
            step = (self.env._("Ask the customer to update their payment method, or retry now") if with_amounts
                    else self.env._("The customer updates their payment method or pays in the portal"))
        elif values.get("overdue_since"):
            parts.append(self.env._("Overdue since %(date)s", date=format_date(self.env, values["overdue_since"])))
            step = (self.env._("Send a reminder, or register the payment") if with_amounts
                    else self.env._("The customer pays the invoice in the portal"))
        else:
            return "", ""
        if unpaid:
            oldest = unpaid[0]
            if with_amounts:
                parts.append(self.env._("%(amount)s unpaid, oldest %(invoice)s due %(date)s",
                               amount=format_amount(self.env, values["amount_due"], sub.currency_id),
                               invoice=oldest.name, date=format_date(self.env, oldest.invoice_date_due)))
            else:
                parts.append(self.env._("oldest unpaid %(invoice)s due %(date)s",
                               invoice=oldest.name, date=format_date(self.env, oldest.invoice_date_due)))
        if values.get("failed") and charge:
            parts.append(charge.failure_label)
        if values.get("next_retry"):
            parts.append(self.env._("next retry on %(date)s", date=format_date(self.env, values["next_retry"])))
        elif values.get("grace_end") and sub.state == "past_due":
            parts.append(self.env._("suspended on %(date)s if still unpaid",
                                    date=format_date(self.env, values["grace_end"])))
        elif values.get("failed") and sub.payment_token_id:
            parts.append(self.env._("no retry left"))
        return " · ".join(p for p in parts if p), step

    def _customer_standing(self):
        """The standing in the customer's words for the portal, or ``""`` when all is well:
        ``{"title", "text", "level"}`` (level: ``warning`` or ``danger``).

        "Past its due date" is said only of invoices really past due; a failed charge on an
        invoice not yet due says the payment failed."""
        self.ensure_one()
        sub = self.sudo()
        values = sub._collection_data().get(sub) or {}
        unpaid = values.get("unpaid") or self.env["account.move"]
        env = self.env
        if sub.state == "suspended" and sub.suspension_cause == "staff":
            return {"level": "warning", "title": self.env._("Your subscription is suspended"),
                    "text": self.env._("Please contact us to reactivate it.")}
        if not unpaid and sub.state not in ("past_due", "suspended"):
            return ""
        oldest = unpaid[:1]
        amount = format_amount(env, values.get("amount_due", 0.0), sub.currency_id)
        if sub.state == "suspended":
            text = (self.env._("Invoice %(invoice)s (%(amount)s in all) is unpaid. Pay it now to reactivate your "
                               "subscription "
                      "at once.", invoice=oldest.name, amount=amount) if oldest
                    else self.env._("Please contact us to reactivate it."))
            return {"level": "danger", "title": self.env._("Your subscription is suspended"), "text": text}
        if values.get("failed"):
            charge = values["last_charge"]
            text = self.env._("We could not collect %(amount)s for invoice %(invoice)s (%(reason)s).",
                     amount=format_amount(env, charge.amount, charge.currency_id), invoice=charge.invoice_id.name,
                     reason=charge.failure_label or self.env._("refused"))
            if values.get("next_retry"):
                text = self.env._("%(text)s We will try again on %(date)s: update your payment method or pay now "
                                  "to avoid "
                         "an interruption.", text=text, date=format_date(env, values["next_retry"]))
            else:
                text = self.env._("%(text)s Please pay now or save another payment method.", text=text)
            return {"level": "danger", "title": self.env._("Your payment failed"), "text": text}
        if values.get("overdue_since"):
            overdue = values["overdue"]
            text = self.env._("Invoice %(invoice)s (%(amount)s) is past its due date of %(date)s.",
                     invoice=overdue[0].name, date=format_date(env, overdue[0].invoice_date_due),
                     amount=format_amount(env, values["amount_overdue"], sub.currency_id))
            if values.get("grace_end"):
                text = self.env._("%(text)s Please pay it before %(date)s to keep your subscription.", text=text,
                         date=format_date(env, values["grace_end"]))
            return {"level": "warning", "title": self.env._("Payment overdue"), "text": text}
        return ""

    def _subscription_mail_header(self):
        """Header of the customer e-mails about this subscription (see ``mail_layout_customer``)."""
        self.ensure_one()
        return {"caption": self.env._("Your subscription"), "title": self.product_summary or self.name}
