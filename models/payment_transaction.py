from odoo import api, fields, models

from .. import const


class PaymentTransaction(models.Model):
    """Autopay charges and autopay enrollment on any provider; Stripe's specifics live in
    ``payment_transaction_stripe.py``."""

    _inherit = "payment.transaction"

    # === FIELDS === #

    subscription_charge_ids = fields.One2many("subscription.charge", "transaction_id", string="Autopay charges")
    subscription_autopay_id = fields.Many2one(
        "subscription.subscription", string="Autopay setup for", readonly=True, index="btree_not_null",
        help="The subscription whose autopay method is the token this transaction saves.",
    )
    subscription_failure_code = fields.Char(
        readonly=True, help="The provider's error code of a failed autopay charge (e.g. Stripe's card_declined).",
    )
    subscription_review_reason = fields.Text(
        readonly=True, help="Why the outcome of this autopay charge is unknown.",
    )

    # === CONSTRAINT METHODS === #

    @api.constrains("token_id")
    def _check_token_is_active(self):
        """Upstream's check assumes one transaction per call; autopay creates them in batches."""
        for tx in self:
            super(PaymentTransaction, tx)._check_token_is_active()
        return True

    # === BUSINESS METHODS - PROCESSING === #

    def _apply_updates(self, payment_data):
        """Autopay charges follow their transaction as soon as the provider's answer is applied."""
        res = super()._apply_updates(payment_data)
        if self.subscription_charge_ids and not self.env.context.get("subscription_charge_defer_sync"):
            self.subscription_charge_ids._sync_from_transaction()
        return res

    def _tokenize(self, payment_data):
        """A payment method saved from a subscription's portal page becomes its autopay method."""
        res = super()._tokenize(payment_data)
        if self.subscription_autopay_id and self.token_id:
            self.subscription_autopay_id.sudo()._enroll_autopay(self.token_id)
        return res

    # === BUSINESS METHODS - AUTOPAY === #

    def _subscription_classify_failure(self):
        """How this failed autopay transaction failed.

        The rule for providers that give no codes is conservative: an ``error`` may pass on
        a later try, a ``cancel`` (refused mandate, payment cancelled) needs the customer.
        Providers with codes override it.

        :return: ``(kind, code)``, kind being ``temporary`` (retried on the schedule) or
            ``permanent`` (the subscription is suspended at once)
        """
        self.ensure_one()
        kind = "permanent" if self.state == "cancel" else "temporary"
        return kind, self.subscription_failure_code or self.state

    def _subscription_reverse_payment(self, reason):
        """The money of this autopay charge was taken back (chargeback, reversed debit): its payment
        is cancelled, which reopens the invoice and puts it back into collection.

        :param str reason: why, for the chatter
        """
        self.ensure_one()
        charges = self.subscription_charge_ids.filtered(lambda c: c.state == "done" and not c.is_reversed)
        if not charges:
            return
        for sub in charges.subscription_id:
            sub.message_post(body=self.env._("The payment %(reference)s was taken back: %(reason)s",
                                             reference=self.reference, reason=reason))
        payment = self.payment_id.sudo()
        if payment and payment.state not in ("draft", "canceled"):
            payment.action_draft()  # unreconciles: the invoice reopens (account_move.py puts it back)
            payment.action_cancel()
        # A payment already gone: the charge still counts as reversed.
        charges.filtered(lambda c: not c.is_reversed)._mark_reversed(reason)

    def _subscription_ask_status(self):
        """Ask the provider again about a transaction whose outcome is unknown (still draft).

        The request is sent again only to providers where that cannot charge twice
        (``const.RESEND_SAFE_PROVIDERS``); for the others the review reason says to check
        the provider's dashboard. Providers that can read a payment's status override it.
        """
        self.ensure_one()
        if self.provider_code not in const.RESEND_SAFE_PROVIDERS:
            self.subscription_review_reason = self.env._(
                "%(provider)s cannot be asked for the status from Odoo: check its dashboard, then mark the "
                "charge paid or failed.", provider=self.provider_id.name)
            return
        self.subscription_review_reason = False
        self._charge_with_token()
