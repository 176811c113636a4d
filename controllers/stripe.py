import logging

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
        if event["type"].startswith("payment_intent.") and stripe_object.get("object") == "payment_intent":
            tx_sudo = self._subscription_find_charge_tx(stripe_object)
            if tx_sudo:
                payment_data = {"reference": tx_sudo.reference}
                self._include_payment_intent_in_payment_data(stripe_object, payment_data)
                tx_sudo._process("stripe", payment_data)
                return request.make_json_response("")
        return super().stripe_webhook()

    def _subscription_verified_event(self):
        if stripe is None:
            raise Forbidden()
        payload = request.httprequest.get_data()
        signature = request.httprequest.headers.get("Stripe-Signature")
        if not signature:
            _logger.warning("Stripe webhook without signature refused")
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
                event = stripe.Webhook.construct_event(
                    payload, signature, secret, tolerance=const.STRIPE_WEBHOOK_TOLERANCE,
                )
            except stripe.SignatureVerificationError:
                continue
            except ValueError as error:  # signed but not JSON
                raise BadRequest() from error
            return event.to_dict()
        _logger.warning("Stripe webhook with an invalid or stale signature refused")
        raise Forbidden()

    @staticmethod
    def _subscription_find_charge_tx(intent):
        Tx = request.env["payment.transaction"].sudo()
        reference = (intent.get("metadata") or {}).get("odoo_reference")
        domain = [("provider_code", "=", "stripe"), ("subscription_charge_ids", "!=", False)]
        tx = Tx.search(domain + [("provider_reference", "=", intent.get("id"))], limit=1)
        if not tx and reference:
            tx = Tx.search(domain + [("reference", "=", reference)], limit=1)
        return tx
