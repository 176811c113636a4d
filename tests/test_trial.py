from datetime import date
from unittest.mock import patch

from odoo.exceptions import UserError, ValidationError
from odoo.tests import freeze_time, tagged
from odoo.tools import mute_logger

from .autopay_common import AutopayCommon
from .test_portal import PortalCommon


@tagged("post_install", "-at_install")
class TestTrials(AutopayCommon):
    """Monthly 12.00 + 10 % with a 14-day free trial from 2026-01-01: the trial runs until Jan 14,
    the first invoice is dated Jan 15 and MRR counts from then."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan_monthly.write({"trial_days": 14, "trial_reminder_days": 3})

    def _trial(self, **vals):
        with freeze_time("2026-01-01"):
            return self._create_subscription(date_start="2026-01-01", **vals)

    def _log(self, sub):
        return [(e.event_type, e.event_date, e.mrr_change) for e in self.env["subscription.mrr.log"].search(
            [("subscription_id", "=", sub.id)], order="id")]

    def test_first_invoice_at_the_trial_end_and_mrr_from_then(self):
        sub = self._trial()
        self.assertEqual((sub.state, sub.is_trial, sub.date_trial_end, sub.next_invoice_date, sub.date_end),
                         ("active", True, date(2026, 1, 14), date(2026, 1, 15), date(2027, 1, 14)),
                         "periods and the 1-year term count from the first paid day")
        self.assertEqual((sub.recurring_monthly, self._log(sub)), (0.0, []), "a trial is not MRR")
        with freeze_time("2026-01-14"):
            self._run_billing()
        self.assertFalse(sub.invoice_ids, "nothing during the trial")
        with freeze_time("2026-01-15"):
            self._run_billing()
        self.assertEqual((sub.is_trial, sub.recurring_monthly), (False, 12.0))
        invoice = sub.invoice_ids
        self.assertEqual((invoice.invoice_date, invoice.subscription_period_start, invoice.subscription_period_end,
                          invoice.amount_total), (date(2026, 1, 15), date(2026, 1, 15), date(2026, 2, 14), 13.2))
        self.assertEqual(self._log(sub), [("new", date(2026, 1, 15), 12.0)])
        self._assert_logged(sub, "Trial over: billed from")

    def test_a_late_billing_day_converts_on_the_right_day(self):
        sub = self._trial()
        with freeze_time("2026-01-20"):
            self._run_billing()
        self.assertEqual(self._log(sub), [("new", date(2026, 1, 15), 12.0)])
        self.assertEqual(sub.invoice_ids.subscription_period_start, date(2026, 1, 15))

    def test_one_reminder_before_the_trial_ends(self):
        sub = self._trial()
        for day in ("2026-01-10", "2026-01-11", "2026-01-12"):  # reminder day: Jan 14 − 3
            with freeze_time(day):
                self._run_cron("subscription_billing.ir_cron_update_statuses")
            if day == "2026-01-10":
                self.assertFalse(self._mails_to(self.partner, "free trial"))
        mail = self._mails_to(self.partner, "free trial")
        self.assertEqual(len(mail), 1, "once, whatever reruns")
        self.assertIn("ends on", mail.subject)
        self.assertIn("13.20", mail.body_html)
        self._assert_logged(sub, "Trial reminder e-mailed")

    def test_a_trial_customer_without_an_e_mail_address_is_not_said_reminded(self):
        """Reminders of a run are noted in one create (no ``message_post`` per subscription); the
        customer without an address is not said reminded."""
        silent = self.env["res.partner"].create({"name": "Noel No-Mail"})
        sub = self._trial(partner=silent)
        told = self._trial(partner=self.partner_b)
        Thread = type(self.env["mail.thread"])
        with patch.object(Thread, "message_post", side_effect=AssertionError("a note per subscription")), \
                freeze_time("2026-01-11"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self._assert_logged(told, "Trial reminder e-mailed: the trial ends on 01/14/2026.")
        self.assertTrue(sub.trial_reminder_sent, "not tried again every day")
        self._assert_logged(sub, "No trial reminder was e-mailed (the customer has no e-mail address): the trial "
                                 "ends on 01/14/2026.")
        self.assertNotIn("Trial reminder e-mailed", " ".join(str(b) for b in sub.message_ids.mapped("body")))

    def test_cancelled_during_the_trial_nothing_is_ever_invoiced(self):
        sub = self._trial()
        with freeze_time("2026-01-08"):
            sub.action_cancel()
        with freeze_time("2026-02-01"):
            self._run_billing()
        self.assertEqual((sub.state, sub.invoice_ids, self._log(sub)), ("cancelled", sub.invoice_ids.browse(), []),
                         "no invoice, and no churn for revenue never counted")

    def test_a_trial_cannot_be_paused(self):
        sub = self._trial()
        with freeze_time("2026-01-05"), self.assertRaisesRegex(UserError, "free trial"), self.env.cr.savepoint():
            sub.action_pause("2026-02-01")
        self.assertEqual(sub.state, "active")

    def test_overview_counts_trials_apart(self):
        self._trial()
        self._create_subscription(partner=self.partner_b, plan=self.plan_yearly)
        with freeze_time("2026-01-05"):
            counts = {c["key"]: c["value"] for c in self.env["subscription.subscription"]._overview_counts(
                date(2026, 1, 5), date(2026, 1, 1))}
        self.assertEqual((counts["trial"], counts["active"]), (1, 1))

    def test_staff_end_a_trial_early_or_give_a_trial_by_hand(self):
        sub = self._trial()
        with freeze_time("2026-01-05"):
            sub.action_end_trial()
            self._run_billing()
        self.assertEqual((sub.is_trial, sub.date_trial_end, sub.next_invoice_date, sub.date_end),
                         (False, date(2026, 1, 4), date(2026, 2, 5), date(2027, 1, 4)))
        self.assertEqual(sub.invoice_ids.subscription_period_start, date(2026, 1, 5))
        self.assertEqual(self._log(sub), [("new", date(2026, 1, 5), 12.0)])
        with self.assertRaisesRegex(UserError, "not on trial"), self.env.cr.savepoint():
            sub.action_end_trial()
        with self.assertRaisesRegex(UserError, "set when it starts"), self.env.cr.savepoint():
            sub.date_trial_end = "2026-03-01"
        custom = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01", start=False)
        custom.date_trial_end = "2026-01-31"  # a plan without a trial: one given by hand
        with freeze_time("2026-01-01"):
            custom.action_start()
        self.assertEqual((custom.is_trial, custom.next_invoice_date), (True, date(2026, 2, 1)))
        with self.assertRaises(ValidationError), self.env.cr.savepoint():
            self._create_subscription(date_start="2026-01-10", start=False, date_trial_end="2026-01-01")

    def test_a_plan_may_ask_for_a_payment_method_before_the_trial(self):
        self.plan_monthly.trial_requires_autopay = True
        draft = self._create_subscription(date_start="2026-01-01", start=False)
        with self.assertRaisesRegex(UserError, "asks for a payment method"), self.env.cr.savepoint():
            draft.action_start()
        self.assertEqual(draft.state, "draft")
        with freeze_time("2026-01-01"):
            draft._enroll_autopay(self._create_token())  # the customer saved a method from the link
        self.assertEqual((draft.state, draft.is_trial, draft.next_invoice_date), ("active", True, date(2026, 1, 15)))


@tagged("post_install", "-at_install")
class TestTrialPortal(PortalCommon):

    def test_customers_cancel_their_trial_and_nobody_else_can(self):
        self.plan_monthly.trial_days = 30
        today = self.sub_ada.company_id._subscription_today()
        trial = self._create_subscription(partner=self.partner, date_start=today)
        cancel = f"/my/subscriptions/{trial.id}/trial/cancel"
        self.authenticate("ada_portal", "ada_portal_pw")
        page = self._page(trial.get_portal_url()).text
        self.assertIn("o_subscription_trial_info", page)
        self.assertIn("Free trial", page)
        csrf = self._csrf(trial.get_portal_url())
        with mute_logger("odoo.http", "werkzeug"):
            self.assertEqual(self.url_open(cancel, data={"access_token": ""}).status_code, 400, "no CSRF token")
            self.assertEqual(self.url_open(f"/my/subscriptions/{self.sub_ada.id}/trial/cancel",
                                           data={"csrf_token": csrf}).status_code, 403, "not on trial")
            self.authenticate("bob_portal", "bob_portal_pw")
            bob_csrf = self._csrf(self.sub_bob.get_portal_url())
            self.assertEqual(self.url_open(cancel, data={"csrf_token": bob_csrf}).status_code, 404)
        self.env.invalidate_all()
        self.assertEqual(trial.state, "active")
        self.authenticate("ada_portal", "ada_portal_pw")
        response = self.url_open(cancel, data={"csrf_token": self._csrf(trial.get_portal_url())})
        self.assertIn("o_subscription_trial_cancelled", response.text)
        self.env.invalidate_all()
        self.assertEqual((trial.state, trial.invoice_ids.ids), ("cancelled", []))
        self._assert_logged(trial, "Trial cancelled by Ada Reader")


@tagged("post_install", "-at_install")
class TestTrialReview(AutopayCommon):
    """What a review found: a trial is never invoiced early, and can be ended on its first day."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan_monthly.write({"trial_days": 14})

    def test_nothing_invoices_a_trial_before_it_converts(self):
        with freeze_time("2026-01-01"):
            sub = self._create_subscription(date_start="2026-01-01")
            with self.assertRaisesRegex(UserError, "free trial until"), self.env.cr.savepoint():
                sub.action_generate_invoice()
        self.assertFalse(sub.filtered_domain(sub._billable_domain(today=date(2026, 2, 1))),
                         "the billing day converts a trial before it bills it")
        self.assertFalse(sub.invoice_ids)

    def test_a_trial_ended_on_its_first_day_was_no_trial(self):
        with freeze_time("2026-01-01"):
            sub = self._create_subscription(date_start="2026-01-01")
            sub.action_end_trial()
            sub.action_generate_invoice()
        self.assertEqual((sub.is_trial, sub.date_trial_end, sub.invoice_ids.subscription_period_start),
                         (False, False, date(2026, 1, 1)))
