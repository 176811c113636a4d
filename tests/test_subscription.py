from datetime import date

from psycopg2.errors import CheckViolation

from odoo.exceptions import UserError, ValidationError
from odoo.fields import Command
from odoo.tests import Form, freeze_time, tagged
from odoo.tools import mute_logger

from .common import SubscriptionCommon


@tagged("post_install", "-at_install")
class TestSubscriptionRules(SubscriptionCommon):
    def test_price_from_plan_pricing(self):
        sub = self._create_subscription(plan=self.plan_quarterly, start=False)
        self.assertEqual(sub.line_ids.price_unit, 32.0)
        self.assertEqual(sub.line_ids.tax_ids, self.tax)
        self.assertEqual(sub.amount_total, 35.2)
        self.assertTrue(sub.name.startswith("SUB/"))

    def test_form_onchange_fills_price(self):
        with Form(self.env["subscription.subscription"]) as form:
            form.partner_id = self.partner
            form.plan_id = self.plan_yearly
            with form.line_ids.new() as line:
                line.product_id = self.product
            self.assertEqual(form.amount_untaxed, 120.0)
        self.assertEqual(form.record.line_ids.price_unit, 120.0)

    def test_negative_quantity_refused(self):
        with self.assertRaises(CheckViolation), mute_logger("odoo.sql_db"), self.env.cr.savepoint():
            self._create_subscription(start=False, line_ids=[Command.create({"product_id": self.product.id,
                                                                               "quantity": -1})])
        sub = self._create_subscription(start=False)
        with self.assertRaises(CheckViolation), mute_logger("odoo.sql_db"), self.env.cr.savepoint():
            sub.line_ids.write({"price_unit": -5.0})
            self.env.flush_all()
        sub.invalidate_recordset()
        self.assertEqual(sub.line_ids.price_unit, 12.0)

    def test_end_before_start_refused(self):
        sub = self._create_subscription(start=False)
        with self.assertRaises(ValidationError), self.env.cr.savepoint():
            sub.write({"date_end": date(2025, 1, 1)})
        self.assertFalse(sub.date_end)

    def test_zero_length_period_refused(self):
        with self.assertRaises(CheckViolation), mute_logger("odoo.sql_db"), self.env.cr.savepoint():
            self.env["subscription.plan"].create({"name": "Broken", "billing_period_value": 0})
            self.env.flush_all()

    def test_term_must_be_whole_periods(self):
        with self.assertRaisesRegex(ValidationError, "whole number of billing periods"):
            self.env["subscription.plan"].create({
                "name": "Odd", "billing_period_value": 5, "billing_period_unit": "month",
                "term_value": 1, "term_unit": "year",
            })

    def test_non_subscription_product_refused(self):
        plain = self.env["product.product"].create({"name": "Mug", "type": "consu"})
        with self.assertRaisesRegex(ValidationError, "not a subscription product"):
            self._create_subscription(start=False, line_ids=[Command.create({"product_id": plain.id})])

    def test_token_of_another_customer_refused(self):
        provider = self.env.ref("payment.payment_provider_demo")
        token = self.env["payment.token"].create({
            "provider_id": provider.id,
            "payment_method_id": self.env.ref("payment_demo.payment_method_demo").id,
            "partner_id": self.partner_b.id,
            "provider_ref": "demo-ref",
            "payment_details": "4242",
        })
        sub = self._create_subscription(start=False)
        with self.assertRaisesRegex(ValidationError, "belongs to another customer"), self.env.cr.savepoint():
            sub.payment_token_id = token
            self.env.flush_all()
        sub.invalidate_recordset()
        self.assertFalse(sub.payment_token_id)

    def test_start_without_lines_refused(self):
        sub = self._create_subscription(start=False, line_ids=[])
        with self.assertRaisesRegex(UserError, "has no lines"):
            sub.action_start()
        self.assertEqual(sub.state, "draft")

    def test_state_machine(self):
        sub = self._create_subscription()
        self.assertEqual(sub.state, "active")
        with self.assertRaises(UserError):
            sub.action_start()
        sub.action_suspend()
        self.assertEqual(sub.state, "suspended")
        with self.assertRaises(UserError):
            sub.action_suspend()
        sub.action_reactivate()
        self.assertEqual(sub.state, "active")
        end = sub.date_end
        sub.action_renew()
        self.assertEqual(sub.date_end, date(end.year + 1, end.month, end.day))
        wizard = self.env["subscription.close.wizard"].with_context(
            active_model=sub._name, active_ids=sub.ids).create({
                "close_reason_id": self.env.ref("subscription_billing.close_reason_customer_request").id,
                "close_note": "Moving abroad",
            })
        wizard.action_close()
        self.assertEqual(sub.state, "cancelled")
        self.assertEqual(sub.close_reason_id.name, "Customer request")
        with self.assertRaisesRegex(UserError, "already closed"):
            sub.action_cancel()

    @freeze_time("2026-11-29")
    def test_renew_expired_reactivates(self):
        sub = self._create_subscription(plan=self.plan_yearly)
        sub._action_close("expired", self.env.ref("subscription_billing.close_reason_expired"))
        sub.action_renew()
        self.assertEqual(sub.state, "active")
        self.assertFalse(sub.close_reason_id)
        # A new term from the renewal day (issue: renewing an ended subscription starts now).
        self.assertEqual((sub.date_end, sub.next_invoice_date), (date(2027, 11, 28), date(2026, 11, 29)))

    def test_open_ended_plan_cannot_renew(self):
        open_plan = self.env["subscription.plan"].create({"name": "Open", "term_value": 0})
        sub = self._create_subscription(plan=open_plan)
        self.assertFalse(sub.date_end)
        with self.assertRaisesRegex(UserError, "no commitment term"):
            sub.action_renew()

    def test_invoiced_subscription_plan_is_locked(self):
        with freeze_time("2026-01-01"):
            sub = self._create_subscription()
            sub.action_generate_invoice()
        with self.assertRaisesRegex(UserError, "plan of an invoiced subscription"):
            sub.plan_id = self.plan_quarterly
        with self.assertRaisesRegex(UserError, "cannot be deleted"):
            sub.unlink()

    def test_partner_status_is_best_standing(self):
        company = self.env["res.partner"].create({"name": "Reader Corp", "is_company": True})
        contact = self.env["res.partner"].create({"name": "Carol", "parent_id": company.id})
        self.assertEqual(contact.subscription_status, "none")
        expired = self._create_subscription(partner=contact, plan=self.plan_yearly)
        expired._action_close("expired", self.env.ref("subscription_billing.close_reason_expired"))
        company.invalidate_recordset()
        contact.invalidate_recordset()
        self.assertEqual(company.subscription_status, "expired")
        suspended = self._create_subscription(partner=company)
        suspended.action_suspend()
        self.env.invalidate_all()
        self.assertEqual(contact.subscription_status, "suspended")
        self._create_subscription(partner=contact, plan=self.plan_quarterly)
        self.env.invalidate_all()
        self.assertEqual(company.subscription_status, "active")
        self.assertEqual(company.subscription_count, 3)
        self.assertEqual(len(contact.subscription_ids), 3)
        Partner = self.env["res.partner"]
        self.assertIn(contact, Partner.search([("subscription_status", "=", "active")]))
        self.assertNotIn(self.partner_b, Partner.search([("subscription_status", "=", "active")]))
        self.assertIn(self.partner_b, Partner.search([("subscription_status", "=", "none")]))
        self.assertNotIn(company, Partner.search([("subscription_status", "!=", "active")]))

    def test_enroll_wizard_creates_running_subscriptions(self):
        partners = self.partner | self.partner_b
        already = self._create_subscription(partner=self.partner_b)
        wizard = self.env["subscription.enroll.wizard"].with_context(
            active_model="res.partner", active_ids=partners.ids).create({
                "plan_id": self.plan_monthly.id,
                "product_id": self.product.id,
                "quantity": 2,
                "date_start": "2026-03-01",
            })
        result = wizard.action_enroll()
        self.assertEqual(result["params"]["message"],
                         "1 enrolled in Monthly (test), 1 skipped: already on this plan (Bob Reader).")
        self.assertEqual(result["params"]["next"]["res_model"], "subscription.subscription")
        subs = self.env["subscription.subscription"].search([("plan_id", "=", self.plan_monthly.id)])
        self.assertEqual(len(subs), 2, "Bob was already enrolled and is skipped")
        new = subs - already
        self.assertEqual(new.partner_id, self.partner)
        self.assertEqual(new.state, "active")
        self.assertEqual(new.line_ids.quantity, 2)
        self.assertEqual(new.amount_untaxed, 24.0)
        self.assertEqual(new.next_invoice_date, date(2026, 3, 1))

    def test_enroll_wizard_needs_customers(self):
        wizard = self.env["subscription.enroll.wizard"].create({
            "plan_id": self.plan_monthly.id, "product_id": self.product.id,
        })
        with self.assertRaisesRegex(UserError, "at least one customer"):
            wizard.action_enroll()

    def test_expiring_soon_filter(self):
        with freeze_time("2026-12-10"):
            expiring = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01")
            renewing = self._create_subscription(plan=self.plan_monthly, date_start="2026-01-01")
            found = self.env["subscription.subscription"].search([("is_expiring", "=", True)])
            self.assertIn(expiring, found)
            self.assertNotIn(renewing, found)
            self.assertEqual(expiring.health, "expiring")

    def test_company_consistency(self):
        company_b = self.env["res.company"].create({"name": "Other Magazine (test)"})
        plan_b = self.env["subscription.plan"].create({"name": "B monthly", "company_id": company_b.id})
        with self.assertRaisesRegex(UserError, "(?i)compan"), self.env.cr.savepoint():
            self._create_subscription(plan=plan_b, start=False)
