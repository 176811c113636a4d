from datetime import date
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError
from odoo.fields import Command
from odoo.tests import freeze_time, new_test_user, tagged

from .autopay_common import AutopayCommon


@tagged("post_install", "-at_install")
class TestReprice(AutopayCommon):
    """A new price rolled out to running subscriptions: on their next period or renewal, announced,
    applied by the billing day, logged; grandfathered customers keep theirs."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pricing_monthly = cls.env["subscription.pricing"].search([
            ("product_tmpl_id", "=", cls.product.product_tmpl_id.id), ("plan_id", "=", cls.plan_monthly.id)])
        cls.pricing_monthly.price = 20.0
        cls.manager = new_test_user(cls.env, login="reprice_manager", name="Mia Manager",
                                    groups="subscription_billing.group_subscription_manager")

    def _wizard(self, subs=None, **vals):
        Wizard = self.env["subscription.reprice.wizard"].with_user(self.manager)
        if subs is not None:
            Wizard = Wizard.with_context(active_ids=subs.ids, active_model=subs._name)
        return Wizard.create(vals)

    def _invoices(self, sub):
        return sub.invoice_ids.filtered(lambda m: m.move_type == "out_invoice").sorted("subscription_period_start")

    def test_a_raised_plan_price_rolls_out_at_the_next_period_with_a_notice(self):
        """The issue's input: plan price 20.00, January billed, the plan price raised to 25.00 on
        Jan 15: February is billed 25.00 once rolled out; a grandfathered customer stays at 20.00."""
        sub = self._create_subscription(date_start="2026-01-01")
        kept = self._create_subscription(partner=self.partner_b, date_start="2026-01-01")
        self.assertEqual(sub.line_ids.price_unit, 20.0)
        with freeze_time("2026-01-01"):
            self._run_billing()
            self._register_payment(self._invoices(sub) | self._invoices(kept))  # paid: no dunning in between
        with freeze_time("2026-01-15"):
            self.pricing_monthly.price = 25.0
            wizard = self._wizard(scope="plan", plan_id=self.plan_monthly.id, notice_days=10,
                                  keep_ids=[Command.set(kept.ids)])
            self.assertIn("New prices for 1 subscription(s) (1 line(s))", wizard.summary)
            wizard.action_apply()
        change = sub.price_change_ids
        self.assertEqual((change.price_before, change.price_after, change.date_effective, change.date_notice),
                         (20.0, 25.0, date(2026, 2, 1), date(2026, 1, 22)))
        self.assertFalse(kept.price_change_ids)
        with freeze_time("2026-01-21"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self.assertFalse(self._mails_to(self.partner, "New price"))
        with freeze_time("2026-01-22"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        [notice] = self._mails_to(self.partner, "New price")
        self.assertEqual(notice.subject, "New price for your Trendhouse Weekly (test) subscription from 02/01/2026")
        for amount in ("20.00", "25.00", "22.00", "27.50"):
            self.assertIn(amount, notice.body_html)
        self.assertEqual(sub.line_ids.price_unit, 20.0, "not before its day")
        with freeze_time("2026-02-01"):
            self._run_billing()
            self._run_billing()
        february = self._invoices(sub)[1]
        self.assertEqual((february.amount_untaxed, february.amount_total), (25.0, 27.5))
        self.assertEqual(self._invoices(kept)[1].amount_untaxed, 20.0, "grandfathered")
        self.assertEqual((change.state, sub.line_ids.price_unit), ("applied", 25.0))
        events = self.env["subscription.mrr.log"].search([("subscription_id", "=", sub.id)], order="id")
        self.assertEqual(events.mapped("mrr_change"), [20.0, 5.0])
        self._assert_logged(sub, "New prices from")

    def test_a_price_change_notice_that_could_not_be_e_mailed_says_so_and_why(self):
        sub = self._create_subscription(partner=self.env["res.partner"].create({"name": "Noel No-Mail"}),
                                        date_start="2026-01-01")
        told = self._create_subscription(partner=self.partner_b, date_start="2026-01-01")
        with freeze_time("2026-01-01"):
            self._run_billing()
            self._register_payment(self._invoices(sub) | self._invoices(told))
        with freeze_time("2026-01-15"):
            self.pricing_monthly.price = 25.0
            self._wizard(scope="plan", plan_id=self.plan_monthly.id, notice_days=10).action_apply()
        Thread = type(self.env["mail.thread"])
        no_post = patch.object(Thread, "message_post", side_effect=AssertionError("a note per subscription"))
        with no_post, freeze_time("2026-01-22"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self.assertTrue(sub.price_change_ids.notice_sent, "not tried again every day")
        self._assert_logged(sub, "No price change notice was e-mailed (the customer has no e-mail address): ")
        self.assertNotIn("Price change notice e-mailed", " ".join(str(b) for b in sub.message_ids.mapped("body")))
        self._assert_logged(told, "Price change notice e-mailed: ")
        self.assertTrue(self._mails_to(self.partner_b, "New price"))
        with no_post, freeze_time("2026-02-01"):  # the billing day applies them, noted in one create
            self._run_billing()
        self.assertEqual((sub | told).line_ids.mapped("price_unit"), [25.0, 25.0])
        self._assert_logged(told, "New prices from 02/01/2026: ")

    def test_a_full_notice_moves_the_change_to_the_first_period_after_it(self):
        """30 days' notice asked on Jan 15: February 1 is too soon, March 1 is the first period
        after Feb 14; unticked, the change keeps Feb 1 and the notice goes out at once."""
        sub = self._create_subscription(date_start="2026-01-01")
        other = self._create_subscription(partner=self.partner_b, date_start="2026-01-01")
        with freeze_time("2026-01-01"):
            self._run_billing()
        with freeze_time("2026-01-15"):
            self._wizard(sub, scope="selected", subscription_ids=[Command.set(sub.ids)], method="percent",
                         percent=10, notice_days=30).action_apply()
            self._wizard(other, scope="selected", subscription_ids=[Command.set(other.ids)], method="percent",
                         percent=10, notice_days=30, respect_notice=False).action_apply()
        self.assertEqual((sub.price_change_ids.date_effective, sub.price_change_ids.date_notice),
                         (date(2026, 3, 1), date(2026, 1, 30)))
        self.assertEqual((other.price_change_ids.date_effective, other.price_change_ids.date_notice),
                         (date(2026, 2, 1), date(2026, 1, 2)), "short notice: it goes out with the next status run")

    def test_a_percentage_at_the_next_renewal(self):
        sub = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01")
        with freeze_time("2026-03-01"):
            self._wizard(sub, method="percent", percent=10, when="next_renewal", notify=False).action_apply()
        self.assertEqual((sub.price_change_ids.price_after, sub.price_change_ids.date_effective),
                         (132.0, date(2027, 1, 1)))
        self.assertFalse(sub.price_change_ids.date_notice)
        with freeze_time("2026-12-31"):
            self._run_billing()
        self.assertEqual(sub.line_ids.price_unit, 120.0)
        with freeze_time("2027-01-01"):
            self._run_billing()
        self.assertEqual(sub.line_ids.price_unit, 132.0)

    def test_a_new_schedule_replaces_the_old_one_and_a_cancelled_change_never_applies(self):
        sub = self._create_subscription(date_start="2026-01-01")
        with freeze_time("2026-01-10"):
            self._wizard(sub, method="percent", percent=10, notify=False).action_apply()
            self._wizard(sub, method="percent", percent=20, notify=False).action_apply()
        self.assertEqual(sub.price_change_ids.sorted("id").mapped("state"), ["cancelled", "scheduled"])
        sub.price_change_ids.filtered(lambda c: c.state == "scheduled").with_user(self.manager).action_cancel()
        with freeze_time("2026-02-01"):
            self._run_billing()
        self.assertEqual(sub.line_ids.price_unit, 20.0)
        self._wizard(sub, method="percent", percent=10, notify=False).action_apply()
        with freeze_time("2026-03-01"):
            self._run_billing()
        applied = sub.price_change_ids.filtered(lambda c: c.state == "applied")
        self.assertEqual(sub.line_ids.price_unit, 22.0)
        with self.assertRaisesRegex(UserError, "cannot be cancelled"):
            applied.with_user(self.manager).action_cancel()

    def test_bad_requests_are_refused_and_change_nothing(self):
        sub = self._create_subscription(date_start="2026-01-01")
        closed = self._create_subscription(partner=self.partner_b, date_start="2026-01-01")
        closed.action_cancel()
        none = self.env["subscription.subscription"]
        cases = [
            (sub, {"method": "percent", "percent": 0}, "percentage"),
            (sub, {"method": "percent", "percent": -100}, "percentage"),
            (sub, {"method": "percent", "percent": 5, "notice_days": -3}, "notice"),
            (sub, {}, "No price changes"),  # already at the plan's price
            (closed, {"method": "percent", "percent": 5}, "not running"),
            (none, {"scope": "selected"}, "Select the subscriptions"),
            (None, {"scope": "plan"}, "Choose the plan"),
        ]
        for subs, vals, message in cases:
            with self.subTest(message=message), self.assertRaisesRegex(UserError, message):
                self._wizard(subs, **vals).action_apply()
        self.assertFalse(self.env["subscription.price.change"].search([]))

    def test_only_managers_reprice(self):
        sub = self._create_subscription(date_start="2026-01-01")
        with self.assertRaises(AccessError):
            self.env["subscription.reprice.wizard"].with_user(self.sales_user).with_context(
                active_ids=sub.ids).create({"method": "percent", "percent": 5})
