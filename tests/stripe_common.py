import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time

import stripe
from pytest_httpserver import HTTPServer

WEBHOOK_SECRET = "whsec_subscription_billing_test"
SECRET_KEY = "sk_test_subscription_billing"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_localstripe(test_class):
    """Start localstripe (a fake Stripe server) on 127.0.0.1 for a test class; returns its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def stop():
        process.terminate()
        process.wait(timeout=10)

    test_class.addClassCleanup(stop)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("localstripe exited at start") from None
            time.sleep(0.2)
    raise RuntimeError("localstripe did not start")


def signed_event_headers(payload, secret=WEBHOOK_SECRET, timestamp=None):
    """The ``Stripe-Signature`` header Stripe puts on a webhook (scheme v1, HMAC-SHA256)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={signature}", "Content-Type": "application/json"}


def event_payload(event_id, event_type, intent):
    return json.dumps({
        "id": event_id, "object": "event", "type": event_type, "api_version": "2019-05-16",
        "created": int(time.time()), "livemode": False, "data": {"object": intent},
    })


class StripeSetupMixin:
    """The Stripe provider of Odoo, in test mode, talking to ``api_base``."""

    @classmethod
    def _setup_stripe(cls, api_base):
        cls.stripe_provider = cls.env.ref("payment.payment_provider_stripe")
        cls.card_method = cls.env.ref("payment.payment_method_card")
        cls.stripe_provider.write({
            "stripe_secret_key": SECRET_KEY,
            "stripe_publishable_key": "pk_test_subscription_billing",
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "state": "test",
            "payment_method_ids": [(4, cls.card_method.id)],
        })
        cls._set_stripe_api_base(api_base)

    @classmethod
    def _setup_stripe_on_local_server(cls):
        """Stripe's API answered by a pytest-httpserver on 127.0.0.1 (canned Stripe payloads)."""
        cls.server = HTTPServer(host="127.0.0.1", port=0)
        cls.server.start()
        cls.addClassCleanup(cls.server.stop)
        cls._setup_stripe(cls.server.url_for("").rstrip("/"))

    @classmethod
    def _set_stripe_api_base(cls, api_base):
        cls.env["ir.config_parameter"].sudo().set_param("subscription_billing.stripe_api_base", api_base)

    @classmethod
    def _stripe_token(cls, partner, customer_id, payment_method_id, last4="4242"):
        return cls.env["payment.token"].create({
            "provider_id": cls.stripe_provider.id,
            "payment_method_id": cls.card_method.id,
            "partner_id": partner.id,
            "provider_ref": customer_id,
            "stripe_payment_method": payment_method_id,
            "payment_details": last4,
        })

    @staticmethod
    def _stripe_client(api_base):
        return stripe.StripeClient(SECRET_KEY, base_addresses={"api": api_base}, max_network_retries=0)
