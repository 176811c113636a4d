from datetime import date

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import freeze_time, new_test_user, tagged

from .autopay_common import AutopayCommon


@tagged("post_install", "-at_install")
class TestPause(AutopayCommon):
    """Pause and resume: nothing invoiced while paused, the paused days given back on resume."""

    def _events(self, sub):
        return self.env["subscription.mrr.log"].search([("subscription_id", "=", sub.id)], order="id")

    def _invoices(self, sub):
        return sub.invoice_ids.filtered(lambda m: m.move_type == "out_invoice").sorted("subscription_period_start")

    def test_paused_by_hand_then_resumed_gets_the_paused_days_back(self):
        sub = self._create_subscription(date_start="2026-01-01")
        with freeze_time("2026-01-01"):
            self._run_billing()
        self.assertEqual(sub.date_end, date(2026, 12, 31))
        with freeze_time("2026-01-10"):
            sub.with_user(self.sales_user).action_pause()
        self.assertEqual((sub.state, sub.date_paused, sub.date_resume), ("paused", date(2026, 1, 10), False))
        self.assertEqual(sub.recurring_monthly, 0.0)
        self.assertEqual(self.partner.subscription_status, "paused")
        with freeze_time("2026-02-01"):
            self._run_billing()
        self.assertEqual(len(self._invoices(sub)), 1, "nothing is invoiced while paused")
        with freeze_time("2026-03-11"):  # 60 days after the pause began
            sub.with_user(self.sales_user).action_resume()
        # Feb 1 + 60 days; the 11 periods left of the term now end 60 days later too.
        self.assertEqual((sub.state, sub.next_invoice_date, sub.date_end),
                         ("active", date(2026, 4, 2), date(2027, 3, 1)))
        self.assertFalse(sub.date_paused)
        self.assertEqual(sub.recurring_monthly, 12.0)
        with freeze_time("2026-04-01"):
            self._run_billing()
        self.assertEqual(len(self._invoices(sub)), 1, "the days already paid for come first")
        with freeze_time("2026-04-02"):
            self._run_billing()
        second = self._invoices(sub)[1]
        self.assertEqual((second.subscription_period_start, second.subscription_period_end),
                         (date(2026, 4, 2), date(2026, 5, 1)))
        self.assertEqual(second.amount_total, 13.2)
        self.assertEqual(self._events(sub).mapped("event_type"), ["new", "contraction", "reactivation"])
        self.assertEqual(self._events(sub).mapped("mrr_change"), [12.0, -12.0, 12.0])
        self._assert_logged(sub, "Resumed by Sam Sales")

    def test_the_billing_day_resumes_on_the_resume_date_even_when_late(self):
        subs = self._create_many_subscriptions(2, date_start="2026-01-01")
        with freeze_time("2026-01-01"):
            self._run_billing()
        with freeze_time("2026-01-10"):
            subs.action_pause(date_resume="2026-03-01")
        self.assertEqual(subs.mapped("date_resume"), [date(2026, 3, 1)] * 2)
        with freeze_time("2026-02-28"):
            self._run_billing()
        self.assertEqual(subs.mapped("state"), ["paused", "paused"])
        with freeze_time("2026-03-03"):  # two days late: the pause still ended on March 1
            self._run_billing()
        # Feb 1 + 50 days paused (Jan 10 to Mar 1).
        self.assertEqual(subs.mapped("state"), ["active", "active"])
        self.assertEqual(subs.mapped("next_invoice_date"), [date(2026, 3, 23)] * 2)
        with freeze_time("2026-03-03"):
            self._run_billing()  # a rerun resumes nothing twice
        self.assertEqual([len(self._events(sub)) for sub in subs], [3, 3])
        with freeze_time("2026-03-23"):
            self._run_billing()
        self.assertEqual([len(self._invoices(sub)) for sub in subs], [2, 2])

    def test_month_end_anchor_after_a_pause(self):
        sub = self._create_subscription(date_start="2026-01-31")
        with freeze_time("2026-01-31"):
            self._run_billing()
        self.assertEqual(sub.next_invoice_date, date(2026, 2, 28))
        with freeze_time("2026-02-10"):
            sub.action_pause()
        with freeze_time("2026-03-13"):  # 31 days
            sub.action_resume()
        self.assertEqual(sub.next_invoice_date, date(2026, 3, 31))
        with freeze_time("2026-04-30"):
            self._run_billing()
        periods = [(m.subscription_period_start, m.subscription_period_end) for m in self._invoices(sub)]
        self.assertEqual(periods, [
            (date(2026, 1, 31), date(2026, 2, 27)),
            (date(2026, 3, 31), date(2026, 4, 29)),
            (date(2026, 4, 30), date(2026, 5, 30)),
        ])

    def test_a_pause_invoices_first_what_was_due_before_it(self):
        sub = self._create_subscription(date_start="2026-01-01")
        with freeze_time("2026-02-05"):  # the billing day did not run for January nor February
            sub.action_pause()
        periods = [m.subscription_period_start for m in self._invoices(sub)]
        self.assertEqual(periods, [date(2026, 1, 1), date(2026, 2, 1)])
        self.assertEqual(sub.next_invoice_date, date(2026, 3, 1))

    def test_the_plan_bounds_the_pause(self):
        self.plan_monthly.max_pause_days = 30
        sub = self._create_subscription(date_start="2026-01-01")
        with freeze_time("2026-01-10"):
            with self.assertRaisesRegex(ValidationError, "at most 30 days"):
                sub.action_pause(date_resume="2026-02-20")
            self.assertEqual(sub.state, "active")
            with self.assertRaisesRegex(UserError, "after today"):
                sub.action_pause(date_resume="2026-01-10")
            with self.assertRaisesRegex(UserError, "is not a date"):
                sub.action_pause(date_resume="next summer")
            sub.action_pause()
        self.assertEqual(sub.date_resume, date(2026, 2, 9), "without a day: the longest pause")
        with freeze_time("2026-01-01"):
            with self.assertRaisesRegex(ValidationError, "at most 30 days"):
                sub.date_resume = "2026-03-01"
            with self.assertRaisesRegex(ValidationError, "after the first day"):
                sub.date_resume = "2026-01-05"
            sub.date_resume = "2026-01-20"
        with self.assertRaisesRegex(UserError, "Only active subscriptions can be paused"):
            sub.action_pause()

    def test_only_active_subscriptions_pause_and_only_paused_resume(self):
        sub = self._create_subscription(date_start="2026-01-01")
        with self.assertRaisesRegex(UserError, "Only paused subscriptions can be resumed"):
            sub.action_resume()
        sub.action_suspend(reason="disputed")
        with self.assertRaisesRegex(UserError, "Suspended"):
            sub.action_pause()
        with self.assertRaisesRegex(ValidationError, "only a paused subscription has a resume date"):
            sub.date_resume = "2027-09-01"
        self.assertEqual(sub.state, "suspended")

    def test_autopay_charges_nothing_while_paused_and_resumes_with_the_subscription(self):
        sub = self._create_autopay_subscription("done", date_start="2026-01-01")
        with freeze_time("2026-01-01"):
            self._run_billing()
        invoice = self._invoices(sub)
        with freeze_time("2026-01-01"):
            sub.action_pause()
            self._run_autopay()
        self.assertFalse(sub.charge_ids, "autopay charges nothing while paused")
        self.assertEqual(invoice.payment_state, "not_paid")
        with freeze_time("2026-01-05"):
            sub.action_resume()
            self._run_autopay()
        self.assertEqual(sub.charge_ids.mapped("state"), ["done"])
        self._assert_paid(invoice)

    def test_closed_while_paused_is_churn(self):
        sub = self._create_subscription(date_start="2026-01-01")
        with freeze_time("2026-01-10"):
            sub.action_pause()
        with freeze_time("2026-02-15"):
            sub.action_cancel()
        events = self._events(sub)
        self.assertEqual(events.mapped("event_type"), ["new", "contraction", "contraction", "churn"])
        self.assertEqual(events.mapped("mrr_change"), [12.0, -12.0, 12.0, -12.0])
        self.assertEqual(events[-1].event_date, date(2026, 2, 15))
        self.assertEqual(events[-1].churn_kind, "voluntary")
        self.assertFalse(self.env["subscription.mrr.log"]._check_invariant(sub))
        self.assertEqual((sub.state, sub.date_paused, sub.date_resume), ("cancelled", False, False))

    def test_a_paused_term_waits_but_a_scheduled_end_closes(self):
        waits = self._create_subscription(date_start="2025-02-01", plan=self.plan_yearly)
        ends = self._create_subscription(date_start="2025-02-01", plan=self.plan_yearly)
        with freeze_time("2025-02-01"):
            self._run_billing()
        ends.write({"date_end": "2026-01-15"})
        self.assertTrue(ends.is_end_scheduled)
        with freeze_time("2025-12-01"):
            (waits | ends).action_pause()
        with freeze_time("2025-12-20"):
            self.env.invalidate_all()
            self.assertEqual((waits.is_expiring, ends.is_expiring), (False, True), "a paused term's end moves")
            self.assertEqual(waits.search([("is_expiring", "=", True), ("id", "in", (waits | ends).ids)]), ends)
        with freeze_time("2026-02-02"):
            self._run_billing()
        self.assertEqual((waits.state, ends.state), ("paused", "cancelled"))
        with freeze_time("2026-03-02"):  # 91 days paused
            waits.action_resume()
        self.assertEqual((waits.next_invoice_date, waits.date_end), (date(2026, 5, 3), date(2026, 5, 2)))

    def test_overview_and_contacts_count_paused_apart(self):
        subs = self._create_many_subscriptions(3, date_start="2026-01-01")
        with freeze_time("2026-01-01"):
            subs[0].action_pause()
        counts = {c["key"]: c for c in self.env["subscription.subscription"]._overview_counts(
            date(2026, 1, 1), date(2026, 1, 1))}
        self.assertEqual(counts["paused"]["value"], 1)
        self.assertEqual(self.env["subscription.subscription"].search(counts["paused"]["domain"]), subs[0])
        self.assertEqual(counts["active"]["value"], 2)
        partners = self.env["res.partner"].search([("subscription_status", "=", "paused")])
        self.assertEqual(partners, subs[0].partner_id)
        self.assertIn("Paused — until resumed by hand", subs[0].partner_id.subscription_summary)

    def test_who_may_pause(self):
        sub = self._create_subscription(date_start="2026-01-01")
        viewer = new_test_user(self.env, login="pause_viewer", groups="subscription_billing.group_subscription_viewer")
        with self.assertRaises(AccessError):
            sub.with_user(viewer).action_pause()
        portal = new_test_user(self.env, login="pause_portal", groups="base.group_portal")
        with self.assertRaises(AccessError):
            sub.with_user(portal).action_pause()
        self.assertEqual(sub.state, "active")
        wizard = self.env["subscription.pause.wizard"].with_user(self.sales_user).with_context(
            active_ids=sub.ids).create({"date_resume": "2099-01-01"})
        with self.assertRaisesRegex(ValidationError, "too far from today"):
            wizard.action_pause()
        self.assertEqual(sub.state, "active")

    def test_hand_edits_cannot_stretch_a_pause(self):
        """What the attacker's review found: the first day of a pause is not editable, a plan's
        longest pause cannot be escaped by clearing the resume date, a resume date typed by hand is
        after today, and a paused subscription keeps a line."""
        self.plan_monthly.max_pause_days = 60
        sub = self._create_subscription(date_start="2026-01-01")
        with freeze_time("2026-01-10"):
            sub.action_pause(date_resume="2026-02-01")
            with self.assertRaisesRegex(ValidationError, "give the resume date"), self.env.cr.savepoint():
                sub.date_resume = False
            with self.assertRaisesRegex(UserError, "set by Pause"), self.env.cr.savepoint():
                sub.write({"date_paused": "2020-01-01"})
            with self.assertRaisesRegex(UserError, "after today"), self.env.cr.savepoint():
                sub.date_resume = "2026-01-05"
            with self.assertRaisesRegex(ValidationError, "at least one line"), self.env.cr.savepoint():
                sub.line_ids.unlink()
        sub.invalidate_recordset()
        self.assertEqual((sub.date_paused, sub.date_resume), (date(2026, 1, 10), date(2026, 2, 1)))
        self.assertTrue(sub.line_ids)
        with self.assertRaisesRegex(UserError, "Only active subscriptions can be paused \\(.*Paused\\)\\.$"):
            sub.action_pause()

    def test_a_subscription_that_cannot_resume_does_not_stop_the_billing_day(self):
        subs = self._create_many_subscriptions(2, date_start="2026-01-01")
        with freeze_time("2026-01-01"):
            self._run_billing()
        with freeze_time("2026-01-10"):
            subs.action_pause(date_resume="2026-02-01")
        # Shifted by the pause, the next invoice would be more than 10 years after the start.
        self.env.cr.execute("UPDATE subscription_subscription SET next_invoice_date = '2035-12-25' WHERE id = %s",
                            [subs[0].id])
        self.env.invalidate_all()
        with freeze_time("2026-02-01"):
            self._run_billing()
        self.assertEqual(subs.mapped("state"), ["paused", "active"])
        self._assert_logged(subs[0], "Could not resume on the planned day")
        self.assertTrue(subs[0].activity_ids)
