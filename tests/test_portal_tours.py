import unittest
from datetime import timedelta

from odoo import fields
from odoo.tests import freeze_time, tagged

from .test_portal import PortalCommon


@tagged("post_install", "-at_install")
class TestPortalTours(PortalCommon):
    """The customer's portal flows, clicked through in headless Chromium."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.demo_provider.is_published = True

    def _run_tour(self, url, tour):
        try:
            self.start_tour(url, tour, login="ada_portal", timeout=180)
        except unittest.SkipTest as skipped:
            # Odoo skips browser tours silently when Chromium or websocket-client is missing.
            self.fail(f"the browser tour {tour} could not run: {skipped}")
        self.env.invalidate_all()

    def test_pay_the_overdue_invoice_save_the_card_and_enroll(self):
        start = fields.Date.context_today(self.env["res.partner"]) - timedelta(days=20)
        with freeze_time(start):  # invoiced 20 days ago, due that day: overdue now
            sub = self._create_subscription(partner=self.partner, date_start=start)
            sub._generate_due_invoices()
        invoice = sub.invoice_ids
        self.assertEqual(len(invoice), 1)
        sub._update_state("past_due")
        self._run_tour(sub.get_portal_url(), "subscription_portal_pay_and_enroll")
        self._assert_paid(invoice)
        self.assertEqual(sub.state, "active")
        self.assertTrue(sub.payment_token_id.payment_details.endswith("4444"), "the card saved while paying")
        self.assertEqual(sub.payment_token_id.partner_id.commercial_partner_id, self.partner)

    def test_turn_autopay_off_then_on_with_a_new_card(self):
        self.sub_ada.payment_token_id = self.token_ada
        self._run_tour(self.sub_ada.get_portal_url(), "subscription_portal_autopay_off_on")
        new_token = self.sub_ada.payment_token_id
        self.assertTrue(new_token)
        self.assertNotEqual(new_token, self.token_ada)
        self.assertTrue(new_token.payment_details.endswith("1111"))
        self._assert_logged(self.sub_ada, "turned autopay off")
        self._assert_logged(self.sub_ada, "Autopay set up by the customer")


@tagged("post_install", "-at_install")
class TestPortalPhone(PortalCommon):
    """The portal on a phone screen (390 px wide), in headless Chromium."""

    browser_size = "390x844"
    touch_enabled = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.demo_provider.is_published = True

    def test_pay_an_overdue_invoice_on_a_phone_and_download_its_pdf(self):
        start = fields.Date.context_today(self.env["res.partner"]) - timedelta(days=5)
        with freeze_time(start):  # invoiced 5 days ago, due that day: overdue now
            sub = self._create_subscription(partner=self.partner, date_start=start)
            sub._generate_due_invoices()
        self.sub_ada.action_cancel()
        self._run_sending()
        sub._update_state("past_due")
        invoice = sub.invoice_ids
        self.assertTrue(invoice.invoice_pdf_report_id)
        try:
            self.start_tour("/my/subscriptions", "subscription_portal_phone_pay", login="ada_portal", timeout=180)
        except unittest.SkipTest as skipped:
            self.fail(f"the browser tour could not run: {skipped}")
        self.env.invalidate_all()
        self._assert_paid(invoice)
        self.assertEqual(sub.state, "active")
        # The download is the official PDF made by the sending job, not a pro-forma.
        self.authenticate("ada_portal", "ada_portal_pw")
        download = self.url_open(invoice.get_portal_url(report_type="pdf", download=True))
        self.assertEqual(download.status_code, 200)
        self.assertEqual(download.content, invoice.invoice_pdf_report_id.raw)
        self.assertNotIn(b"Proforma", download.content)


@tagged("post_install", "-at_install")
class TestPortalChangeTour(PortalCommon):
    """A customer upgrades from monthly to yearly in the portal, in headless Chromium."""

    def test_monthly_customer_moves_to_yearly_and_sees_the_prorated_documents(self):
        (self.plan_monthly | self.plan_yearly).customer_can_change = True
        today = self.sub_ada.company_id._subscription_today()
        sub = self._create_subscription(partner=self.partner, date_start=today - timedelta(days=9))
        self.sub_ada.action_cancel()
        month = sub._bill()
        self.assertEqual(len(month), 1)
        vals = [{"line_id": line.id, "product_id": line.product_id.id, "quantity": line.quantity,
                 "price_unit": 120.0} for line in sub.line_ids]
        expected = sub._change_preview(self.plan_yearly, sub._new_lines(vals, self.plan_yearly), "now")
        self.assertEqual((expected["days_left"], expected["charge"], expected["next"]),
                         ((month.subscription_period_end - today).days + 1, 120.0, 132.0))
        try:
            self.start_tour(sub.get_portal_url(), "subscription_portal_upgrade_to_yearly", login="ada_portal",
                            timeout=180)
        except unittest.SkipTest as skipped:
            self.fail(f"the browser tour could not run: {skipped}")
        self.env.invalidate_all()
        self.assertEqual((sub.plan_id, sub.line_ids.price_unit), (self.plan_yearly, 120.0))
        documents = self.env["account.move"].search([("subscription_id", "=", sub.id), ("id", "not in", month.ids)])
        credit = documents.filtered(lambda m: m.move_type == "out_refund")
        yearly = documents.filtered(lambda m: m.move_type == "out_invoice")
        self.assertEqual((credit.amount_untaxed, yearly.amount_total), (expected["credit"], 132.0))
        self.assertEqual(sub.currency_id.round(yearly.amount_total - credit.amount_total), expected["net"],
                         "what the preview showed is what the documents add up to")
        self.assertEqual((yearly.subscription_period_start, yearly.state, credit.state), (today, "posted", "posted"))
        self._assert_logged(sub, "Changed by Ada Reader: plan Monthly (test) → Yearly (test)")
