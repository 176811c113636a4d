import unittest

from odoo.tests import new_test_user, tagged

from .test_portal import PortalCommon


class TourMixin:

    def _run_tour(self, url, tour, login):
        try:
            self.start_tour(url, tour, login=login, timeout=180)
        except unittest.SkipTest as skipped:
            self.fail(f"the browser tour {tour} could not run: {skipped}")
        self.env.invalidate_all()


@tagged("post_install", "-at_install")
class TestBackendTours(TourMixin, PortalCommon):
    """Staff flows clicked through in headless Chromium, each with its own role."""

    def test_sales_creates_starts_and_invoices_a_subscription(self):
        new_test_user(self.env, login="tour_sales", password="tour_sales_pw", name="Tess Sales",
                      groups="sales_team.group_sale_salesman")
        partner = self.env["res.partner"].create({"name": "Tour Reader", "email": "tour@example.com"})
        self._run_tour("/odoo/action-subscription_billing.subscription_action", "subscription_sales_start_and_invoice",
                       "tour_sales")
        sub = self.env["subscription.subscription"].search([("partner_id", "=", partner.id)])
        self.assertEqual(sub.state, "active")
        self.assertEqual(sub.user_id.login, "tour_sales")
        self.assertEqual(sub.invoice_ids.state, "posted")
        self.assertEqual(sub.invoice_ids.amount_total, 13.2)

    def test_support_reads_the_health_line_on_the_contact(self):
        new_test_user(self.env, login="tour_support", password="tour_support_pw", name="Sue Support",
                      groups="base.group_user,base.group_partner_manager")
        self.sub_ada.payment_token_id = self._create_token(outcome="error")
        self._bill_and_charge("2026-05-01")
        self.assertEqual(self.sub_ada.health, "failed")
        self._run_tour(f"/odoo/res.partner/{self.partner.id}", "subscription_support_reads_health", "tour_support")
