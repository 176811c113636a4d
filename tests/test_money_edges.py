from datetime import date

from odoo.exceptions import UserError, ValidationError
from odoo.fields import Command
from odoo.tests import Form, freeze_time, tagged

from .common import SubscriptionCommon


class EdgesCommon(SubscriptionCommon):
    """Billing at the edges of a subscription's life, with the inputs of the issue."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan_open = cls.env["subscription.plan"].create({
            "name": "Monthly, open-ended (edges)", "billing_period_value": 1, "billing_period_unit": "month",
            "term_value": 0, "auto_renew": True,
        })
        cls.service = cls.env["product.product"].create({
            "name": "Service (edges)", "type": "service", "recurring_invoice": True, "list_price": 100.0,
            "taxes_id": [Command.clear()],
        })

    def _sub(self, price, plan=None, date_start="2025-01-01", start=True, **vals):
        sub = self.env["subscription.subscription"].create({
            "partner_id": vals.pop("partner", self.partner).id,
            "plan_id": (plan or self.plan_open).id,
            "date_start": date_start,
            "line_ids": [Command.create({"product_id": self.service.id, "quantity": 1, "price_unit": price})],
            **vals,
        })
        if start:
            sub.action_start()
        return sub

    def _bill_on(self, day):
        with freeze_time(day):
            self._run_billing()

    def _invoices(self, sub):
        return self.env["account.move"].search([("subscription_id", "=", sub.id), ("move_type", "=", "out_invoice")],
                                               order="subscription_period_start, id")

    def _periods(self, sub, live_only=True):
        invoices = self._invoices(sub)
        if live_only:
            invoices = invoices.filtered(lambda m: m.state == "posted" and m.payment_state != "reversed")
        return [(str(m.subscription_period_start), str(m.subscription_period_end), m.amount_untaxed)
                for m in invoices]

    def _bodies(self, sub):
        return " ".join(str(body) for body in sub.message_ids.mapped("body"))


@tagged("post_install", "-at_install")
class TestScheduledEnd(EdgesCommon):
    """1. An end set by hand is the end."""

    def test_end_set_by_hand_on_an_open_ended_plan_stops_billing_and_closes(self):
        sub = self._sub(100.0)
        self._bill_on("2025-01-01")
        self._bill_on("2025-02-01")
        with freeze_time("2025-02-10"):
            sub.date_end = date(2025, 3, 15)  # the customer gave notice
        self.assertTrue(sub.is_end_scheduled)
        self._bill_on("2025-06-01")
        self.assertEqual(self._periods(sub), [
            ("2025-01-01", "2025-01-31", 100.0),
            ("2025-02-01", "2025-02-28", 100.0),
            ("2025-03-01", "2025-03-15", 48.39),  # 100.00 x 15 / 31 days, prorated (the plan's default)
        ])
        self.assertEqual((sub.state, sub.date_end, sub.date_closed),
                         ("cancelled", date(2025, 3, 15), date(2025, 3, 15)))
        self.assertEqual(sub.close_reason_id, self.env.ref("subscription_billing.close_reason_customer_request"))
        self.assertNotIn("Renewed", self._bodies(sub))

    def test_a_scheduled_end_beats_automatic_renewal_of_a_fixed_term(self):
        sub = self._sub(100.0, plan=self.plan_monthly)  # 1-year term, renews automatically
        self.assertEqual(sub.date_end, date(2025, 12, 31))
        self._bill_on("2025-05-01")
        with freeze_time("2025-05-05"):
            sub.date_end = date(2025, 6, 20)
        self._bill_on("2026-02-01")
        self.assertEqual(self._periods(sub)[-2:], [
            ("2025-05-01", "2025-05-31", 100.0),
            ("2025-06-01", "2025-06-20", 66.67),  # 20 of 30 days
        ])
        self.assertEqual(len(self._periods(sub)), 6)
        self.assertEqual((sub.state, sub.date_end), ("cancelled", date(2025, 6, 20)))
        with freeze_time("2025-05-06"), self.assertRaisesRegex(UserError, "already closed"):
            sub.action_cancel()

    def test_the_plan_can_bill_the_cut_period_in_full(self):
        self.plan_open.prorate_last_period = False
        sub = self._sub(100.0)
        with freeze_time("2025-01-10"):
            sub.date_end = date(2025, 2, 10)
        self._bill_on("2025-03-01")
        self.assertEqual(self._periods(sub), [("2025-01-01", "2025-01-31", 100.0), ("2025-02-01", "2025-02-10", 100.0)])

    def test_no_renewal_moves_or_erases_a_scheduled_end(self):
        sub = self._sub(100.0, plan=self.plan_monthly)
        with freeze_time("2025-03-01"):
            sub.date_end = date(2025, 12, 31)  # the natural term end, but now set by hand: the end
            with self.assertRaisesRegex(UserError, "scheduled to end"):
                sub.action_renew()
        self._bill_on("2026-01-15")
        self.assertEqual((sub.state, sub.date_end), ("cancelled", date(2025, 12, 31)))
        self.assertEqual(len(self._periods(sub)), 12)

    def test_clearing_a_scheduled_end_gives_the_term_back(self):
        sub = self._sub(100.0, plan=self.plan_monthly)
        with freeze_time("2025-03-01"):
            sub.date_end = date(2025, 4, 10)
            sub.date_end = False
        self.assertEqual((sub.date_end, sub.is_end_scheduled), (date(2025, 12, 31), False))
        self._bill_on("2026-01-01")
        self.assertEqual((sub.state, sub.date_end), ("active", date(2026, 12, 31)), "it renewed")

    def test_close_wizard_schedules_an_end_with_its_reason(self):
        sub = self._sub(100.0)
        reason = self.env.ref("subscription_billing.close_reason_too_expensive")
        with freeze_time("2025-01-10"):
            self.env["subscription.close.wizard"].with_context(active_ids=sub.ids).create({
                "close_reason_id": reason.id, "when": "date", "date_end": "2025-01-31",
            }).action_close()
            self.assertEqual(sub.state, "active", "it runs until its last day")
        self._bill_on("2025-03-01")
        self.assertEqual(self._periods(sub), [("2025-01-01", "2025-01-31", 100.0)])
        self.assertEqual((sub.state, sub.close_reason_id), ("cancelled", reason))

    def test_a_suspended_subscription_past_its_scheduled_end_closes(self):
        sub = self._sub(100.0)
        self._bill_on("2025-01-01")
        with freeze_time("2025-01-05"):
            sub.date_end = date(2025, 1, 20)
            sub.action_suspend()
        self._bill_on("2025-02-01")
        self.assertEqual(sub.state, "cancelled")
        self.assertEqual(len(self._periods(sub)), 1)


@tagged("post_install", "-at_install")
class TestInvoiceAgain(EdgesCommon):
    """3. A cancelled or credited period can be invoiced again."""

    def _jan_to_march(self):
        sub = self._sub(30.0, date_start="2026-01-01")
        self._bill_on("2026-03-01")
        self.assertEqual(len(self._periods(sub)), 3)
        return sub

    def test_a_cancelled_period_is_invoiced_again_without_moving_the_dates(self):
        sub = self._jan_to_march()
        february = self._invoices(sub)[1]
        with freeze_time("2026-03-05"):
            february.button_draft()
            february.button_cancel()
            self._run_billing()
            self.assertEqual(len(self._periods(sub)), 2, "the billing day does not touch a past period")
            with self.assertRaisesRegex(ValidationError, "already invoiced"), self.env.cr.savepoint():
                sub.next_invoice_date = date(2026, 2, 1)
            self.assertEqual(sub.next_invoice_date, date(2026, 4, 1))
            sub.line_ids.quantity = 2
            action = february.action_subscription_reinvoice()
            wizard = self.env["subscription.reinvoice.wizard"].with_context(**action["context"]).create({})
            self.assertEqual(wizard.period_start, date(2026, 2, 1))
            wizard.action_invoice()
        self.assertEqual(self._periods(sub), [
            ("2026-01-01", "2026-01-31", 30.0), ("2026-02-01", "2026-02-28", 60.0), ("2026-03-01", "2026-03-31", 30.0),
        ])
        self.assertEqual(sub.next_invoice_date, date(2026, 4, 1))
        with self.assertRaisesRegex(UserError, "no period starting"):
            sub._invoice_period(date(2026, 2, 1))  # exactly once for live invoices
        with self.assertRaisesRegex(UserError, "no period starting"):
            sub._invoice_period(date(2026, 3, 1))

    def test_a_period_credited_in_full_is_invoiced_again(self):
        sub = self._jan_to_march()
        march = self._invoices(sub)[2]
        with freeze_time("2026-03-05"):
            march._reverse_moves(cancel=True)
            self.assertEqual(march.payment_state, "reversed")
            self.assertEqual(sub._reinvoiceable_periods(), [(date(2026, 3, 1), date(2026, 3, 31), None)])
            sub._invoice_period("2026-03-01")
        self.assertEqual([p[0] for p in self._periods(sub)], ["2026-01-01", "2026-02-01", "2026-03-01"])


@tagged("post_install", "-at_install")
class TestRenewAfterEnd(EdgesCommon):
    """4. Renewing an expired subscription starts a new term now."""

    def _expired_yearly(self):
        sub = self._sub(120.0, plan=self.plan_yearly, date_start="2024-01-01")
        self._bill_on("2024-01-01")
        self._bill_on("2025-01-02")
        self.assertEqual((sub.state, sub.date_end), ("expired", date(2024, 12, 31)))
        return sub

    def test_renewal_starts_the_new_term_on_the_renewal_day(self):
        sub = self._expired_yearly()
        with freeze_time("2026-11-29"):
            sub.action_renew()
            self.assertEqual((sub.state, sub.date_end, sub.next_invoice_date),
                             ("active", date(2027, 11, 28), date(2026, 11, 29)))
            self._run_billing()
        self.assertEqual(self._periods(sub), [
            ("2024-01-01", "2024-12-31", 120.0), ("2026-11-29", "2027-11-28", 120.0),
        ])
        self._bill_on("2027-11-29")
        self.assertEqual(sub.state, "expired", "a term that does not renew ends again, a year later")

    def test_staff_choose_the_day_and_the_gap_is_invoiced_only_if_they_ask(self):
        sub = self._expired_yearly()
        with freeze_time("2026-11-29"):
            self.env["subscription.renew.wizard"].with_context(active_ids=sub.ids).create({
                "date_start": "2026-12-01"}).action_renew()
            self._run_billing()
        self.assertEqual(len(self._periods(sub)), 1, "nothing before the chosen day")
        self._bill_on("2026-12-01")
        self.assertEqual(self._periods(sub)[-1], ("2026-12-01", "2027-11-30", 120.0))
        # Asked explicitly: a new term from an earlier day invoices the time since then too.
        other = self._expired_yearly()
        with freeze_time("2026-11-29"):
            other.action_renew(date_start="2025-12-01")
            self._run_billing()
        self.assertEqual(self._periods(other), [("2024-01-01", "2024-12-31", 120.0),
                                                ("2025-12-01", "2026-11-30", 120.0)])


@tagged("post_install", "-at_install")
class TestSuspendedTime(EdgesCommon):
    """5. Suspended time is not billed after reactivation (unless the plan says so)."""

    def test_reactivation_resumes_billing_on_the_reactivation_day(self):
        sub = self._sub(50.0, plan=self.plan_monthly)
        self._bill_on("2025-01-01")
        with freeze_time("2025-01-20"):
            sub.action_suspend()
        self._bill_on("2025-03-01")
        with freeze_time("2025-05-10"):
            sub.action_reactivate()
            self._run_billing()
        self.assertEqual(self._periods(sub), [("2025-01-01", "2025-01-31", 50.0), ("2025-05-10", "2025-06-09", 50.0)])
        self.assertEqual(sub.next_invoice_date, date(2025, 6, 10))
        # The commitment keeps its 11 periods left: Feb..Dec became May 10 .. Apr 9.
        self.assertEqual(sub.date_end, date(2026, 4, 9))
        self.assertIn("is not invoiced", self._bodies(sub))

    def test_a_plan_that_bills_suspended_time_invoices_it(self):
        self.plan_monthly.bill_suspended_periods = True
        sub = self._sub(50.0, plan=self.plan_monthly)
        self._bill_on("2025-01-01")
        with freeze_time("2025-01-20"):
            sub.action_suspend()
        with freeze_time("2025-05-10"):
            sub.action_reactivate()
            self._run_billing()
        self.assertEqual([p[0] for p in self._periods(sub)],
                         ["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01"])

    def test_a_dunning_suspension_ended_by_payment_skips_the_suspended_time(self):
        sub = self._sub(50.0, plan=self.plan_monthly, partner=self.partner_b)
        self._bill_on("2025-01-01")
        january = self._invoices(sub)
        for day in ("2025-01-02", "2025-01-20"):  # overdue, then past the 14-day grace period
            with freeze_time(day), self.enter_registry_test_mode():
                self.env.ref("subscription_billing.ir_cron_update_statuses").method_direct_trigger()
            self.env.invalidate_all()
        self.assertEqual(sub.state, "suspended")
        with freeze_time("2025-04-15"):
            self.env["account.payment.register"].with_context(
                active_model="account.move", active_ids=january.ids).create({})._create_payments()
            self.assertEqual(sub.state, "active")
            self._run_billing()
        self.assertEqual(self._periods(sub), [("2025-01-01", "2025-01-31", 50.0), ("2025-04-15", "2025-05-14", 50.0)])


@tagged("post_install", "-at_install")
class TestCompanyCalendar(EdgesCommon):
    """7. The billing day follows the company's calendar."""

    def test_sydney_bills_march_on_march_first_local_time(self):
        self.company.subscription_tz = "Australia/Sydney"
        sub = self._sub(12.0, date_start="2025-02-01")
        self._bill_on("2025-02-01 01:00:00")
        # 00:30 on March 1 in Sydney is 13:30 on February 28 in UTC.
        self._bill_on("2025-02-28 13:30:00")
        self.assertEqual([p[0] for p in self._periods(sub)], ["2025-02-01", "2025-03-01"])

    def test_honolulu_is_not_charged_before_its_period_begins(self):
        self.company.subscription_tz = "Pacific/Honolulu"
        sub = self._sub(12.0, date_start="2025-03-01")
        self._bill_on("2025-03-01 05:00:00")  # 19:00 on February 28 in Honolulu
        self.assertFalse(self._invoices(sub), "not invoiced (nor charged) before March 1 local time")
        self._bill_on("2025-03-01 11:00:00")  # 01:00 on March 1 in Honolulu
        invoice = self._invoices(sub)
        self.assertEqual(invoice.invoice_date, date(2025, 3, 1))

    def test_the_default_follows_the_company_address(self):
        self.company.subscription_tz = False
        self.company.partner_id.tz = "Asia/Tokyo"
        with freeze_time("2025-02-28 16:00:00"):  # 01:00 on March 1 in Tokyo
            self.assertEqual(self.company._subscription_today(), date(2025, 3, 1))


@tagged("post_install", "-at_install")
class TestTaxesFollowTheCustomer(EdgesCommon):
    """8. Each invoice uses the customer's current fiscal position unless fixed by hand."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.service.taxes_id = cls.tax
        # A fiscal position without taxes removes all taxes (Odoo 19's tax exemption).
        cls.exempt = cls.env["account.fiscal.position"].create({"name": "Tax exempt (edges)"})

    def test_a_customer_who_becomes_exempt_is_invoiced_without_tax(self):
        sub = self._sub(100.0, date_start="2026-01-01")
        self._bill_on("2026-01-01")
        self.assertEqual(self._invoices(sub).amount_tax, 10.0)
        self.partner.property_account_position_id = self.exempt
        self._bill_on("2026-02-01")
        february = self._invoices(sub)[1]
        self.assertEqual((february.amount_tax, february.fiscal_position_id), (0.0, self.exempt))
        self.assertFalse(sub.is_fiscal_position_manual)
        self.assertEqual(sub.amount_tax, 0.0)

    def test_a_fiscal_position_fixed_by_hand_stays(self):
        sub = self._sub(100.0, date_start="2026-01-01")
        sub.fiscal_position_id = self.exempt
        self.assertTrue(sub.is_fiscal_position_manual)
        self._bill_on("2026-01-01")
        self.partner.property_account_position_id = False
        self._bill_on("2026-02-01")
        self.assertEqual(self._invoices(sub).mapped("amount_tax"), [0.0, 0.0])
        sub.is_fiscal_position_manual = False  # staff let it follow the customer again
        self._bill_on("2026-03-01")
        self.assertEqual(self._invoices(sub)[2].amount_tax, 10.0)


@tagged("post_install", "-at_install")
class TestBounds(EdgesCommon):
    """9. Bounds that accounting can hold."""

    def test_quantities_and_prices_beyond_what_an_invoice_holds_are_refused(self):
        sub = self._sub(12.0, date_start="2026-01-01", start=False)
        for vals in ({"quantity": 1e15}, {"quantity": 1e300}, {"price_unit": 1e13},
                     {"quantity": 1e6, "price_unit": 1e7}, {"quantity": float("inf")}):
            with self.subTest(vals=vals), self.assertRaises(ValidationError), self.env.cr.savepoint():
                sub.line_ids.write(vals)
        self.assertEqual((sub.line_ids.quantity, sub.line_ids.price_unit), (1.0, 12.0))

    def test_dates_far_from_today_are_refused_clearly(self):
        for day in ("1900-01-01", "9999-12-01"):
            with self.subTest(day=day), self.assertRaisesRegex(ValidationError, "too far"), self.env.cr.savepoint():
                self._sub(12.0, date_start=day, start=False)
        sub = self._sub(12.0, date_start="2026-01-01", start=False)
        for day in (date(9999, 1, 1), date(2036, 12, 1)):
            with self.subTest(day=day), self.assertRaisesRegex(ValidationError, "more than 10 years after"), \
                    self.env.cr.savepoint():
                sub.date_end = day

    @freeze_time("2026-11-29")
    def test_a_long_catch_up_from_the_button_asks_and_runs_in_the_billing_day(self):
        sub = self._sub(12.0, date_start="2018-01-01")
        action = sub.action_generate_invoice()
        self.assertEqual(action["res_model"], "subscription.catch.up.wizard")
        self.assertFalse(self._invoices(sub), "nothing created in the request")
        wizard = self.env[action["res_model"]].with_context(**action["context"]).create({})
        self.assertIn("107 periods", wizard.summary)
        wizard.action_confirm()
        self.assertFalse(self._invoices(sub))
        self._run_billing()
        self.assertEqual(len(self._invoices(sub)), 107, "all of them, in the billing day's batches")
        self.assertEqual(sub.next_invoice_date, date(2026, 12, 1))


@tagged("post_install", "-at_install")
class TestQuotationPrice(EdgesCommon):
    """10. A quotation bills at the plan's price, whatever the order of clicks."""

    def test_plan_first_then_product(self):
        with Form(self.env["sale.order"]) as order:
            order.partner_id = self.partner
            order.subscription_plan_id = self.plan_quarterly
            with order.order_line.new() as line:
                line.product_id = self.product
        order = order.record
        self.assertEqual(order.order_line.price_unit, 32.0)
        order.action_confirm()
        sub = order.subscription_ids
        self.assertEqual(sub.line_ids.price_unit, 32.0)
        self.assertAlmostEqual(sub.recurring_monthly, 10.67, places=2)

    def test_changing_the_plan_reprices_the_lines_and_says_so_when_a_typed_price_is_replaced(self):
        with Form(self.env["sale.order"]) as order:
            order.partner_id = self.partner
            with order.order_line.new() as line:
                line.product_id = self.product
            order.subscription_plan_id = self.plan_monthly
            with order.order_line.edit(0) as line:
                self.assertEqual(line.price_unit, 12.0)
                line.price_unit = 11.0  # a discount typed by hand
            with self.assertLogs("odoo.tests.form.onchange", "WARNING") as logs:
                order.subscription_plan_id = self.plan_yearly
            self.assertIn("11.00", "\n".join(logs.output))
            with order.order_line.edit(0) as line:
                self.assertEqual(line.price_unit, 120.0)
        self.assertEqual(order.record.order_line.price_unit, 120.0)


@tagged("post_install", "-at_install")
class TestEndBeforeInvoicedPeriods(EdgesCommon):

    def test_an_end_before_periods_already_invoiced_says_which_invoices_to_credit(self):
        sub = self._sub(100.0, date_start="2026-01-01")
        self._bill_on("2026-03-01")
        march = self._invoices(sub)[2]
        with freeze_time("2026-03-02"):
            sub.date_end = date(2026, 2, 15)
        self.assertIn(march.name, self._bodies(sub))
        self.assertIn("credit them", self._bodies(sub))
        self._bill_on("2026-04-01")
        self.assertEqual(len(self._invoices(sub)), 3, "nothing more invoiced")
        self.assertEqual(sub.state, "cancelled")


@tagged("post_install", "-at_install")
class TestProbedEdges(EdgesCommon):
    """Inputs of the same kinds found by a hostile review, kept as tests."""

    def test_the_next_invoice_date_cannot_go_back_inside_an_invoiced_period(self):
        sub = self._sub(100.0, date_start="2026-01-01")
        self._bill_on("2026-03-05")
        for day in (date(2026, 3, 15), date(2026, 3, 31), date(2026, 2, 1)):
            with self.subTest(day=day), self.assertRaisesRegex(ValidationError, "already invoiced"), \
                    self.env.cr.savepoint():
                sub.next_invoice_date = day
        self.assertEqual(sub.next_invoice_date, date(2026, 4, 1))

    def test_a_renewal_cannot_start_inside_invoiced_days(self):
        plan = self.env["subscription.plan"].create({
            "name": "Monthly 1 year, no renewal (edges)", "term_value": 1, "term_unit": "year", "auto_renew": False})
        sub = self._sub(100.0, plan=plan, date_start="2025-01-01")
        self._bill_on("2026-01-02")
        self.assertEqual(sub.state, "expired")
        with freeze_time("2026-01-10"), self.assertRaisesRegex(ValidationError, "already invoiced"):
            sub.action_renew(date_start="2025-12-20")
        self.assertEqual(sub.state, "expired")
        for bad in ("garbage", "2026-02-30", 12345):
            with self.subTest(value=bad), freeze_time("2026-01-10"), self.assertRaisesRegex(UserError, "not a date"):
                sub.action_renew(date_start=bad)

    def test_a_running_subscription_does_not_take_a_restart_day(self):
        sub = self._sub(100.0, plan=self.plan_monthly, date_start="2026-01-01")
        with self.assertRaisesRegex(UserError, "only an ended subscription"):
            sub.action_renew(date_start="2026-06-01")

    def test_invoice_again_keeps_the_proration_and_the_end(self):
        sub = self._sub(100.0, date_start="2026-01-01")
        self._bill_on("2026-01-01")
        with freeze_time("2026-01-05"):
            sub.date_end = date(2026, 2, 10)
        self._bill_on("2026-03-01")
        february = self._invoices(sub)[1]
        self.assertEqual(february.amount_untaxed, 35.71)  # 10 of 28 days
        with freeze_time("2026-03-02"):
            february.button_draft()
            february.button_cancel()
            self.assertEqual(sub._reinvoiceable_periods(), [(date(2026, 2, 1), date(2026, 2, 10), 10 / 28)])
            again = sub._invoice_period("2026-02-01")
        self.assertEqual((again.amount_untaxed, again.subscription_period_end), (35.71, date(2026, 2, 10)))
        with self.assertRaisesRegex(UserError, "no period starting"):
            sub._invoice_period("2026-03-01")  # after the end: never invoiced

    def test_invoice_again_never_reaches_the_billing_days_periods(self):
        sub = self._sub(100.0, date_start="2026-01-01")
        self._bill_on("2026-01-01")
        with freeze_time("2026-01-20"):
            sub.action_generate_invoice()  # February in advance
            february = self._invoices(sub)[1]
            february.button_draft()
            february.button_cancel()
            sub.next_invoice_date = date(2026, 2, 1)  # staff hand February back to the billing day
            self.assertFalse(sub._reinvoiceable_periods(), "February is the billing day's again")
            with self.assertRaisesRegex(UserError, "no period starting"):
                sub._invoice_period("2026-02-01")
        self._bill_on("2026-02-01")
        self.assertEqual([p[0] for p in self._periods(sub)], ["2026-01-01", "2026-02-01"])
        self.assertFalse(sub.billing_error)

    def test_moving_the_next_invoice_date_forward_restarts_the_periods(self):
        sub = self._sub(100.0, date_start="2026-03-01")
        self._bill_on("2026-03-01")
        sub.next_invoice_date = date(2026, 4, 15)
        self._bill_on("2026-04-15")
        self.assertEqual(self._periods(sub)[-1], ("2026-04-15", "2026-05-14", 100.0), "a whole period from that day")
        self.assertFalse(sub._reinvoiceable_periods(), "the skipped days are not offered over invoiced ones")

    def test_invoice_again_uses_the_customers_current_taxes(self):
        self.service.taxes_id = self.tax
        sub = self._sub(100.0, date_start="2026-01-01")
        self._bill_on("2026-01-01")
        january = self._invoices(sub)
        self.partner.property_account_position_id = self.env["account.fiscal.position"].create({"name": "Exempt"})
        with freeze_time("2026-01-10"):
            january.button_draft()
            january.button_cancel()
            again = sub._invoice_period("2026-01-01")
        self.assertEqual(again.amount_tax, 0.0)

    def test_an_end_given_at_creation_on_a_term_plan_is_the_end(self):
        sub = self._sub(100.0, plan=self.plan_monthly, date_start="2026-01-01", date_end="2026-04-15")
        self.assertTrue(sub.is_end_scheduled)
        self._bill_on("2026-05-01")
        self.assertEqual(self._periods(sub)[-1], ("2026-04-01", "2026-04-15", 50.0))
        self.assertEqual((sub.state, sub.date_end), ("cancelled", date(2026, 4, 15)))
        natural = self._sub(100.0, plan=self.plan_monthly, date_start="2026-01-01", date_end="2026-12-31",
                            partner=self.partner_b)
        self.assertFalse(natural.is_end_scheduled, "the plan's own term end is just the term")

    def test_billing_that_lagged_before_a_suspension_is_invoiced(self):
        sub = self._sub(100.0, plan=self.plan_monthly, date_start="2026-01-01")
        self._bill_on("2026-01-05")  # January only; February's billing day never ran
        with freeze_time("2026-03-10"):
            sub.action_suspend()
            sub.action_reactivate()
            self._run_billing()
        self.assertEqual([p[0] for p in self._periods(sub)], ["2026-01-01", "2026-02-01", "2026-03-01"])

    def test_reactivation_after_a_scheduled_end_bills_no_suspended_time(self):
        sub = self._sub(100.0, date_start="2026-01-01")
        self._bill_on("2026-03-01")
        with freeze_time("2026-03-10"):
            sub.action_suspend()
            sub.date_end = date(2026, 9, 15)
        with freeze_time("2026-10-20"):
            sub.action_reactivate()
            self._run_billing()
        self.assertEqual(len(self._periods(sub)), 3, "nothing from the suspension on")
        self.assertEqual(sub.state, "cancelled")

    def test_absurd_numbers_are_refused_clearly(self):
        sub = self._sub(12.0, date_start="2026-01-01", start=False)
        for value in ("nan", "inf", "1e400", "abc"):
            with self.subTest(value=value), self.assertRaisesRegex(ValidationError, "must be a number"), \
                    self.env.cr.savepoint():
                sub.line_ids.write({"quantity": value})
        for vals in ({"billing_period_value": 10 ** 6, "billing_period_unit": "year"},
                     {"term_value": 10 ** 5, "term_unit": "year"}):
            with self.subTest(vals=vals), self.assertRaisesRegex(ValidationError, "at most 10 years"), \
                    self.env.cr.savepoint():
                self.env["subscription.plan"].create({"name": "Absurd", **vals})
        with self.assertRaisesRegex(ValidationError, "at most 3650"), self.env.cr.savepoint():
            self.company.subscription_grace_days = 10 ** 9

    def test_a_fiscal_position_fixed_by_hand_stays_when_the_customer_changes(self):
        exempt = self.env["account.fiscal.position"].create({"name": "Exempt by hand"})
        sub = self._sub(12.0, date_start="2026-01-01", start=False)
        sub.fiscal_position_id = exempt
        sub.partner_id = self.partner_b
        self.assertEqual((sub.fiscal_position_id, sub.is_fiscal_position_manual), (exempt, True))
