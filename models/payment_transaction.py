import logging
from datetime import timedelta

from odoo import api, fields, models

from odoo.addons.payment import utils as payment_utils
from odoo.addons.payment_stripe import const as stripe_const
from odoo.addons.payment_stripe import utils as stripe_utils
from odoo.addons.payment_stripe.controllers.main import StripeController

from .. import const

_logger = logging.getLogger(__name__)

try:
    import stripe
except ImportError:  # declared in external_dependencies; keeps imports of the module safe
    stripe = None

STRIPE_TIMEOUT = 30  # seconds; an answer slower than this is an unknown outcome (review)


class PaymentTransaction(models.Model):
    _inherit = "payment.transaction"

    subscription_charge_ids = fields.One2many("subscription.charge", "transaction_id", string="Autopay charges")
    subscription_autopay_id = fields.Many2one(
        "subscription.subscription", string="Autopay setup for", readonly=True, index="btree_not_null",
        help="The subscription whose autopay method is the token this transaction saves.",
    )
    subscription_failure_code = fields.Char(
        readonly=True, help="The provider's error code of a failed autopay charge (e.g. Stripe's card_declined).",
    )
    subscription_decline_code = fields.Char(readonly=True, help="Stripe's decline code given by the card issuer.")
    subscription_review_reason = fields.Text(
        readonly=True, help="Why the outcome of this autopay charge is unknown.",
    )

    @api.constrains("token_id")
    def _check_token_is_active(self):
        """Upstream's check assumes one transaction per call; autopay creates them in batches."""
        for tx in self:
            super(PaymentTransaction, tx)._check_token_is_active()
        return True

    # ------------------------------------------------------------------ processing
    def _apply_updates(self, payment_data):
        """Keep Stripe's failure codes, and let autopay charges follow their transaction."""
        if self.provider_code == "stripe" and isinstance(payment_data.get("payment_intent"), dict):
            intent = payment_data["payment_intent"]
            known = {status for statuses in stripe_const.STATUS_MAPPING.values() for status in statuses}
            if self.subscription_charge_ids and intent.get("status") not in known:
                # Odoo would call an unknown status a failure, and autopay would retry it.
                _logger.warning("Unknown Stripe status %r for %s", intent.get("status"), self.reference)
                self.subscription_review_reason = self.env._(
                    "Stripe answered with a status Odoo does not know (%(status)s).", status=intent.get("status"))
                return None
            error = intent.get("last_payment_error") or {}
            if error:
                self.write({"subscription_failure_code": error.get("code"),
                            "subscription_decline_code": error.get("decline_code")})
            if intent.get("status") in stripe_const.STATUS_MAPPING["draft"] and self.subscription_charge_ids:
                self.subscription_review_reason = self.env._(
                    "The bank asks the customer to confirm this payment (Stripe status %(status)s); "
                    "Stripe will notify the outcome.", status=intent.get("status"))
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

    def _send_payment_request(self):
        """Autopay charges on Stripe go through the official SDK, with an idempotency key."""
        if self.provider_code == "stripe" and self.operation == "offline" and self.subscription_charge_ids:
            return self._subscription_stripe_charge()
        return super()._send_payment_request()

    def _subscription_ask_status(self):
        """Ask the provider again about a transaction whose outcome is unknown (still draft).

        Sending again is only done where it cannot charge twice: Stripe (same idempotency
        key, within its 24-hour window, or reading the PaymentIntent when its id is known)
        and the demo provider. Other providers: the reason says to check by hand.
        """
        self.ensure_one()
        if self.provider_code not in const.RESEND_SAFE_PROVIDERS:
            self.subscription_review_reason = self.env._(
                "%(provider)s cannot be asked for the status from Odoo: check its dashboard, then mark the "
                "charge paid or failed.", provider=self.provider_id.name)
            return
        if self.provider_code == "stripe" and self.provider_reference:
            self._subscription_stripe_refresh()
            return
        window = timedelta(hours=const.STRIPE_IDEMPOTENCY_WINDOW_HOURS)
        if self.provider_code == "stripe" and self.create_date < fields.Datetime.now() - window:
            self.subscription_review_reason = self.env._(
                "Stripe only recognizes a repeated request for 24 hours and this one is older: check the "
                "Stripe dashboard for a payment with metadata odoo_reference %(reference)s, then mark the charge paid "
                "or failed.",
                reference=self.reference)
            return
        self.subscription_review_reason = False
        self._charge_with_token()

    # ------------------------------------------------------------------ Stripe through the SDK
    def _subscription_stripe_client(self):
        provider = self.provider_id.sudo()
        api_base = self.env["ir.config_parameter"].sudo().get_param("subscription_billing.stripe_api_base")
        return stripe.StripeClient(
            stripe_utils.get_secret_key(provider),
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT),
        )

    def _subscription_stripe_intent_params(self):
        token = self.token_id
        method_code = self.payment_method_id.primary_payment_method_id.code or self.payment_method_code
        params = {
            "amount": payment_utils.to_minor_currency_units(
                self.amount, self.currency_id,
                arbitrary_decimal_number=stripe_const.CURRENCY_DECIMALS.get(self.currency_id.name),
            ),
            "currency": self.currency_id.name.lower(),
            "customer": token.provider_ref,
            "payment_method": token.stripe_payment_method,
            "payment_method_types": [stripe_const.PAYMENT_METHODS_MAPPING.get(method_code, method_code)],
            "capture_method": "automatic",
            "confirm": True,
            "off_session": True,
            "metadata": {
                "odoo_reference": self.reference,
                "odoo_subscription": self.subscription_charge_ids[:1].subscription_id.name or "",
            },
        }
        if token.stripe_mandate:
            params["mandate"] = token.stripe_mandate
        return params

    def _subscription_stripe_charge(self):
        """Create and confirm an off-session PaymentIntent; classify what Stripe answers."""
        if stripe is None:
            self.subscription_review_reason = self.env._("The stripe Python package is not installed.")
            return
        key = payment_utils.generate_idempotency_key(self, scope="payment_intents")
        try:
            intent = self._subscription_stripe_client().v1.payment_intents.create(
                params=self._subscription_stripe_intent_params(), options={"idempotency_key": key},
            )
        except stripe.StripeError as error:
            self._subscription_stripe_handle_error(error)
            return
        self._subscription_stripe_process_intent(intent)

    def _subscription_stripe_refresh(self):
        try:
            intent = self._subscription_stripe_client().v1.payment_intents.retrieve(self.provider_reference)
        except stripe.StripeError as error:
            self._subscription_stripe_handle_error(error)
            return
        self._subscription_stripe_process_intent(intent)

    def _subscription_stripe_process_intent(self, intent):
        self.subscription_review_reason = False
        payment_data = {"reference": self.reference}
        StripeController._include_payment_intent_in_payment_data(intent.to_dict(), payment_data)
        self._process("stripe", payment_data)

    def _subscription_stripe_handle_error(self, error):
        """A refusal is a failure with Stripe's codes; no or an unusable answer is a review."""
        body = (error.json_body or {}).get("error") or {}
        intent = body.get("payment_intent") or {}
        if intent.get("id") and not self.provider_reference:
            self.provider_reference = intent["id"]
        # Only a refusal says something about the payment method; anything else (no answer,
        # Stripe's own error, a refused API key) leaves the outcome unknown.
        if not isinstance(error, (stripe.CardError, stripe.InvalidRequestError, stripe.RateLimitError)):
            _logger.warning("Stripe gave no usable answer for %s: %s", self.reference, error)
            self.subscription_review_reason = self.env._(
                "Stripe gave no usable answer (%(kind)s: %(message)s). Nothing is charged again until "
                "someone asks Stripe for the status.",
                kind=type(error).__name__, message=error.user_message or str(error))
            return
        code = body.get("code") or error.code or ("rate_limit" if isinstance(error, stripe.RateLimitError)
                                                   else "invalid_request")
        self.write({
            "subscription_failure_code": code,
            "subscription_decline_code": body.get("decline_code"),
        })
        self._set_error(body.get("message") or error.user_message or str(error))
