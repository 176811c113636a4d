import json
import socket
import threading
import time
from datetime import date
from unittest.mock import patch

import requests

from odoo.tests import HttpCase, freeze_time, tagged
from odoo.tools import mute_logger

from odoo.addons.payment import utils as payment_utils

from .autopay_common import AutopayCommon
from .stripe_common import (
    SECRET_KEY,
    StripeSetupMixin,
    event_payload,
    signed_event_headers,
    start_localstripe,
)

MUTED = ("odoo.addons.base.models.ir_cron", "odoo.addons.subscription_billing.models.payment_transaction",
         "odoo.addons.subscription_billing.models.subscription_charge",
         "odoo.addons.payment.models.payment_transaction", "odoo.addons.subscription_billing.controllers.stripe",
         "odoo.addons.payment_stripe.controllers.main", "werkzeug")


@tagged("post_install", "-at_install")
class TestStripeLocalstripe(StripeSetupMixin, AutopayCommon):
    """The official SDK against localstripe: off-session PaymentIntents as Stripe runs them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api_base = start_localstripe(cls)
        cls._setup_stripe(cls.api_base)
        cls.client = cls._stripe_client(cls.api_base)

    def _subscription_with_card(self, number):
        customer = self.client.v1.customers.create(params={"email": self.partner.email})
        method = self.client.v1.payment_methods.create(params={
            "type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123"},
        })
        self.client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
        token = self._stripe_token(self.partner, customer.id, method.id, last4=number[-4:])
        return self._create_subscription(payment_token_id=token.id, date_start="2026-05-01")

    def test_successful_charge_pays_the_invoice(self):
        sub = self._subscription_with_card("4242424242424242")
        self._bill_and_charge("2026-05-01")
        charge = sub.charge_ids
        self.assertEqual(charge.state, "done")
        tx = charge.transaction_id
        self.assertTrue(tx.provider_reference.startswith("pi_"))
        intent = self.client.v1.payment_intents.retrieve(tx.provider_reference)
        self.assertEqual((intent.status, intent.amount, intent.currency),
                         ("succeeded", 1320, self.currency.name.lower()))
        self.assertEqual(intent.metadata["odoo_reference"], tx.reference)
        self._assert_paid(sub.invoice_ids)
        self.assertIn("4242", self._mails_to(self.partner, "received, thank you").body_html)

    def test_decline_at_charge_is_kept_with_its_code_and_retried(self):
        sub = self._subscription_with_card("4000000000000341")
        with mute_logger(*MUTED):
            self._bill_and_charge("2026-05-01")
        charge = sub.charge_ids
        self.assertEqual((charge.state, charge.failure_code, charge.failure_kind, charge.next_retry_date),
                         ("failed", "card_declined", "temporary", date(2026, 5, 2)))
        self.assertIn("declined", charge.failure_message)
        self.assertEqual(sub.state, "past_due")

    def test_3d_secure_waits_in_review_until_stripe_has_the_answer(self):
        sub = self._subscription_with_card("4000002760003184")
        self._bill_and_charge("2026-05-01")
        charge = sub.charge_ids
        tx = charge.transaction_id
        self.assertEqual((charge.state, charge.needs_review, tx.state), ("pending", True, "draft"))
        self.assertIn("confirm this payment", charge.review_reason)
        with freeze_time("2026-05-02"):
            self._run_autopay()
        self.assertEqual(len(sub.charge_ids), 1, "never charged again while the customer may still confirm")
        charge.action_check_status()
        self.assertEqual(charge.state, "pending", "Stripe still waits for the customer")
        # The customer confirms with their bank (3-D Secure), then staff ask Stripe again.
        intent = self.client.v1.payment_intents.retrieve(tx.provider_reference)
        requests.post(f"{self.api_base}/v1/payment_intents/{intent.id}/_authenticate",
                      data={"client_secret": intent.client_secret, "success": "true"},
                      auth=(SECRET_KEY, ""), timeout=10).raise_for_status()
        charge.action_check_status()
        self.assertEqual(charge.state, "done")
        self._assert_paid(sub.invoice_ids)


@tagged("post_install", "-at_install")
class TestStripeErrorPayloads(StripeSetupMixin, AutopayCommon):
    """Stripe-shaped error answers served on 127.0.0.1: each decline code's classification."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_stripe_on_local_server()

    def setUp(self):
        super().setUp()
        self.server.clear()

    def _charge_once(self, status, body, day="2026-05-01"):
        self.server.expect_request("/v1/payment_intents", method="POST").respond_with_json(body, status=status)
        partner = self.env["res.partner"].create({"name": "Card holder", "email": "holder@example.com"})
        token = self._stripe_token(partner, "cus_test", "pm_test")
        sub = self._create_subscription(partner=partner, payment_token_id=token.id, date_start=day)
        with mute_logger(*MUTED):
            self._bill_and_charge(day)
        return sub, sub.charge_ids

    @staticmethod
    def _card_error(code, decline_code=None, message="Your card was declined."):
        intent = {"id": "pi_declined", "object": "payment_intent", "status": "requires_payment_method"}
        error = {"type": "card_error", "code": code, "message": message, "payment_intent": intent}
        if decline_code:
            error["decline_code"] = decline_code
        return {"error": error}

    def test_decline_codes_are_classified(self):
        cases = [
            ("card_declined", "insufficient_funds", "temporary"),
            ("card_declined", "do_not_honor", "temporary"),
            ("card_declined", "try_again_later", "temporary"),
            ("processing_error", None, "temporary"),
            ("expired_card", None, "permanent"),
            ("card_declined", "lost_card", "permanent"),
            ("card_declined", "stolen_card", "permanent"),
            ("incorrect_number", None, "permanent"),
            ("authentication_required", "authentication_required", "permanent"),
        ]
        for code, decline_code, kind in cases:
            with self.subTest(code=code, decline_code=decline_code):
                self.server.clear()
                sub, charge = self._charge_once(402, self._card_error(code, decline_code))
                self.assertEqual(charge.state, "failed")
                self.assertEqual((charge.failure_code, charge.failure_kind), (decline_code or code, kind))
                self.assertEqual(charge.transaction_id.provider_reference, "pi_declined")
                self.assertEqual(sub.state, "past_due" if kind == "temporary" else "suspended")

    def test_request_carries_the_transaction_idempotency_key(self):
        _sub, charge = self._charge_once(402, self._card_error("card_declined", "insufficient_funds"))
        [(request, _response)] = self.server.log
        key = payment_utils.generate_idempotency_key(charge.transaction_id, scope="payment_intents")
        self.assertEqual(request.headers["Idempotency-Key"], key)
        self.assertEqual(request.headers["Authorization"], f"Bearer {SECRET_KEY}")
        self.assertEqual(request.form["off_session"], "true")
        self.assertEqual(request.form["payment_method"], "pm_test")

    def test_rate_limit_is_a_temporary_failure(self):
        sub, charge = self._charge_once(429, {"error": {"type": "invalid_request_error", "code": "rate_limit",
                                                         "message": "Too many requests."}})
        self.assertEqual((charge.state, charge.failure_code, charge.failure_kind),
                         ("failed", "rate_limit", "temporary"))
        self.assertEqual(sub.state, "past_due")

    def test_stripe_server_error_goes_to_review_not_retry(self):
        sub, charge = self._charge_once(500, {"error": {"type": "api_error", "message": "Something went wrong."}})
        self.assertEqual((charge.state, charge.needs_review), ("pending", True))
        self.assertIn("no usable answer", charge.review_reason)
        self.assertEqual(sub.state, "active", "a problem on Stripe's side is not the customer's failure")

    def test_unknown_status_goes_to_review_not_retry(self):
        sub, charge = self._charge_once(200, {"id": "pi_odd", "object": "payment_intent", "status": "on_the_moon",
                                              "amount": 1320, "currency": self.currency.name.lower()})
        self.assertEqual((charge.state, charge.needs_review, charge.transaction_id.state), ("pending", True, "draft"))
        self.assertIn("on_the_moon", charge.review_reason)
        self.assertEqual(sub.state, "active")

    def test_bad_secret_key_goes_to_review(self):
        _sub, charge = self._charge_once(401, {"error": {"type": "invalid_request_error",
                                                         "message": "Invalid API Key provided."}})
        self.assertTrue(charge.needs_review)
        self.assertIn("AuthenticationError", charge.review_reason)

    def test_no_answer_goes_to_review_and_the_same_request_is_sent_again(self):
        # A server that reads the request and hangs up without answering: the charge may
        # or may not have been made, exactly like a time-out.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        self.addCleanup(listener.close)

        def hang_up():
            connection, _address = listener.accept()
            connection.recv(65536)
            connection.close()

        threading.Thread(target=hang_up, daemon=True).start()
        self._set_stripe_api_base(f"http://127.0.0.1:{listener.getsockname()[1]}")
        partner = self.env["res.partner"].create({"name": "Silent bank", "email": "silent@example.com"})
        token = self._stripe_token(partner, "cus_test", "pm_test")
        sub = self._create_subscription(partner=partner, payment_token_id=token.id, date_start="2026-05-01")
        with mute_logger(*MUTED):
            self._bill_and_charge("2026-05-01")
        self._set_stripe_api_base(self.server.url_for("").rstrip("/"))
        charge = sub.charge_ids
        self.assertEqual((charge.state, charge.needs_review), ("pending", True))
        self.assertIn("APIConnectionError", charge.review_reason)
        # Stripe answers now: asking again sends the same request with the same idempotency key.
        self.server.clear()
        self.server.expect_request("/v1/payment_intents", method="POST").respond_with_json({
            "id": "pi_late", "object": "payment_intent", "status": "succeeded", "amount": 1320,
            "currency": self.currency.name.lower(), "payment_method": "pm_test",
        })
        with freeze_time("2026-05-01 08:00:00"):
            charge.action_check_status()
        [(request, _response)] = self.server.log
        self.assertEqual(request.headers["Idempotency-Key"],
                         payment_utils.generate_idempotency_key(charge.transaction_id, scope="payment_intents"))
        self.assertEqual(charge.state, "done")
        self._assert_paid(sub.invoice_ids)

    def test_unknown_outcome_older_than_the_idempotency_window_is_not_sent_again(self):
        sub, charge = self._charge_once(500, {"error": {"type": "api_error", "message": "Something went wrong."}})
        self.server.clear()
        with freeze_time("2026-05-03"):
            charge.action_check_status()
        self.assertFalse(self.server.log, "after 24 hours the same key could charge again: nothing is sent")
        self.assertEqual((charge.state, charge.needs_review), ("pending", True))
        self.assertIn("dashboard", charge.review_reason)
        self.assertEqual(len(sub.charge_ids), 1)


@tagged("post_install", "-at_install")
class TestStripeWebhook(StripeSetupMixin, AutopayCommon, HttpCase):
    """Stripe's webhook: verified with the SDK first, replays ignored, forged or stale events refused."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_stripe("http://127.0.0.1:9")  # never called: the webhook carries the answer

    def setUp(self):
        super().setUp()
        token = self._stripe_token(self.partner, "cus_hook", "pm_hook")
        self.sub = self._create_subscription(payment_token_id=token.id, date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            invoice = self.sub._generate_due_invoices()
        self.charge = self.env["subscription.charge"]._create_for_invoices(invoice)
        self.tx = self.charge.transaction_id
        self.tx.provider_reference = "pi_bank_debit"
        self.tx._set_pending()  # a SEPA debit being processed

    def _intent(self, status, **extra):
        return {"id": "pi_bank_debit", "object": "payment_intent", "status": status, "amount": 1320,
                "currency": self.currency.name.lower(), "payment_method": "pm_hook",
                "metadata": {"odoo_reference": self.tx.reference}, **extra}

    def _post(self, payload, headers):
        response = self.url_open("/payment/stripe/webhook", data=payload, headers=headers, method="POST")
        self.env.invalidate_all()
        return response

    def test_signed_success_settles_the_pending_charge(self):
        payload = event_payload("evt_ok", "payment_intent.succeeded", self._intent("succeeded"))
        response = self._post(payload, signed_event_headers(payload))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.charge.state, "done")
        self._assert_paid(self.sub.invoice_ids)

    def test_signed_failure_keeps_the_decline_code_and_schedules_a_retry(self):
        intent = self._intent("requires_payment_method", last_payment_error={
            "code": "card_declined", "decline_code": "insufficient_funds", "message": "Insufficient funds."})
        payload = event_payload("evt_failed", "payment_intent.payment_failed", intent)
        with freeze_time("2026-05-03"):
            response = self._post(payload, signed_event_headers(payload))
        self.assertEqual(response.status_code, 200)
        self.assertEqual((self.charge.state, self.charge.failure_code, self.charge.failure_kind),
                         ("failed", "insufficient_funds", "temporary"))
        self.assertEqual(self.charge.next_retry_date, date(2026, 5, 4))

    def test_replayed_event_changes_nothing(self):
        payload = event_payload("evt_replayed", "payment_intent.succeeded", self._intent("succeeded"))
        Tx = type(self.tx)
        with patch.object(Tx, "_process", autospec=True, side_effect=Tx._process) as process:
            self.assertEqual(self._post(payload, signed_event_headers(payload)).status_code, 200)
            self.assertEqual(self._post(payload, signed_event_headers(payload)).status_code, 200)
        self.assertEqual(process.call_count, 1, "the second delivery is not processed")
        self.assertEqual(len(self.tx.payment_id), 1)

    def test_events_are_refused_while_no_signing_secret_is_configured(self):
        self.stripe_provider.stripe_webhook_secret = False
        payload = event_payload("evt_no_secret", "payment_intent.succeeded", self._intent("succeeded"))
        with mute_logger(*MUTED):
            response = self._post(payload, signed_event_headers(payload))
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.charge.state, "pending")

    def test_forged_stale_or_unsigned_events_are_refused(self):
        payload = event_payload("evt_forged", "payment_intent.succeeded", self._intent("succeeded"))
        cases = {
            "wrong secret": signed_event_headers(payload, secret="whsec_attacker"),
            "stale": signed_event_headers(payload, timestamp=int(time.time()) - 3600),
            "unsigned": {"Content-Type": "application/json"},
            "body changed": signed_event_headers(payload.replace("1320", "1")),
        }
        with mute_logger(*MUTED):
            for name, headers in cases.items():
                with self.subTest(name):
                    response = self._post(payload, headers)
                    self.assertIn(response.status_code, (400, 403))
        self.assertEqual((self.charge.state, self.tx.state), ("pending", "pending"))
        self.assertFalse(self.env["subscription.stripe.event"].sudo().search([("event_id", "=", "evt_forged")]))

    def test_signed_payloads_that_are_not_events_get_400_and_change_nothing(self):
        intent = self._intent("succeeded")
        bodies = {
            "no id": {"object": "event", "type": "payment_intent.succeeded", "data": {"object": intent}},
            "no type": {"id": "evt_no_type", "object": "event", "data": {"object": intent}},
            "no object": {"id": "evt_no_object", "object": "event", "type": "payment_intent.succeeded", "data": {}},
            "id not text": {"id": 42, "object": "event", "type": "payment_intent.succeeded",
                            "data": {"object": intent}},
            "a list": [intent],
        }
        with mute_logger(*MUTED, "odoo.addons.subscription_billing.controllers.stripe"):
            for name, body in bodies.items():
                with self.subTest(name):
                    payload = json.dumps(body)
                    response = self._post(payload, signed_event_headers(payload))
                    self.assertEqual(response.status_code, 400)
        self.assertEqual((self.charge.state, self.tx.state), ("pending", "pending"))
        self.assertFalse(self.env["subscription.stripe.event"].sudo().search([]))

    def test_signatures_dated_in_the_future_are_refused_beyond_the_tolerance(self):
        payload = event_payload("evt_future", "payment_intent.succeeded", self._intent("succeeded"))
        with mute_logger(*MUTED, "odoo.addons.subscription_billing.controllers.stripe"):
            response = self._post(payload, signed_event_headers(payload, timestamp=int(time.time()) + 3600))
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.charge.state, "pending")
        # A clock a minute ahead is within the tolerance (Stripe's own default is 5 minutes).
        response = self._post(payload, signed_event_headers(payload, timestamp=int(time.time()) + 60))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.charge.state, "done")

    def test_a_card_updated_at_stripe_refreshes_its_expiry_and_clears_the_reminder(self):
        token = self.sub.payment_token_id
        token.write({"card_exp_month": 1, "card_exp_year": 2027, "subscription_expiry_reminded": "2027-01"})
        method = {"id": "pm_hook", "object": "payment_method", "type": "card", "customer": "cus_hook",
                  "card": {"brand": "visa", "exp_month": 9, "exp_year": 2030, "last4": "4242"}}
        payload = event_payload("evt_pm_updated", "payment_method.updated", method)
        forged = signed_event_headers(payload, secret="whsec_not_ours")
        with mute_logger(*MUTED, "odoo.addons.subscription_billing.controllers.stripe"):
            self.assertEqual(self._post(payload, forged).status_code, 403, "verified as the other events")
        self.assertEqual((token.card_exp_month, token.card_exp_year), (1, 2027))
        self.assertEqual(self._post(payload, signed_event_headers(payload)).status_code, 200)
        self.assertEqual((token.card_exp_month, token.card_exp_year), (9, 2030))
        self.assertFalse(self.sub.is_card_expiry_reminded, "the reminder was for the old expiry")
        self._assert_logged(self.sub, "Stripe updated the card: ")
        self.assertIn("09/30", self.sub.payment_token_id._subscription_label())
        # The card network replaced the card: new number and expiry.
        method["card"].update(last4="1881", exp_month=3, exp_year=2031)
        payload = event_payload("evt_pm_auto", "payment_method.automatically_updated", method)
        self.assertEqual(self._post(payload, signed_event_headers(payload)).status_code, 200)
        self.assertEqual((token.payment_details, token.card_exp_month, token.card_exp_year), ("1881", 3, 2031))
        # Odd values and unknown methods change nothing and are no server error.
        for odd in ({"id": "pm_hook", "object": "payment_method", "card": {"exp_month": 13, "exp_year": "x"}},
                    {"id": "pm_unknown", "object": "payment_method", "card": {"exp_month": 1, "exp_year": 2040}},
                    {"id": None, "object": "payment_method", "card": "x"}):
            payload = event_payload(f"evt_odd_{odd['id']}", "payment_method.updated", odd)
            self.assertEqual(self._post(payload, signed_event_headers(payload)).status_code, 200)
        self.assertEqual((token.card_exp_month, token.card_exp_year), (3, 2031))

    def test_a_chargeback_puts_the_invoice_back_into_collection(self):
        payload = event_payload("evt_paid", "payment_intent.succeeded", self._intent("succeeded"))
        with freeze_time("2026-05-03"):
            self.assertEqual(self._post(payload, signed_event_headers(payload)).status_code, 200)
        self._assert_paid(self.sub.invoice_ids)
        dispute = {"id": "dp_1", "object": "dispute", "payment_intent": "pi_bank_debit", "charge": "ch_1",
                   "reason": "fraudulent", "amount": 1320, "status": "needs_response"}
        payload = event_payload("evt_dispute", "charge.dispute.created", dispute)
        with freeze_time("2026-05-10"):
            response = self._post(payload, signed_event_headers(payload))
        self.assertEqual(response.status_code, 200)
        invoice = self.sub.invoice_ids
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertEqual((self.charge.state, self.charge.is_reversed), ("done", True))
        self.assertEqual(self.sub.state, "past_due")
        self.assertEqual(invoice.subscription_charge_date, date(2026, 5, 11))
        self._assert_logged(self.sub, "chargeback")
        # A replay of the same dispute changes nothing more.
        self.assertEqual(self._post(payload, signed_event_headers(payload)).status_code, 200)
        self.assertEqual(len(self.sub.activity_ids.filtered(lambda a: "Payment undone" in (a.summary or ""))), 1)

    def test_a_future_timestamp_cannot_hide_behind_a_look_alike_key(self):
        payload = event_payload("evt_lookalike", "payment_intent.succeeded", self._intent("succeeded"))
        future = int(time.time()) + 3600
        signed = signed_event_headers(payload, timestamp=future)["Stripe-Signature"]
        header = f"v0=a, t={int(time.time())},{signed}"
        with mute_logger(*MUTED, "odoo.addons.subscription_billing.controllers.stripe"):
            response = self._post(payload, {"Stripe-Signature": header, "Content-Type": "application/json"})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.charge.state, "pending")

    def test_odd_metadata_is_not_a_server_error(self):
        intent = dict(self._intent("succeeded"), id="pi_unknown", metadata="x")
        payload = event_payload("evt_odd_metadata", "payment_intent.succeeded", intent)
        with mute_logger(*MUTED, "odoo.addons.payment_stripe.controllers.main", "odoo.http"):
            response = self._post(payload, signed_event_headers(payload))
        self.assertLess(response.status_code, 500)
        self.assertEqual(self.charge.state, "pending")
