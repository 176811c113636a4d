from datetime import date, timedelta
from unittest.mock import patch

from odoo.exceptions import AccessError
from odoo.fields import Command
from odoo.tests import Form, freeze_time, new_test_user, tagged
from odoo.tools import mute_logger

from .autopay_common import AutopayCommon

COUNTED_TABLES = ("subscription_subscription", "subscription_line", "account_move", "account_move_line",
                  "subscription_charge", "payment_transaction", "subscription_mrr_log", "mail_mail",
                  "mail_message", "mail_activity", "subscription_billing_preview")


@tagged("post_install", "-at_install")
class TestBillingPreview(AutopayCommon):
    """*Next billing run*: what tomorrow's billing day and autopay run will do, and what would fail,
    computed without writing anything."""

    def _counts(self):
        self.env.flush_all()
        counts = {}
        for table in COUNTED_TABLES:
            self.env.cr.execute(f"SELECT count(*), COALESCE(max(write_date), '1970-01-01') FROM {table}")
            counts[table] = self.env.cr.fetchone()
        return counts

    def test_counts_amounts_and_problems_without_writing(self):
        with freeze_time("2026-05-01"):
            fine = self._create_subscription(date_start="2026-05-02")
            no_email_partner = self.env["res.partner"].create({"name": "No Mail Reader"})
            no_email = self._create_subscription(partner=no_email_partner, date_start="2026-05-02")
            archived_product = self.env["product.product"].create({
                "name": "Old Weekly", "type": "service", "recurring_invoice": True, "list_price": 5.0})
            archived = self._create_subscription(partner=self.partner_b, date_start="2026-05-02")
            archived.line_ids = [Command.create({"product_id": archived_product.id, "quantity": 1.0})]
            archived_product.active = False
            autopay = self._create_autopay_subscription(date_start="2026-05-02", partner=self.env["res.partner"].create(
                {"name": "Card Reader", "email": "card@example.com"}))
            expired_card = self._create_autopay_subscription(date_start="2026-05-02", partner=self.env[
                "res.partner"].create({"name": "Old Card", "email": "old@example.com"}))
            expired_card.payment_token_id.write({"card_exp_month": 4, "card_exp_year": 2026})
            removed_card = self._create_autopay_subscription(date_start="2026-05-02", partner=self.env[
                "res.partner"].create({"name": "Gone Card", "email": "gone@example.com"}))
            # deactivated outside Odoo's archiving (which would turn autopay off): autopay would bounce
            self.env.cr.execute("UPDATE payment_token SET active = FALSE WHERE id = %s",
                                [removed_card.payment_token_id.id])
            self.env.invalidate_all()
            later = self._create_subscription(date_start="2026-06-01")
            before = self._counts()
            preview = self.env["subscription.subscription"]._billing_preview(date(2026, 5, 2))
            self.assertEqual(self._counts(), before, "the preview writes nothing")
            wizard = Form(self.env["subscription.billing.preview"])
            wizard.date = date(2026, 5, 2)
            self.assertEqual(self._counts(), before, "the wizard computes on the fly: nothing written")
        billed = fine | no_email | archived | autopay | expired_card | removed_card
        self.assertEqual(preview["subscription_count"], len(billed))
        self.assertEqual(preview["invoice_count"], len(billed), "one period each on May 2")
        self.assertNotIn(later, preview["problems"])
        self.assertEqual(preview["charge_count"], 3, "the three autopay subscriptions' new invoices")
        self.assertAlmostEqual(preview["invoiced"][self.currency], sum(billed.mapped("amount_total")), places=2)
        self.assertAlmostEqual(preview["charged"][self.currency],
                               sum((autopay | expired_card | removed_card).mapped("amount_total")), places=2)
        problems = {sub: " ".join(reasons) for sub, reasons in preview["problems"].items()}
        self.assertNotIn(fine, problems)
        self.assertNotIn(autopay, problems)
        self.assertIn("no e-mail address", problems[no_email])
        self.assertIn("Old Weekly is archived", problems[archived])
        self.assertIn("expired before the charge date", problems[expired_card])
        self.assertIn("removed or deactivated", problems[removed_card])
        self.assertEqual(wizard.problem_count, len(problems))
        self.assertIn("No Mail Reader", wizard.problem_html)

    def test_plan_of_another_company(self):
        company_b = self.env["res.company"].create({"name": "Other Weekly (preview)"})
        plan_b = self.plan_monthly.copy({"name": "Monthly B"})
        sub = self._create_subscription(date_start="2026-05-02", plan=plan_b)
        # moved to another company around the ORM's company checks (an import, SQL)
        self.env.cr.execute("UPDATE subscription_plan SET company_id = %s WHERE id = %s", [company_b.id, plan_b.id])
        self.env.invalidate_all()
        problems = self.env["subscription.subscription"]._billing_preview(date(2026, 5, 2))["problems"]
        self.assertIn("belongs to Other Weekly (preview)", " ".join(problems.get(sub, [])))

    def test_a_day_in_the_past_is_refused_in_words(self):
        with freeze_time("2026-05-10"):
            wizard = Form(self.env["subscription.billing.preview"])
            wizard.date = date(2026, 5, 1)
            self.assertIn("Choose a day from today on", wizard.amounts_html)
            self.assertEqual(wizard.invoice_count, 0)


@tagged("post_install", "-at_install")
class TestFollowUp(AutopayCommon):
    """Following up selected subscriptions: one activity each (never a second while one is open),
    and the reminder e-mail each one's situation calls for."""

    def test_follow_up_activities_are_not_duplicated(self):
        subs = self._create_many_subscriptions(3, date_start="2026-05-01")
        subs[0].user_id = self.sales_user
        result = subs.action_schedule_follow_up()
        self.assertEqual(result["params"]["type"], "success")
        activity_type = self.env.ref("subscription_billing.mail_activity_type_follow_up")
        activities = self.env["mail.activity"].search([("res_id", "in", subs.ids),
                                                       ("activity_type_id", "=", activity_type.id)])
        self.assertEqual(len(activities), 3)
        self.assertEqual(activities.filtered(lambda a: a.res_id == subs[0].id).user_id, self.sales_user)
        again = subs.action_schedule_follow_up()
        self.assertEqual(again["params"]["type"], "warning")
        self.assertEqual(self.env["mail.activity"].search_count([("res_id", "in", subs.ids),
                                                                 ("activity_type_id", "=", activity_type.id)]), 3)
        activities[0].action_done()
        subs.action_schedule_follow_up()
        self.assertEqual(self.env["mail.activity"].search_count([("res_id", "in", subs.ids),
                                                                 ("activity_type_id", "=", activity_type.id)]), 3,
                         "the one done gets a new one")

    def test_each_subscription_gets_the_reminder_its_situation_calls_for(self):
        failed = self._create_autopay_subscription("error", date_start="2026-05-01")
        overdue_partner = self.env["res.partner"].create({"name": "Late Reader", "email": "late@example.com"})
        overdue = self._create_subscription(partner=overdue_partner, date_start="2026-05-01")
        expiring = self._create_subscription(partner=self.partner_b, plan=self.plan_yearly, date_start="2025-07-01")
        quiet = self._create_subscription(partner=self.env["res.partner"].create(
            {"name": "Quiet Reader", "email": "quiet@example.com"}), date_start="2026-12-01")
        no_mail = self._create_subscription(partner=self.env["res.partner"].create({"name": "No Mail"}),
                                            date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        self._register_payment(expiring.invoice_ids)
        self.MailMail.sudo().search([]).unlink()
        with freeze_time("2026-06-20"):
            result = (failed | overdue | expiring | quiet | no_mail).action_send_follow_up_reminder()
        self.assertEqual(result["params"]["title"], "3 reminder(s) e-mailed")
        self.assertIn("nothing to remind: " + quiet.name, result["params"]["message"])
        self.assertIn("no e-mail address: " + no_mail.name, result["params"]["message"])
        self.assertTrue(self._mails_to(self.partner, "failed"), "payment failed e-mail for the declined card")
        self.assertTrue(self.MailMail.sudo().search([("recipient_ids", "in", overdue_partner.ids)]))
        self.assertTrue(self._mails_to(self.partner_b, "ends on"), "renewal reminder for the ending term")
        self.assertEqual(expiring.renewal_reminded_for, expiring.date_end, "the term's reminder is not sent twice")
        self._assert_logged(overdue, "overdue invoice")

    def test_a_follow_up_reminder_that_could_not_be_queued_is_named(self):
        overdue = self._create_subscription(date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        Template = type(self.env["mail.template"])
        with patch.object(Template, "send_mail_batch", side_effect=ValueError("broken template")), \
                mute_logger("odoo.addons.subscription_billing.tools.mail"), freeze_time("2026-06-20"):
            result = overdue.action_send_follow_up_reminder()
        self.assertEqual((result["params"]["title"], result["params"]["type"]), ("0 reminder(s) e-mailed", "warning"))
        self.assertIn("e-mail could not be queued: " + overdue.name, result["params"]["message"])
        self.assertNotIn("Reminder e-mailed by", " ".join(str(b) for b in overdue.message_ids.mapped("body")))


        viewer = new_test_user(self.env, login="fu_viewer",
                               groups="base.group_user,subscription_billing.group_subscription_viewer")
        sub = self._create_subscription(date_start="2026-05-01")
        with self.assertRaises(AccessError), mute_logger("odoo.models"):
            sub.with_user(viewer).action_schedule_follow_up()
        with self.assertRaises(AccessError), mute_logger("odoo.models"):
            sub.with_user(viewer).action_send_follow_up_reminder()


@tagged("post_install", "-at_install")
class TestAnalysis(AutopayCommon):
    """The MRR log's analysis dimensions, the cohort table and the churn split."""

    def test_events_carry_product_country_and_close_reason(self):
        self.partner.country_id = self.env.ref("base.be")
        with freeze_time("2026-05-01"):
            sub = self._create_subscription(date_start="2026-05-01")
        reason = self.env.ref("subscription_billing.close_reason_too_expensive")
        with freeze_time("2026-07-10"):
            sub.with_context(close_reason_id=reason.id).action_cancel()
        new, churn = self.env["subscription.mrr.log"].search([("subscription_id", "=", sub.id)], order="id")
        self.assertEqual((new.product_id, new.country_id, new.event_date), (self.product, self.partner.country_id,
                                                                          date(2026, 5, 1)))
        self.assertEqual((churn.close_reason_id, churn.churn_kind, churn.event_date),
                         (reason, "voluntary", date(2026, 7, 10)))
        self.assertEqual(churn.churn_cause, reason.name)

    def test_back_dated_change(self):
        with freeze_time("2026-05-01"):
            sub = self._create_subscription(date_start="2026-04-01")
        self.assertEqual(sub.mrr_log_ids.event_date, date(2026, 4, 1), "a start is logged on its start day")
        with freeze_time("2026-05-01"):
            sub.with_context(subscription_event_date=date(2026, 4, 20)).line_ids.quantity = 2
        expansion = sub.mrr_log_ids.filtered(lambda e: e.event_type == "expansion")
        self.assertEqual(expansion.event_date, date(2026, 4, 20))

    def test_cohort_retention(self):
        with freeze_time("2026-01-10"):
            stay = self._create_subscription(date_start="2026-01-10")
            leave = self._create_subscription(partner=self.partner_b, date_start="2026-01-10")
        with freeze_time("2026-03-15"):
            leave.action_cancel()
        self.env.flush_all()
        Cohort = self.env["subscription.cohort"]
        rows = Cohort.search([("subscription_id", "in", (stay | leave).ids)])
        today = date.today()
        # A column per month of age that all of January 2026 has reached: the months from January
        # whose last day has come.
        complete_months = (today.year - 2026) * 12 + today.month - 1 + ((today + timedelta(days=1)).day == 1)
        self.assertEqual(len(rows), 2 * min(complete_months, 13))
        by_month = dict(Cohort._read_group([("subscription_id", "in", (stay | leave).ids)], ["months"],
                                           ["retained:avg"]))
        self.assertEqual(by_month["00"], 100.0)
        self.assertEqual(by_month["02"], 100.0, "March 10: both still running")
        self.assertEqual(by_month["03"], 50.0, "April 10: one of two left on March 15")

    def test_invariant_check_reports_a_change_made_around_the_log(self):
        sub = self._create_subscription(date_start="2026-05-01")
        Log = self.env["subscription.mrr.log"]
        self.assertFalse(Log._cron_check_invariant())
        self.env.cr.execute("UPDATE subscription_subscription SET recurring_monthly = 99 WHERE id = %s", [sub.id])
        self.env.invalidate_all()
        with mute_logger("odoo.addons.subscription_billing.models.subscription_mrr_log"):
            wrong = Log._cron_check_invariant()
        self.assertEqual(wrong, {sub: (12.0, 99.0)})
        self._assert_logged(sub, "adds up to")
