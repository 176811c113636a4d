from datetime import date

from odoo.exceptions import AccessError, UserError
from odoo.tests import freeze_time, new_test_user, tagged

from .autopay_common import AutopayCommon


@tagged("post_install", "-at_install")
class TestPlanAndQuantityChanges(AutopayCommon):
    """Changes now are prorated per day on the period's real length, taxes as invoices compute them;
    the preview and the documents carry the same amounts (hand-computed below, 10 % tax)."""

    def _billed(self, plan=None, date_start="2026-01-01", **vals):
        sub = self._create_subscription(plan=plan, date_start=date_start, **vals)
        with freeze_time(date_start):
            self._run_billing()
        return sub

    def _change(self, sub, day, quantity=None, plan=None, timing="now"):
        lines = [{"line_id": line.id, "product_id": line.product_id.id, "quantity": quantity or line.quantity,
                  **({} if plan else {"price_unit": line.price_unit})} for line in sub.line_ids]
        plan = plan or sub.plan_id
        with freeze_time(day):
            preview = sub._change_preview(plan, sub._new_lines(lines, plan), timing)
            documents = sub._apply_change(plan, lines, timing)
        return preview, documents

    def _assert_prorated(self, sub, day, quantity, expected):
        """``expected``: (days left, days in period, credit, charge, net)."""
        preview, documents = self._change(sub, day, quantity)
        self.assertEqual((preview["days_left"], preview["days_in_period"], preview["credit"], preview["charge"],
                          preview["net"]), expected)
        self.assertEqual(len(documents), 1)
        signed = documents.amount_total if documents.move_type == "out_invoice" else -documents.amount_total
        self.assertAlmostEqual(signed, expected[4], places=2, msg="the document carries the previewed net")
        return documents

    def test_middle_first_and_last_day_of_a_month(self):
        # (Days go forward within a test, as they do for invoices' numbers.)
        first = self._billed(partner=self.partner_b)
        middle = self._billed()
        last = self._billed(partner=self.env["res.partner"].create({"name": "Cy", "email": "cy@example.com"}))
        # The first day: the whole period again, at the new quantity.
        self._assert_prorated(first, "2026-01-01", 2, (31, 31, 12.0, 24.0, 13.2))
        # 12.00 × 21/31 = 8.13 per copy: credit 8.13, charge 2 × 8.13 = 16.26, net 8.13 + 10 % = 8.94.
        invoice = self._assert_prorated(middle, "2026-01-11", 2, (21, 31, 8.13, 16.26, 8.94))
        self.assertEqual(invoice.move_type, "out_invoice")
        self.assertEqual(sorted(invoice.invoice_line_ids.mapped("quantity")), [-1.0, 2.0])
        self.assertEqual(middle.line_ids.quantity, 2.0)
        # The last day: 12.00 × 1/31 = 0.39 per copy.
        self._assert_prorated(last, "2026-01-31", 2, (1, 31, 0.39, 0.78, 0.43))
        with freeze_time("2026-02-01"):
            self._run_billing()
        february = middle.invoice_ids.filtered(lambda m: m.subscription_period_start == date(2026, 2, 1))
        self.assertEqual(february.amount_total, 26.4, "the next period at the new quantity")

    def test_month_end_period_and_yearly_period(self):
        # Jan 31 → Feb 27 is 28 days; from Feb 14, 14 are left: 6.00 per copy, 3 copies instead of 1.
        yearly = self._billed(plan=self.plan_yearly, partner=self.partner_b)
        month_end = self._billed(date_start="2026-01-31")
        self._assert_prorated(month_end, "2026-02-14", 3, (14, 28, 6.0, 18.0, 13.2))
        # 2026 has 365 days; from Jul 2, 183 are left: 120.00 × 183/365 = 60.16 per copy.
        self._assert_prorated(yearly, "2026-07-02", 2, (183, 365, 60.16, 120.32, 66.18))

    def test_a_downgrade_during_the_term_needs_the_plan_to_allow_it_and_credits_the_customer(self):
        sub = self._create_subscription(date_start="2026-01-01")
        sub.line_ids.quantity = 2
        with freeze_time("2026-01-01"):
            self._run_billing()
        january = sub.invoice_ids
        self.assertEqual(january.amount_total, 26.4)
        with self.assertRaisesRegex(UserError, "committed until 12/31/2026"):
            self._change(sub, "2026-01-11", 1)
        self.assertEqual(sub.line_ids.quantity, 2.0, "refused: nothing changed")
        self.plan_monthly.allow_downgrade = True
        preview, credit_note = self._change(sub, "2026-01-11", 1)
        self.assertEqual((preview["credit"], preview["charge"], preview["net"]), (16.26, 8.13, -8.94))
        self.assertEqual((credit_note.move_type, credit_note.amount_total), ("out_refund", 8.94))
        self.assertEqual(january.amount_residual, 17.46, "the credit is used on the unpaid period")

    def test_a_credit_on_a_paid_period_pays_the_next_invoice(self):
        self.plan_monthly.allow_downgrade = True
        sub = self._create_subscription(date_start="2026-01-01")
        sub.line_ids.quantity = 2
        with freeze_time("2026-01-01"):
            self._run_billing()
            self._register_payment(sub.invoice_ids)
        _preview, credit_note = self._change(sub, "2026-01-11", 1)
        self.assertEqual(credit_note.payment_state, "not_paid", "kept as the customer's credit, not refunded")
        with freeze_time("2026-02-01"):
            self._run_billing()
        february = sub.invoice_ids.filtered(lambda m: m.subscription_period_start == date(2026, 2, 1))
        self.assertEqual((february.amount_total, february.amount_residual), (13.2, 4.26))
        self.assertIn(credit_note.payment_state, ("paid", "in_payment"))

    def test_monthly_to_yearly_now_starts_a_new_yearly_period_less_the_unused_month(self):
        sub = self._billed()
        with freeze_time("2026-01-01"):
            self._register_payment(sub.invoice_ids)  # January paid: its unused days pay the new period
        preview, documents = self._change(sub, "2026-01-11", plan=self.plan_yearly)
        # Unused January: 8.13 + 0.81; the yearly period from Jan 11: 120.00 + 12.00.
        self.assertEqual((preview["credit"], preview["charge"], preview["tax"], preview["net"]),
                         (8.13, 120.0, 11.19, 123.06))
        credit_note = documents.filtered(lambda m: m.move_type == "out_refund")
        yearly = documents.filtered(lambda m: m.move_type == "out_invoice")
        self.assertEqual((credit_note.amount_total, yearly.amount_total, yearly.amount_residual), (8.94, 132.0, 123.06))
        self.assertEqual((yearly.subscription_period_start, yearly.subscription_period_end),
                         (date(2026, 1, 11), date(2027, 1, 10)))
        self.assertEqual((sub.plan_id, sub.next_invoice_date, sub.date_end, sub.line_ids.price_unit),
                         (self.plan_yearly, date(2027, 1, 11), date(2027, 1, 10), 120.0))
        events = self.env["subscription.mrr.log"].search([("subscription_id", "=", sub.id)], order="id")
        self.assertEqual([(e.event_type, e.plan_id, e.mrr_change) for e in events], [
            ("new", self.plan_monthly, 12.0), ("contraction", self.plan_yearly, -2.0),
            ("transfer", self.plan_monthly, -12.0), ("transfer", self.plan_yearly, 12.0),
        ], "yearly 120.00 is 10.00 a month; the MRR moves to the yearly plan (breakdowns by plan stay true)")

    def test_autopay_pays_an_upgrade_at_once(self):
        sub = self._create_autopay_subscription("done", date_start="2026-01-01")
        self._bill_and_charge("2026-01-01")
        _preview, invoice = self._change(sub, "2026-01-11", 2)
        self.assertEqual(invoice.subscription_charge_date, date(2026, 1, 11))
        with freeze_time("2026-01-11"):
            self._run_autopay()
        self._assert_paid(invoice)

    def test_at_the_next_period_no_money_moves(self):
        sub = self._billed()
        _preview, documents = self._change(sub, "2026-01-11", 3, timing="next_period")
        self.assertFalse(documents)
        with freeze_time("2026-02-01"):
            self._run_billing()
        february = sub.invoice_ids.filtered(lambda m: m.subscription_period_start == date(2026, 2, 1))
        self.assertEqual(february.amount_total, 39.6)

    def test_the_wizard_shows_what_the_documents_carry(self):
        sub = self._billed()
        with freeze_time("2026-01-11"):
            wizard = self.env["subscription.change.wizard"].with_user(self.sales_user).with_context(
                active_id=sub.id).create({})
            wizard.line_ids.quantity = 2
            self.assertEqual((wizard.credit, wizard.charge, wizard.tax, wizard.net, wizard.next_amount),
                             (8.13, 16.26, 0.81, 8.94, 26.4))
            wizard.action_confirm()
        invoice = sub.invoice_ids.filtered(lambda m: not m.subscription_period_start)
        self.assertEqual(invoice.amount_total, 8.94)
        self._assert_logged(sub, "prorated now")
        with freeze_time("2026-01-11"):
            wizard = self.env["subscription.change.wizard"].with_context(active_id=sub.id).create({})
            wizard.line_ids.quantity = -1
            self.assertIn("above 0", wizard.preview_error)
            with self.assertRaisesRegex(UserError, "above 0"):
                wizard.action_confirm()

    def test_a_tax_included_price_and_a_foreign_currency(self):
        # 13.20 taxes included (10 %): 13.20 × 21/31 = 8.94 per copy, taxes included.
        tax_included = self.env["account.tax"].create({
            "name": "VAT 10% included", "amount": 10.0, "type_tax_use": "sale",
            "price_include_override": "tax_included"})
        sub = self._create_subscription(date_start="2026-01-01")
        sub.line_ids.write({"tax_ids": [(6, 0, tax_included.ids)], "price_unit": 13.2})
        other = self.env["res.currency"].with_context(active_test=False).search(
            [("id", "!=", self.currency.id), ("name", "in", ("EUR", "GBP", "CHF"))], limit=1)
        other.active = True
        self.env["res.currency.rate"].create({"currency_id": other.id, "rate": 2.0, "name": "2020-01-01",
                                              "company_id": self.company.id})
        foreign = self._create_subscription(partner=self.partner_b, date_start="2026-01-01", currency_id=other.id)
        foreign.line_ids.price_unit = 12.0
        with freeze_time("2026-01-01"):
            self._run_billing()
        included = self._assert_prorated(sub, "2026-01-11", 2, (21, 31, 8.13, 16.25, 8.94))
        self.assertEqual(included.amount_total, 8.94, "the customer pays 21 days of one more copy: 8.94")
        # The same change in the other currency: the amounts are in it, the MRR log in the company's.
        document = self._assert_prorated(foreign, "2026-01-11", 2, (21, 31, 8.13, 16.26, 8.94))
        self.assertEqual(document.currency_id, other)
        events = self.env["subscription.mrr.log"].search([("subscription_id", "=", foreign.id)], order="id")
        self.assertEqual((events[-1].mrr_change, foreign.recurring_monthly), (6.0, 12.0),
                         "one more copy of 12.00 at 2 per unit of the company currency")

    def test_who_may_change_and_what_a_refused_change_leaves(self):
        sub = self._billed()
        viewer = new_test_user(self.env, login="change_viewer", groups="subscription_billing.group_subscription_viewer")
        lines = [{"line_id": sub.line_ids.id, "product_id": self.product.id, "quantity": 2, "price_unit": 12.0}]
        with freeze_time("2026-01-11"):
            with self.assertRaises(AccessError):
                sub.with_user(viewer)._apply_change(sub.plan_id, lines, "now")
            with self.assertRaises(AccessError):
                self.env["subscription.change.wizard"].with_user(viewer).with_context(active_id=sub.id).create({})
            sub.action_cancel()
            with self.assertRaisesRegex(UserError, "cannot be changed"):
                sub._apply_change(sub.plan_id, lines, "now")
        self.assertEqual((sub.line_ids.quantity, len(sub.invoice_ids)), (1.0, 1), "nothing billed, nothing changed")

