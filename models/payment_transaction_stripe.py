import logging
from datetime import timedelta

from odoo import fields, models

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
    """Autopay on Stripe: off-session PaymentIntents through the official SDK, Stripe's decline
    codes kept and classified. Every override leaves other providers to the generic code."""

    _inherit = "payment.transaction"

    # === FIELDS === #

    subscription_decline_code = fields.Char(readonly=True, help="Stripe's decline code given by the card issuer.")

    # === BUSINESS METHODS - PROCESSING === #

    def _send_payment_request(self):
        """Autopay charges on Stripe go through the official SDK, with an idempotency key."""
        if self.provider_code != "stripe" or self.operation != "offline" or not self.subscription_charge_ids:
            return super()._send_payment_request()
        return self._subscription_stripe_charge()

    def _apply_updates(self, payment_data):
        """Keep Stripe's failure codes; an unknown or 3-D Secure status of a charge goes to review."""
        if self.provider_code != "stripe" or not isinstance(payment_data.get("payment_intent"), dict):
            return super()._apply_updates(payment_data)
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
        return super()._apply_updates(payment_data)

    def _extract_token_values(self, payment_data):
        """Stripe tells a card's expiry: kept on the token, to show it ("Visa •••• 4242, exp. 12/28")."""
        values = super()._extract_token_values(payment_data)
        if self.provider_code != "stripe" or not values:
            return values
        card = (payment_data.get("payment_method") or {}).get("card") or {}
        if card.get("exp_month") and card.get("exp_year"):
            values.update(card_exp_month=card["exp_month"], card_exp_year=card["exp_year"])
        return values

    # === BUSINESS METHODS - AUTOPAY === #

    def _subscription_classify_failure(self):
        """Stripe's ``decline_code`` (or ``code``) decides, per ``const.STRIPE_PERMANENT_CODES``
        (source: https://docs.stripe.com/declines/codes)."""
        if self.provider_code != "stripe":
            return super()._subscription_classify_failure()
        code = self.subscription_decline_code or self.subscription_failure_code or self.state
        return ("permanent" if code in const.STRIPE_PERMANENT_CODES else "temporary"), code

    def _subscription_ask_status(self):
        """Read the PaymentIntent when its id is known; otherwise send the same request again
        with the same idempotency key, which Stripe recognizes for 24 hours only."""
        if self.provider_code != "stripe":
            return super()._subscription_ask_status()
        if self.provider_reference:
            self._subscription_stripe_refresh()
            return None
        window = timedelta(hours=const.STRIPE_IDEMPOTENCY_WINDOW_HOURS)
        if self.create_date < fields.Datetime.now() - window:
            self.subscription_review_reason = self.env._(
                "Stripe only recognizes a repeated request for 24 hours and this one is older: check the "
                "Stripe dashboard for a payment with metadata odoo_reference %(reference)s, then mark the charge paid "
                "or failed.",
                reference=self.reference)
            return None
        return super()._subscription_ask_status()

    # === STRIPE REQUESTS (official SDK) === #

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
