from datetime import date

from psycopg2 import IntegrityError

from odoo.exceptions import UserError
from odoo.fields import Command
from odoo.tests import freeze_time, tagged
from odoo.tools import mute_logger

from .autopay_common import AutopayCommon


@tagged("post_install", "-at_install")
class TestRenewalOpportunities(AutopayCommon):
    """One renewal opportunity per term that does not renew by itself; its outcome decides."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.team = cls.env["crm.team"].create({"name": "Renewals team", "member_ids": [(4, cls.sales_user.id)]})
        cls.won_stage = cls.env["crm.stage"].search([("is_won", "=", True)], limit=1)

    def _ending_sub(self, plan=None, **vals):
        """A 1-year term started on 2026-01-01 that does not renew by itself (ends 2026-12-31)."""
        sub = self._create_subscription(plan=plan or self.plan_yearly, date_start="2026-01-01",
                                        user_id=self.sales_user.id, **vals)
        sub.auto_renew = False
        return sub

    def _statuses(self, day):
        with freeze_time(day):
            self._run_cron("subscription_billing.ir_cron_update_statuses")

    def _leads(self, sub):
        return self.env["crm.lead"].with_context(active_test=False).search([("subscription_id", "=", sub.id)])

    def test_one_opportunity_per_term_in_the_salespersons_pipeline(self):
        yearly = self._ending_sub()
        monthly = self._ending_sub(plan=self.plan_monthly, partner=self.partner_b)
        renewing = self._create_subscription(plan=self.plan_monthly, date_start="2026-01-01")
        self.assertTrue(renewing.auto_renew)
        self._statuses("2026-11-20")  # 41 days before the end: not yet (30 days)
        self.assertFalse(self._leads(yearly))
        self._statuses("2026-12-05")
        self._statuses("2026-12-06")  # reruns add nothing
        yearly._create_renewal_leads()
        lead = self._leads(yearly)
        self.assertEqual(len(lead), 1)
        self.assertEqual((lead.type, lead.user_id, lead.team_id, lead.partner_id),
                         ("opportunity", self.sales_user, self.team, self.partner))
        self.assertEqual(lead.tag_ids, self.env.ref("subscription_billing.crm_tag_renewal"))
        self.assertEqual((lead.date_deadline, lead.subscription_term_end), (date(2026, 12, 31), date(2026, 12, 31)))
        self.assertEqual(lead.expected_revenue, 120.0, "one yearly period of 120.00, untaxed")
        self.assertEqual(self._leads(monthly).expected_revenue, 144.0, "twelve monthly periods of 12.00")
        self.assertFalse(self._leads(renewing), "an auto-renewing term needs no opportunity")
        self.assertEqual(yearly.renewal_lead_count, 1)
        action = yearly.action_view_renewal_leads()
        self.assertEqual(action["res_id"], lead.id)
        self._assert_logged(yearly, "Renewal opportunity")

    def test_the_database_refuses_a_second_opportunity_for_a_term(self):
        sub = self._ending_sub()
        self._statuses("2026-12-05")
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.env.cr.savepoint():
            self.env["crm.lead"].create(sub._renewal_lead_vals())

    def test_won_renews_for_the_next_term(self):
        by_button = self._ending_sub()
        by_kanban = self._ending_sub(partner=self.partner_b)
        self._statuses("2026-12-05")
        with freeze_time("2026-12-06"):
            self._leads(by_button).action_set_won_rainbowman()
            self._leads(by_kanban).write({"stage_id": self.won_stage.id})
        for sub in by_button | by_kanban:
            self.assertEqual((sub.state, sub.date_end), ("active", date(2027, 12, 31)))
            self._assert_logged(sub, "Renewal won")
        with freeze_time("2027-12-05"):  # the new term gets its own opportunity
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self.assertEqual(self._leads(by_button).mapped("subscription_term_end"),
                         [date(2027, 12, 31), date(2026, 12, 31)])

    def test_lost_ends_the_subscription_at_its_term_end_with_the_mapped_reason(self):
        too_expensive = self._ending_sub()
        no_reason = self._ending_sub(partner=self.partner_b)
        self._statuses("2026-12-05")
        lost_reason = self.env.ref("crm.lost_reason_1")
        with freeze_time("2026-12-06"):
            self.env["crm.lead.lost"].create({  # the Lost dialog
                "lead_ids": [Command.set(self._leads(too_expensive).ids)], "lost_reason_id": lost_reason.id,
            }).action_lost_reason_apply()
            self._leads(no_reason).action_set_lost()
        self.assertEqual((too_expensive.state, too_expensive.is_end_scheduled, too_expensive.date_end),
                         ("active", True, date(2026, 12, 31)), "it runs until its term end")
        self.assertEqual(too_expensive.close_reason_id, self.env.ref("subscription_billing.close_reason_too_expensive"))
        self.assertEqual(no_reason.close_reason_id, self.env.ref("subscription_billing.close_reason_customer_request"))
        with freeze_time("2027-01-01"):
            self._run_billing()
        self.assertEqual((too_expensive.state, too_expensive.date_closed), ("cancelled", date(2026, 12, 31)))
        self.assertEqual(too_expensive.close_reason_id.lost_reason_id, lost_reason)

    def test_a_restored_opportunity_lifts_the_end_and_winning_it_renews(self):
        sub = self._ending_sub()
        self._statuses("2026-12-05")
        lead = self._leads(sub)
        lead.action_set_lost()
        self.assertTrue(sub.is_end_scheduled)
        lead.action_restore()
        self.assertEqual((sub.is_end_scheduled, sub.date_end, sub.close_reason_id), (False, date(2026, 12, 31),
                                                                                     self.env["subscription.close.reason"]))
        lead.action_set_lost()
        lead.action_set_won()  # won straight from lost: the end is lifted and the term renewed
        self.assertEqual((sub.is_end_scheduled, sub.date_end), (False, date(2027, 12, 31)))

    def test_closing_the_subscription_loses_its_opportunity(self):
        sub = self._ending_sub()
        self._statuses("2026-12-05")
        with freeze_time("2026-12-06"):
            self.env["subscription.close.wizard"].with_context(active_ids=sub.ids, active_model=sub._name).create({
                "close_reason_id": self.env.ref("subscription_billing.close_reason_too_expensive").id,
            }).action_close()
        lead = self._leads(sub)
        self.assertEqual((lead.won_status, lead.active, lead.lost_reason_id),
                         ("lost", False, self.env.ref("crm.lost_reason_1")))
        self.assertEqual(sub.state, "cancelled")
        with self.assertRaisesRegex(UserError, "cancelled"):
            lead.action_set_won()


@tagged("post_install", "-at_install")
class TestRenewalReminders(AutopayCommon):
    """One reminder per term, in the words of what will happen: renews on … for …, or ends on …."""

    def test_a_term_that_renews_by_itself_gets_one_notice_with_the_day_and_amount(self):
        renews = self._create_subscription(plan=self.plan_monthly, date_start="2026-01-01")
        quiet_plan = self.plan_quarterly.copy({"name": "Quarterly, no notice", "auto_renewal_notice": False})
        quiet = self._create_subscription(plan=quiet_plan, partner=self.partner_b, date_start="2026-01-01")
        for day in ("2026-11-20", "2026-12-05", "2026-12-06"):
            with freeze_time(day):
                self._run_cron("subscription_billing.ir_cron_update_statuses")
        [notice] = self._mails_to(self.partner, "renews on")
        self.assertEqual(notice.subject, "Your Trendhouse Weekly (test) subscription renews on 01/01/2027")
        self.assertIn("renews by itself on", notice.body_html)
        self.assertIn("13.20", notice.body_html)
        self.assertNotIn("ends on", notice.body_html)
        self.assertEqual(renews.renewal_reminded_for, date(2026, 12, 31))
        self.assertFalse(renews.activity_ids, "nothing for the salesperson to do")
        self.assertFalse(self.env["crm.lead"].search([("subscription_id", "=", renews.id)]))
        self.assertFalse(self._mails_to(self.partner_b, "renews on"), "the plan does not notify")
        self.assertFalse(quiet.renewal_reminded_for)
