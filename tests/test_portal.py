import json
import re
from datetime import timedelta
from unittest.mock import patch

from odoo.fields import Command
from odoo.tests import HttpCase, freeze_time, tagged
from odoo.tests.common import JsonRpcException
from odoo.tools import mute_logger

from .autopay_common import AutopayCommon
from .stripe_common import StripeSetupMixin, event_payload, signed_event_headers


class PortalCommon(AutopayCommon, HttpCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        portal = cls.env.ref("base.group_portal")
        cls.user_ada = cls.env["res.users"].create({
            "login": "ada_portal", "password": "ada_portal_pw", "partner_id": cls.partner.id,
            "group_ids": [Command.set(portal.ids)],
        })
        cls.user_bob = cls.env["res.users"].create({
            "login": "bob_portal", "password": "bob_portal_pw", "partner_id": cls.partner_b.id,
            "group_ids": [Command.set(portal.ids)],
        })
        cls.sub_ada = cls._create_subscription(partner=cls.partner, date_start="2026-05-01")
        cls.sub_bob = cls._create_subscription(partner=cls.partner_b, date_start="2026-05-01")
        cls.token_ada = cls._create_token(partner=cls.partner, outcome="done")
        cls.token_bob = cls._create_token(partner=cls.partner_b, outcome="done")

    def _page(self, url):
        response = self.url_open(url)
        self.env.invalidate_all()
        return response

    def _csrf(self, url):
        html = self.url_open(url).text
        return re.search(r'csrf_token["\']?\s*[:=]\s*["\']([0-9a-fA-Fo]+)["\']', html).group(1)

    def _rpc_error(self, route, **params):
        """The error message a JSON route answers (None when it succeeds), as the browser sees it."""
        body = json.dumps({"jsonrpc": "2.0", "method": "call", "params": params})
        response = self.url_open(route, data=body, headers={"Content-Type": "application/json"})
        self.env.invalidate_all()
        error = response.json().get("error")
        return error and error["data"]["message"]

    def _rpc(self, route, **params):
        result = self.make_jsonrpc_request(route, params)
        self.env.invalidate_all()
        return result


@tagged("post_install", "-at_install")
class TestPortalPages(PortalCommon):

    def test_list_and_counter_show_only_the_customers_own_subscriptions(self):
        self.authenticate("ada_portal", "ada_portal_pw")
        html = self._page("/my/subscriptions").text
        self.assertIn(self.sub_ada.name, html)
        self.assertNotIn(self.sub_bob.name, html)
        counters = self._rpc("/my/counters", counters=["subscription_count"])
        self.assertEqual(counters["subscription_count"], 1)

    def test_list_filters_and_sorts(self):
        self.sub_ada.action_suspend()
        other = self._create_subscription(partner=self.partner, date_start="2026-06-01")
        self.authenticate("ada_portal", "ada_portal_pw")
        html = self._page("/my/subscriptions?filterby=attention").text
        self.assertIn(self.sub_ada.name, html)
        self.assertNotIn(other.name, html)
        html = self._page("/my/subscriptions?sortby=next&filterby=nonsense").text
        self.assertIn(other.name, html, "an unknown filter falls back to all")

    def test_contact_of_the_same_company_sees_the_company_subscriptions(self):
        company = self.env["res.partner"].create({"name": "Trend Corp", "is_company": True})
        self.partner.parent_id = company
        sub = self._create_subscription(partner=company)
        self.authenticate("ada_portal", "ada_portal_pw")
        self.assertEqual(self._page(f"/my/subscriptions/{sub.id}").status_code, 200)

    def test_detail_page_opens_from_the_email_link_without_login(self):
        response = self._page(self.sub_ada.get_portal_url())
        self.assertEqual(response.status_code, 200)
        self.assertIn(self.sub_ada.name, response.text)
        self.assertIn(self.sub_ada.plan_id.name, response.text)

    def test_a_saved_method_is_offered_for_autopay(self):
        html = self._page(self.sub_ada.get_portal_url()).text
        self.assertIn("o_subscription_autopay_offer", html)
        self.assertIn("4242", html)
        self.assertNotIn(f"o_payment_token_{self.token_bob.id}", html, "another customer's card is never offered")

    def test_wrong_or_missing_token_and_other_customers_get_404(self):
        with mute_logger("odoo.http", "werkzeug"):
            self.assertEqual(self._page(f"/my/subscriptions/{self.sub_ada.id}").status_code, 404)
            self.assertEqual(self._page(f"/my/subscriptions/{self.sub_ada.id}?access_token=wrong").status_code, 404)
            self.assertEqual(self._page(
                f"/my/subscriptions/{self.sub_ada.id}?access_token={self.sub_bob.access_token}").status_code, 404)
            self.assertEqual(self._page("/my/subscriptions/999999").status_code, 404)
            self.authenticate("bob_portal", "bob_portal_pw")
            self.assertEqual(self._page(f"/my/subscriptions/{self.sub_ada.id}").status_code, 404)

    def test_failure_email_link_opens_the_page_with_the_reason(self):
        self.sub_ada.payment_token_id = self._create_token(outcome="error")
        self._bill_and_charge("2026-05-01")
        mail = self._mails_to(self.partner, "failed — we will try again")
        link = re.search(r'href="([^"]*/my/subscriptions/[^"]+)"', mail.body_html).group(1)
        link = link.replace("&amp;", "&")
        response = self._page(link[link.index("/my/subscriptions"):])
        self.assertEqual(response.status_code, 200)
        self.assertIn("o_subscription_attention", response.text)
        self.assertIn("You selected the following demo payment status", response.text)
        self.assertIn("Pay now", response.text)


@tagged("post_install", "-at_install")
class TestPortalAutopay(PortalCommon):

    def test_customer_assigns_a_saved_method(self):
        self.authenticate("ada_portal", "ada_portal_pw")
        self._rpc(f"/my/subscriptions/{self.sub_ada.id}/autopay/assign",
                  token_id=self.token_ada.id, access_token=self.sub_ada.access_token)
        self.assertEqual(self.sub_ada.payment_token_id, self.token_ada)

    def test_token_of_another_customer_is_refused(self):
        self.authenticate("ada_portal", "ada_portal_pw")
        with self.assertRaises(JsonRpcException), mute_logger("odoo.http"):
            self._rpc(f"/my/subscriptions/{self.sub_ada.id}/autopay/assign",
                      token_id=self.token_bob.id, access_token=self.sub_ada.access_token)
        self.assertFalse(self.sub_ada.payment_token_id)

    def test_posting_to_another_customers_subscription_is_refused(self):
        self.authenticate("ada_portal", "ada_portal_pw")
        with self.assertRaises(JsonRpcException), mute_logger("odoo.http"):
            self._rpc(f"/my/subscriptions/{self.sub_bob.id}/autopay/assign", token_id=self.token_bob.id)
        with self.assertRaises(JsonRpcException), mute_logger("odoo.http"):
            self._rpc(f"/my/subscriptions/{self.sub_bob.id}/autopay/assign", token_id=self.token_bob.id,
                      access_token="forged")
        with self.assertRaises(JsonRpcException), mute_logger("odoo.http"):
            self._rpc(f"/my/subscriptions/{self.sub_bob.id}/autopay/transaction",
                      provider_id=self.demo_provider.id, payment_method_id=self.demo_method.id, flow="direct")
        self.assertFalse(self.sub_bob.payment_token_id)
        self.assertFalse(self.env["payment.transaction"].search([("subscription_autopay_id", "=", self.sub_bob.id)]))

    def test_new_method_saved_through_the_payment_form_becomes_the_autopay_method(self):
        draft = self._create_subscription(partner=self.partner, start=False, autopay_requested=True)
        values = self._rpc(f"/my/subscriptions/{draft.id}/autopay/transaction",
                           access_token=draft.access_token, provider_id=self.demo_provider.id,
                           payment_method_id=self.demo_method.id, flow="direct", tokenization_requested=False,
                           landing_route="/evil", is_validation=False, amount=1000)
        tx = self.env["payment.transaction"].search([("reference", "=", values["reference"])])
        self.assertEqual((tx.operation, tx.subscription_autopay_id, tx.partner_id), ("validation", draft, self.partner))
        self.assertTrue(tx.tokenize, "saving the method is what this route is for")
        self.assertNotIn("evil", tx.landing_route)
        # The customer's browser completes the demo payment (as payment_demo's form does).
        self._rpc("/payment/demo/simulate_payment", reference=tx.reference, payment_details="4242",
                  simulated_state="done")
        self.assertEqual(draft.payment_token_id, tx.token_id)
        self.assertEqual((draft.state, draft.autopay_requested), ("active", False))

    def test_a_provider_that_cannot_save_methods_is_refused(self):
        self.demo_provider.allow_tokenization = False
        with self.assertRaises(JsonRpcException), mute_logger("odoo.http"):
            self._rpc(f"/my/subscriptions/{self.sub_ada.id}/autopay/transaction",
                      access_token=self.sub_ada.access_token, provider_id=self.demo_provider.id,
                      payment_method_id=self.demo_method.id, flow="direct")
        self.assertFalse(self.env["payment.transaction"].search([("subscription_autopay_id", "=", self.sub_ada.id)]))

    def test_a_cancelled_subscription_cannot_be_enrolled_from_the_portal(self):
        self.sub_ada.action_cancel()
        with self.assertRaises(JsonRpcException), mute_logger("odoo.http"):
            self._rpc(f"/my/subscriptions/{self.sub_ada.id}/autopay/assign",
                      token_id=self.token_ada.id, access_token=self.sub_ada.access_token)
        self.assertFalse(self.sub_ada.payment_token_id)

    def test_new_method_charges_the_open_invoices_of_a_suspended_subscription(self):
        self.sub_ada.payment_token_id = self._create_token(outcome="cancel")
        self._bill_and_charge("2026-05-01")
        self.assertEqual(self.sub_ada.state, "suspended")
        with freeze_time("2026-05-03"):
            self.authenticate("ada_portal", "ada_portal_pw")
            self._rpc(f"/my/subscriptions/{self.sub_ada.id}/autopay/assign",
                      token_id=self.token_ada.id, access_token=self.sub_ada.access_token)
            self.assertEqual(self.sub_ada.state, "past_due")
            self._run_autopay()
        self.assertEqual(self.sub_ada.state, "active")
        self._assert_paid(self.sub_ada.invoice_ids)

    def test_turning_autopay_off_needs_the_csrf_token_and_then_works(self):
        self.sub_ada.payment_token_id = self.token_ada
        url = f"/my/subscriptions/{self.sub_ada.id}/autopay/disable"
        with mute_logger("odoo.http", "werkzeug"):
            response = self.url_open(url, data={"access_token": self.sub_ada.access_token})
        self.assertEqual(response.status_code, 400)
        self.env.invalidate_all()
        self.assertEqual(self.sub_ada.payment_token_id, self.token_ada)
        csrf = self._csrf(self.sub_ada.get_portal_url())
        response = self.url_open(url, data={"access_token": self.sub_ada.access_token, "csrf_token": csrf})
        self.env.invalidate_all()
        self.assertEqual(response.status_code, 200)
        self.assertIn("Automatic payment is off", response.text)
        self.assertFalse(self.sub_ada.payment_token_id)

    def test_stop_renewal_only_where_the_plan_allows_it(self):
        url = f"/my/subscriptions/{self.sub_ada.id}/renewal/stop"
        csrf = self._csrf(self.sub_ada.get_portal_url())
        with mute_logger("odoo.http", "werkzeug"):
            response = self.url_open(url, data={"access_token": self.sub_ada.access_token, "csrf_token": csrf})
        self.assertEqual(response.status_code, 403)
        self.env.invalidate_all()
        self.assertTrue(self.sub_ada.auto_renew)
        self.plan_monthly.customer_can_stop_renewal = True
        self.url_open(url, data={"access_token": self.sub_ada.access_token, "csrf_token": csrf})
        self.env.invalidate_all()
        self.assertFalse(self.sub_ada.auto_renew)
        self._assert_logged(self.sub_ada, "turned off the renewal")

    def test_stopping_the_renewal_keeps_the_reason_the_customer_picked(self):
        self.plan_monthly.customer_can_stop_renewal = True
        url = f"/my/subscriptions/{self.sub_ada.id}/renewal/stop"
        page = self._page(self.sub_ada.get_portal_url()).text
        too_expensive = self.env.ref("subscription_billing.close_reason_too_expensive")
        payment_failure = self.env.ref("subscription_billing.close_reason_payment_failure")
        self.assertIn(f'value="{too_expensive.id}"', page)
        self.assertNotIn(f'value="{payment_failure.id}"', page, "not a reason a customer gives")
        csrf = self._csrf(self.sub_ada.get_portal_url())
        with mute_logger("odoo.http", "werkzeug"):
            for crafted in (payment_failure.id, "x", 999999):
                response = self.url_open(url, data={"access_token": self.sub_ada.access_token, "csrf_token": csrf,
                                                    "close_reason_id": crafted})
                self.assertEqual(response.status_code, 403, crafted)
        self.env.invalidate_all()
        self.assertTrue(self.sub_ada.auto_renew)
        self.url_open(url, data={"access_token": self.sub_ada.access_token, "csrf_token": csrf,
                                 "close_reason_id": too_expensive.id})
        self.env.invalidate_all()
        self.assertEqual((self.sub_ada.auto_renew, self.sub_ada.close_reason_id), (False, too_expensive))
        self._assert_logged(self.sub_ada, "turned off the renewal (Too expensive)")
        self.sub_ada.auto_renew = True  # the salesperson won them back
        self.assertFalse(self.sub_ada.close_reason_id)

    def test_customers_pause_and_resume_where_the_plan_allows_it(self):
        pause = f"/my/subscriptions/{self.sub_ada.id}/pause"
        resume = f"/my/subscriptions/{self.sub_ada.id}/resume"
        today = self.sub_ada.company_id._subscription_today()
        self.authenticate("ada_portal", "ada_portal_pw")
        csrf = self._csrf(self.sub_ada.get_portal_url())
        self.assertNotIn("o_subscription_pause_form", self._page(self.sub_ada.get_portal_url()).text)
        with mute_logger("odoo.http", "werkzeug"):
            self.assertEqual(self.url_open(pause, data={"csrf_token": csrf}).status_code, 403,
                             "the plan does not let customers pause")
        self.plan_monthly.write({"customer_can_pause": True, "max_pause_days": 60})
        self.assertIn("o_subscription_pause_form", self._page(self.sub_ada.get_portal_url()).text)
        with mute_logger("odoo.http", "werkzeug"):
            other = self.url_open(f"/my/subscriptions/{self.sub_bob.id}/pause", data={"csrf_token": csrf})
            self.assertEqual(other.status_code, 404, "another customer's subscription does not exist for Ada")
            forged = self.url_open(pause, data={"date_resume": str(today + timedelta(days=10))})
            self.assertEqual(forged.status_code, 400, "no CSRF token, no pause")
        for refused in (str(today + timedelta(days=61)), str(today), "next summer"):
            response = self.url_open(pause, data={"csrf_token": csrf, "date_resume": refused})
            self.assertIn("o_subscription_pause_refused", response.text, refused)
            self.assertIn("at most 60 days", response.text)
        self.env.invalidate_all()
        self.assertEqual((self.sub_bob.state, self.sub_ada.state), ("active", "active"))
        response = self.url_open(pause, data={"csrf_token": csrf, "date_resume": str(today + timedelta(days=20))})
        self.assertIn("o_subscription_paused_message", response.text)
        self.env.invalidate_all()
        self.assertEqual((self.sub_ada.state, self.sub_ada.date_resume), ("paused", today + timedelta(days=20)))
        self._assert_logged(self.sub_ada, "Paused by Ada Reader; resumes on")
        self.authenticate("bob_portal", "bob_portal_pw")
        with mute_logger("odoo.http", "werkzeug"):
            bob_csrf = self._csrf(self.sub_bob.get_portal_url())
            self.assertEqual(self.url_open(resume, data={"csrf_token": bob_csrf}).status_code, 404)
        self.env.invalidate_all()
        self.assertEqual(self.sub_ada.state, "paused")
        self.authenticate("ada_portal", "ada_portal_pw")
        csrf = self._csrf(self.sub_ada.get_portal_url())
        response = self.url_open(resume, data={"csrf_token": csrf})
        self.assertIn("running again", response.text)
        self.env.invalidate_all()
        self.assertEqual(self.sub_ada.state, "active")
        self._assert_logged(self.sub_ada, "Resumed by Ada Reader")

    def test_customers_change_quantities_with_the_amounts_shown_first(self):
        sub = self.sub_ada
        sub.line_ids.quantity = 2.0
        sub._bill()  # every period up to today's is invoiced: today's is prorated
        change = f"/my/subscriptions/{sub.id}/change"
        self.authenticate("ada_portal", "ada_portal_pw")
        csrf = self._csrf(sub.get_portal_url())
        self.assertNotIn("o_subscription_change_link", self._page(sub.get_portal_url()).text)
        with mute_logger("odoo.http", "werkzeug"):
            self.assertEqual(self.url_open(change).status_code, 403, "the plan does not let customers change")
        (self.plan_monthly | self.plan_yearly).customer_can_change = True
        self.assertIn("o_subscription_change_link", self._page(sub.get_portal_url()).text)
        page = self._page(change).text
        self.assertIn("Yearly (test)", page)
        self.assertIn("264.00", page, "the yearly plan's amount for two copies (2 × 120.00 + 10 %)")
        self.assertNotIn("Quarterly (test)", page, "a plan that does not let customers change is not offered")
        line = sub.line_ids
        form = {"csrf_token": csrf, "plan_id": str(self.plan_monthly.id), "timing": "now",
                f"quantity_{line.id}": "3", f"product_{line.id}": str(self.product.id)}
        with mute_logger("odoo.http", "werkzeug"):
            for route in (change, f"{change}/preview", f"{change}/confirm"):
                other = route.replace(str(sub.id), str(self.sub_bob.id))
                response = self.url_open(other, data=form) if route != change else self.url_open(other)
                self.assertEqual(response.status_code, 404, f"Bob's subscription does not exist for Ada: {route}")
                if route != change:
                    forged = self.url_open(route, data={k: v for k, v in form.items() if k != "csrf_token"})
                    self.assertEqual(forged.status_code, 400, f"no CSRF token: {route}")
            for field, value, message in (
                ("plan_id", str(self.plan_quarterly.id), "not offered"),
                (f"quantity_{line.id}", "three", "is not a quantity"),
                (f"quantity_{line.id}", "0", "whole numbers from 1"),
                (f"quantity_{line.id}", "1", "committed until"),  # a downgrade during the term
                (f"product_{line.id}", str(self.env["product.product"].create({
                    "name": "Another magazine", "recurring_invoice": True}).id), "not offered"),
            ):
                response = self.url_open(f"{change}/preview", data=dict(form, **{field: value}))
                self.assertEqual(response.status_code, 400, (field, value))
                self.assertIn(message, response.text, (field, value))
        response = self.url_open(f"{change}/preview", data=form)
        self.env.invalidate_all()
        preview = sub._change_preview(self.plan_monthly, sub._new_lines(
            [{"line_id": line.id, "product_id": self.product.id, "quantity": 3.0}], self.plan_monthly), "now")
        self.assertIn(f'name="expected_net" value="{preview["net"]}"', response.text)
        self.assertIn("o_subscription_change_confirm", response.text)
        self.assertEqual(line.quantity, 2.0, "a preview changes nothing")
        with mute_logger("odoo.http", "werkzeug"):
            stale = self.url_open(f"{change}/confirm", data=dict(form, expected_net="0.01"))
        self.assertEqual(stale.status_code, 409, "amounts other than those shown are shown again, not applied")
        self.assertIn("The amounts have changed", stale.text)
        self.env.invalidate_all()
        self.assertEqual(line.quantity, 2.0)
        response = self.url_open(f"{change}/confirm", data=dict(form, expected_net=str(preview["net"])))
        self.assertIn("o_subscription_changed_message", response.text)
        self.env.invalidate_all()
        invoice = sub.invoice_ids.filtered(lambda m: "change on" in (m.invoice_line_ids[:1].name or ""))
        self.assertEqual((line.quantity, invoice.amount_total), (3.0, preview["net"]))
        self.assertIn(invoice.name, response.text)
        self._assert_logged(sub, "Changed by Ada Reader")

    def test_a_change_from_the_next_period_is_confirmed_from_the_page_as_shown(self):
        """Nothing to pay now (0.00): the confirm form still carries the amount shown; a change that
        changes nothing, or an amount that is not a number, is refused and writes nothing."""
        sub = self.sub_ada
        sub._bill()
        self.plan_monthly.customer_can_change = True
        line = sub.line_ids
        change = f"/my/subscriptions/{sub.id}/change"
        self.authenticate("ada_portal", "ada_portal_pw")
        csrf = self._csrf(sub.get_portal_url())
        form = {"csrf_token": csrf, "plan_id": str(self.plan_monthly.id), "timing": "next_period",
                f"quantity_{line.id}": "4", f"product_{line.id}": str(self.product.id)}
        page = self.url_open(f"{change}/preview", data=form).text
        shown = re.search(r'name="expected_net" value="([^"]*)"', page).group(1)
        self.assertEqual(float(shown), 0.0)
        with mute_logger("odoo.http", "werkzeug"):
            for odd in ("nan", "inf", "-inf", "1e400"):
                response = self.url_open(f"{change}/confirm", data=dict(form, expected_net=odd))
                self.assertEqual(response.status_code, 400, odd)
            same = self.url_open(f"{change}/confirm", data=dict(form, **{f"quantity_{line.id}": "1"},
                                                                  expected_net="0.0"))
            self.assertEqual(same.status_code, 400)
            self.assertIn("Nothing would change", same.text)
        invoices_before = len(sub.invoice_ids)
        response = self.url_open(f"{change}/confirm", data=dict(form, expected_net=shown))
        self.assertIn("It applies from the next period", response.text)
        self.env.invalidate_all()
        self.assertEqual((line.quantity, len(sub.invoice_ids)), (4.0, invoices_before))

    def test_customers_switch_to_another_variant_during_their_commitment(self):
        attribute = self.env["product.attribute"].create({"name": "Edition", "value_ids": [
            Command.create({"name": "Print"}), Command.create({"name": "Digital"})]})
        template = self.env["product.template"].create({
            "name": "Trendhouse Editions", "type": "service", "recurring_invoice": True, "list_price": 12.0,
            "taxes_id": [Command.set(self.tax.ids)],
            "attribute_line_ids": [Command.create({"attribute_id": attribute.id,
                                                   "value_ids": [Command.set(attribute.value_ids.ids)]})]})
        self.env["subscription.pricing"].create({"product_tmpl_id": template.id, "plan_id": self.plan_monthly.id,
                                                  "price": 12.0})
        printed, digital = template.product_variant_ids
        sub = self._create_subscription(partner=self.partner, date_start="2026-05-01", line_ids=[
            Command.create({"product_id": printed.id, "quantity": 1.0})])
        sub.line_ids.filtered(lambda l: l.product_id != printed).unlink()
        self.plan_monthly.customer_can_change = True
        line = sub.line_ids
        self.authenticate("ada_portal", "ada_portal_pw")
        page = self._page(f"/my/subscriptions/{sub.id}/change").text
        self.assertIn(digital.display_name, page, "the other variant is offered")
        csrf = self._csrf(sub.get_portal_url())
        response = self.url_open(f"/my/subscriptions/{sub.id}/change/preview", data={
            "csrf_token": csrf, "plan_id": str(self.plan_monthly.id), "timing": "next_period",
            f"quantity_{line.id}": "1", f"product_{line.id}": str(digital.id)})
        self.assertEqual(response.status_code, 200, "the same price in another variant is no downgrade")
        self.assertIn("o_subscription_change_confirm", response.text)

    def test_staff_send_the_setup_link_and_the_subscription_awaits_a_method(self):
        draft = self._create_subscription(partner=self.partner, start=False)
        draft.with_user(self.sales_user).action_send_autopay_link()
        self.assertTrue(draft.autopay_requested)
        message = draft.message_ids.filtered(lambda m: "autopay" in (m.body or "") or "automatic" in (m.body or ""))
        self.assertTrue(message)
        self.assertIn(draft.access_token, str(message[0].body))
        self.assertIn(self.partner, message[0].partner_ids)


@tagged("post_install", "-at_install")
class TestPortalStripeEnrollment(StripeSetupMixin, PortalCommon):
    """A card saved with Stripe from the subscription page becomes its autopay method.

    Odoo's own Stripe calls (customer, SetupIntent, PaymentMethod) are answered by a server on
    127.0.0.1 with Stripe-shaped payloads; the outcome comes by a signed webhook.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_stripe_on_local_server()
        cls.stripe_provider.allow_tokenization = True
        base = cls.server.url_for("/v1/")
        url_patcher = patch.object(
            type(cls.stripe_provider), "_build_request_url",
            lambda provider, endpoint, **kwargs: f"{base}{endpoint}",
        )
        url_patcher.start()
        cls.addClassCleanup(url_patcher.stop)

    def test_card_saved_with_stripe_enrolls_the_subscription(self):
        self.server.expect_request("/v1/customers", method="POST").respond_with_json(
            {"id": "cus_portal", "object": "customer"})
        self.server.expect_request("/v1/setup_intents", method="POST").respond_with_json({
            "id": "seti_portal", "object": "setup_intent", "client_secret": "seti_portal_secret",
            "status": "requires_payment_method", "customer": "cus_portal",
        })
        self.server.expect_request("/v1/payment_methods/pm_portal", method="GET").respond_with_json({
            "id": "pm_portal", "object": "payment_method", "type": "card",
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2035},
        })
        card = self.card_method.sudo()
        values = self._rpc(f"/my/subscriptions/{self.sub_ada.id}/autopay/transaction",
                           access_token=self.sub_ada.access_token, provider_id=self.stripe_provider.id,
                           payment_method_id=card.id, flow="direct")
        self.assertEqual(values["client_secret"], "seti_portal_secret")
        tx = self.env["payment.transaction"].search([("reference", "=", values["reference"])])
        self.assertEqual((tx.operation, tx.subscription_autopay_id), ("validation", self.sub_ada))
        # The customer confirmed the card in Stripe's form: Stripe notifies Odoo.
        payload = event_payload("evt_seti_ok", "setup_intent.succeeded", {
            "id": "seti_portal", "object": "setup_intent", "description": tx.reference, "status": "succeeded",
            "customer": "cus_portal", "payment_method": "pm_portal",
        })
        response = self.url_open("/payment/stripe/webhook", data=payload, headers=signed_event_headers(payload),
                                 method="POST")
        self.assertEqual(response.status_code, 200)
        self.env.invalidate_all()
        token = self.sub_ada.payment_token_id
        self.assertEqual((token.provider_ref, token.stripe_payment_method, token.payment_details),
                         ("cus_portal", "pm_portal", "4242"))
        self._assert_logged(self.sub_ada, "Autopay set up by the customer")
