import json
import logging
import time

from werkzeug.exceptions import BadRequest, Forbidden

from odoo import http
from odoo.http import request

from odoo.addons.payment_stripe import utils as stripe_utils
from odoo.addons.payment_stripe.controllers.main import StripeController

from .. import const

_logger = logging.getLogger(__name__)

try:
    import stripe
except ImportError:
    stripe = None


class SubscriptionStripeController(StripeController):
    """Stripe's webhook, verified with the official SDK before any byte is trusted.

    Forged, unsigned or stale events are answered 400/403 with nothing changed; an
    event already handled (a replay) is acknowledged and ignored. Events about
    autopay charges are applied here; every other event goes on to Odoo's handler.
    """

    @http.route()
    def stripe_webhook(self):
        event = self._subscription_verified_event()
        if not request.env["subscription.stripe.event"].sudo()._record_event(event["id"], event["type"]):
            _logger.info("Stripe event %s (%s) was already handled: ignored", event["id"], event["type"])
            return request.make_json_response("")
        stripe_object = event["data"]["object"]
        if event["type"] == "charge.dispute.created":
            tx_sudo = self._subscription_find_charge_tx({"id": stripe_object.get("payment_intent")})
            if tx_sudo:
                tx_sudo._subscription_reverse_payment(request.env._(
                    "the customer disputed the card payment with their bank (Stripe chargeback, reason: %(reason)s).",
                    reason=stripe_object.get("reason") or "-"))
            return request.make_json_response("")
        if event["type"] in ("payment_method.updated", "payment_method.automatically_updated") \
                and stripe_object.get("object") == "payment_method":
            request.env["payment.token"].sudo()._subscription_stripe_method_updated(stripe_object)
            return request.make_json_response("")
        if event["type"].startswith("payment_intent.") and stripe_object.get("object") == "payment_intent":
            tx_sudo = self._subscription_find_charge_tx(stripe_object)
            if tx_sudo:
                payment_data = {"reference": tx_sudo.reference}
                self._include_payment_intent_in_payment_data(stripe_object, payment_data)
                tx_sudo._process("stripe", payment_data)
                return request.make_json_response("")
        return super().stripe_webhook()

    def _subscription_verified_event(self):
        """The event, once its signature is valid and its timestamp within the tolerance.

        :raise Forbidden: (403) no, a forged or a stale signature, or one dated in the future
            beyond the tolerance (the SDK only refuses old ones); no signing secret configured
        :raise BadRequest: (400) a signed payload that is not a Stripe event
        """
        if stripe is None:
            raise Forbidden()
        payload = request.httprequest.get_data()
        signature = request.httprequest.headers.get("Stripe-Signature")
        if not signature:
            _logger.warning("Stripe webhook without signature refused")
            raise Forbidden()
        if not self._subscription_signature_is_timely(signature):
            _logger.warning("Stripe webhook with a signature timestamp outside the tolerance refused")
            raise Forbidden()
        providers = request.env["payment.provider"].sudo().search(
            [("code", "=", "stripe"), ("state", "!=", "disabled")]
        )
        secrets = [secret for secret in (stripe_utils.get_webhook_secret(p) for p in providers) if secret]
        if not secrets:
            _logger.error("Stripe webhook refused: set the webhook signing secret on the Stripe provider")
            raise Forbidden()
        for secret in secrets:
            try:
                stripe.WebhookSignature.verify_header(
                    payload.decode("utf-8", "replace"), signature, secret, tolerance=const.STRIPE_WEBHOOK_TOLERANCE,
                )
            except stripe.SignatureVerificationError:
                continue
            return self._subscription_parse_event(payload)
        _logger.warning("Stripe webhook with an invalid or stale signature refused")
        raise Forbidden()

    @staticmethod
    def _subscription_parse_event(payload):
        """The event of a verified payload, or BadRequest when it is not a Stripe event."""
        try:
            event = json.loads(payload)
        except ValueError as error:
            raise BadRequest() from error
        if not (isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("type"), str)
                and isinstance(event.get("data"), dict) and isinstance(event["data"].get("object"), dict)):
            _logger.warning("Signed Stripe webhook that is not an event refused")
            raise BadRequest()
        return event

    @staticmethod
    def _subscription_signature_is_timely(header):
        """True when the ``t=`` timestamp of a ``Stripe-Signature`` header is within the tolerance
        of now, in either direction (https://docs.stripe.com/webhooks#replay-attacks)."""
        # Read the timestamp exactly as the SDK's verification does (first item whose key is "t").
        stamps = [item.split("=", 1)[1] for item in header.split(",") if item.split("=", 1)[0] == "t"]
        try:
            stamp = int(stamps[0])
        except (IndexError, ValueError):
            return False
        return abs(time.time() - stamp) <= const.STRIPE_WEBHOOK_TOLERANCE

    @staticmethod
    def _subscription_find_charge_tx(intent):
        Tx = request.env["payment.transaction"].sudo()
        metadata = intent.get("metadata")
        reference = metadata.get("odoo_reference") if isinstance(metadata, dict) else None
        domain = [("provider_code", "=", "stripe"), ("subscription_charge_ids", "!=", False)]
        tx = Tx.search(domain + [("provider_reference", "=", intent.get("id"))], limit=1) if intent.get("id") else Tx
        if not tx and reference:
            tx = Tx.search(domain + [("reference", "=", reference)], limit=1)
        return tx
