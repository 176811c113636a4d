from datetime import date
from unittest.mock import patch

from psycopg2 import IntegrityError

from odoo.exceptions import AccessError, UserError
from odoo.fields import Command
from odoo.tests import freeze_time, new_test_user, tagged
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
            action = self._leads(by_button).action_set_won_rainbowman()
            self.assertEqual(action["res_model"], "subscription.renew.wizard", "Won opens the renewal dialog")
            self.assertEqual(self._leads(by_button).won_status, "pending", "won only once the dialog is confirmed")
            self.env[action["res_model"]].with_context(**action["context"]).create({}).action_renew()  # as it is
            self._leads(by_kanban).write({"stage_id": self.won_stage.id})
        self.assertEqual(self._leads(by_button).won_status, "won")
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

    def test_a_renewal_reminder_that_could_not_be_e_mailed_says_so_and_why(self):
        """A customer without an e-mail address, and one whose e-mail could not be prepared (the
        template fails): no reminder went, each chatter says so and why, the term counts as
        reminded (not retried daily) and the salesperson still gets the activity."""
        silent = self.env["res.partner"].create({"name": "Noel No-Mail"})
        ending = self._create_subscription(plan=self.plan_yearly, partner=silent, date_start="2026-01-01")
        failing = self._create_subscription(plan=self.plan_yearly, partner=self.partner_b, date_start="2026-01-01")
        (ending | failing).auto_renew = False
        renews = self._create_subscription(plan=self.plan_monthly, partner=silent, date_start="2026-01-01")
        Template = type(self.env["mail.template"])
        with patch.object(Template, "send_mail_batch", side_effect=ValueError("broken template")), \
                mute_logger("odoo.addons.subscription_billing.tools.mail"), freeze_time("2026-12-20"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self._assert_logged(ending, "No renewal reminder was e-mailed (the customer has no e-mail address): the "
                                    "subscription ends on 12/31/2026.")
        self._assert_logged(failing, "No renewal reminder was e-mailed (it could not be prepared; the server log "
                                     "says why): the subscription ends on 12/31/2026.")
        self._assert_logged(renews, "No renewal notice was e-mailed (the customer has no e-mail address): the "
                                    "subscription renews on 01/01/2027.")
        for sub in ending | failing:
            self.assertEqual(sub.renewal_reminded_for, date(2026, 12, 31))
            self.assertTrue(sub.activity_ids.filtered(lambda a: (a.summary or "").startswith("Renewal")))
            self.assertNotIn("Renewal reminder e-mailed", " ".join(str(b) for b in sub.message_ids.mapped("body")))

    def test_terms_ending_on_different_days_each_get_their_own_reminder_and_activity(self):
        """One run reminds terms ending on different days, of different salespeople: each one's
        activity names its own end, is due that day and goes to its own salesperson (the
        administrator when there is none); each chatter says its own date."""
        first = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01", user_id=self.sales_user.id)
        later = self._create_subscription(plan=self.plan_yearly, partner=self.partner_b, date_start="2026-01-15",
                                          user_id=False)
        renews = self._create_subscription(plan=self.plan_monthly, date_start="2026-01-01")
        (first | later).auto_renew = False
        with freeze_time("2026-12-20"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        expected = {first: (date(2026, 12, 31), "12/31/2026", self.sales_user),
                    later: (date(2027, 1, 14), "01/14/2027", self.env.ref("base.user_admin"))}
        for sub, (end, shown, user) in expected.items():
            activity = sub.activity_ids.filtered(lambda a: (a.summary or "").startswith("Renewal"))
            self.assertEqual((activity.summary, activity.date_deadline, activity.user_id),
                             (f"Renewal: ends on {shown}", end, user))
            self.assertEqual(sub.renewal_reminded_for, end)
            self._assert_logged(sub, f"Renewal reminder e-mailed: the subscription ends on {shown}.")
        self.assertFalse(renews.activity_ids, "a term that renews by itself needs nothing from the salesperson")
        self._assert_logged(renews, "Renewal notice e-mailed: the subscription renews on 01/01/2027.")


@tagged("post_install", "-at_install")
class TestRenewalTerms(AutopayCommon):
    """The renewal dialog: a new plan, prices or quantities from the first day of the next term."""

    def _renew_wizard(self, sub, **context):
        action = sub.with_context(**context).action_open_renew_wizard()
        return self.env[action["res_model"]].with_context(**action["context"])

    def _invoices(self, sub):
        return self.env["account.move"].search([("subscription_id", "=", sub.id), ("move_type", "=", "out_invoice")],
                                               order="subscription_period_start")

    def test_won_opportunity_renews_into_a_new_plan_and_price_from_the_term_end(self):
        """Yearly 120.00 ending 2026-12-31, not renewing; won on Dec 6 with the monthly plan, two
        copies at a typed 11.00: December stays yearly, January 1 bills 2 × 11.00 + 10 % = 24.20."""
        sub = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01", user_id=self.sales_user.id)
        sub.auto_renew = False
        with freeze_time("2026-12-05"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        lead = self.env["crm.lead"].search([("subscription_id", "=", sub.id)])
        with freeze_time("2026-12-06"):
            action = lead.action_set_won_rainbowman()
            wizard = self.env[action["res_model"]].with_context(**action["context"]).create({})
            self.assertEqual((wizard.lead_id, wizard.plan_id, wizard.date_effective), (lead, self.plan_yearly,
                                                                                       date(2027, 1, 1)))
            self.assertFalse(wizard.is_changed)
            wizard.plan_id = self.plan_monthly
            wizard._onchange_plan_id()
            self.assertEqual(wizard.line_ids.price_unit, 12.0, "the new plan brings the product's plan price")
            wizard.line_ids.write({"price_unit": 11.0, "quantity": 2.0})
            self.assertEqual((wizard.amount_untaxed, wizard.amount_tax, wizard.amount_total,
                              wizard.current_term_total), (22.0, 2.2, 24.2, 132.0))
            self.assertEqual((wizard.periods, wizard.term_total, wizard.term_end), (12, 290.4, date(2027, 12, 31)))
            wizard.action_renew()
        self.assertEqual(lead.won_status, "won")
        self.assertEqual((sub.plan_id, sub.date_end, sub.line_ids.quantity),
                         (self.plan_yearly, date(2027, 12, 31), 1.0),
                         "nothing changes before the term end; the term is renewed")
        change = sub.renewal_change_ids
        self.assertEqual((change.state, change.date_effective, change.amount_total, change.lead_id),
                         ("scheduled", date(2027, 1, 1), 24.2, lead))
        self.assertIn("Monthly (test)", sub.renewal_change_summary)
        self._assert_logged(sub, "New terms agreed at the renewal")
        with freeze_time("2026-12-31"):
            self._run_billing()
        self.assertEqual(sub.plan_id, self.plan_yearly)
        with freeze_time("2027-01-01"):
            self._run_billing()
        self.assertEqual((sub.plan_id, sub.line_ids.quantity, sub.line_ids.price_unit, sub.date_end),
                         (self.plan_monthly, 2.0, 11.0, date(2027, 12, 31)))
        self.assertEqual(change.state, "applied")
        self.assertFalse(sub.renewal_change_summary)
        invoice = self._invoices(sub)[-1]
        self.assertEqual((invoice.subscription_period_start, invoice.subscription_period_end, invoice.amount_total),
                         (date(2027, 1, 1), date(2027, 1, 31), 24.2))
        self.assertEqual(len(self._invoices(sub)), 2, "one yearly invoice, then the first monthly one")
        log = self.env["subscription.mrr.log"].search([("subscription_id", "=", sub.id)], order="id")
        self.assertEqual([(e.event_type, e.event_date, e.plan_id, e.mrr_change) for e in log[1:]], [
            ("expansion", date(2027, 1, 1), self.plan_monthly, 12.0),
            ("transfer", date(2027, 1, 1), self.plan_yearly, -10.0),
            ("transfer", date(2027, 1, 1), self.plan_monthly, 10.0),
        ], "120.00 a year (10.00 MRR) moves to the monthly plan and grows to 22.00")
        self.assertEqual(sum(log.mapped("mrr_change")), sub.recurring_monthly)

    def test_a_late_billing_day_bills_the_old_term_first(self):
        """Monthly, auto-renewing, 12.00 until 2026-12-31; the renewal lowers it to 10.00 (allowed at a
        renewal even though the plan refuses downgrades during the term). The billing day is missed
        until Jan 3: December's period at 12.00, then January at 10.00."""
        sub = self._create_subscription(plan=self.plan_monthly, date_start="2026-01-01")
        with freeze_time("2026-11-01"):
            self._run_billing()
        with freeze_time("2026-11-10"):
            wizard = self._renew_wizard(sub).create({})
            wizard.line_ids.price_unit = 10.0
            self.assertFalse(wizard.preview_error)
            wizard.action_renew()
            self.assertEqual(sub.date_end, date(2026, 12, 31), "it renews by itself: the term is not extended now")
        with freeze_time("2027-01-03"):
            self._run_billing()
        self.assertEqual([(i.subscription_period_start, i.amount_untaxed) for i in self._invoices(sub)[-3:]], [
            (date(2026, 11, 1), 12.0), (date(2026, 12, 1), 12.0), (date(2027, 1, 1), 10.0)])
        self.assertEqual(sub.date_end, date(2027, 12, 31))
        log = self.env["subscription.mrr.log"].search([("subscription_id", "=", sub.id)], order="id")[-1]
        self.assertEqual((log.event_type, log.event_date, log.mrr_change), ("contraction", date(2027, 1, 1), -2.0))

    def test_cancelled_or_closed_renewal_terms_change_nothing(self):
        sub = self._create_subscription(plan=self.plan_monthly, date_start="2026-01-01")
        other = self._create_subscription(plan=self.plan_monthly, date_start="2026-01-01", partner=self.partner_b)
        with freeze_time("2026-11-10"):
            for each in sub | other:
                wizard = self._renew_wizard(each).create({})
                wizard.line_ids.quantity = 3.0
                wizard.action_renew()
            sub.action_cancel_renewal_change()
            self._assert_logged(sub, "Renewal terms from")
            other.action_cancel()
        self.assertEqual(other.renewal_change_ids.state, "cancelled", "closing cancels the new terms")
        with freeze_time("2027-01-01"):
            self._run_billing()
        self.assertEqual(sub.line_ids.quantity, 1.0)
        self.assertEqual(sub.renewal_change_ids.state, "cancelled")
        with self.assertRaisesRegex(UserError, "already applied"), self.env.cr.savepoint():
            applied = sub.renewal_change_ids.copy({"state": "applied"})
            applied.action_cancel()

    def test_an_expired_subscription_restarts_with_the_new_terms_at_once(self):
        sub = self._create_subscription(plan=self.plan_yearly, date_start="2025-01-01")
        sub.auto_renew = False
        with freeze_time("2026-01-02"):
            self._run_billing()
        self.assertEqual(sub.state, "expired")
        with freeze_time("2026-03-01"):
            wizard = self._renew_wizard(sub).create({"date_start": "2026-03-01", "plan_id": self.plan_quarterly.id})
            wizard._onchange_plan_id()
            self.assertEqual((wizard.date_effective, wizard.amount_total, wizard.periods), (date(2026, 3, 1), 35.2, 4))
            wizard.action_renew()
            self._run_billing()
        self.assertEqual((sub.state, sub.plan_id, sub.date_end), ("active", self.plan_quarterly, date(2027, 2, 28)))
        self.assertEqual((self._invoices(sub)[-1].subscription_period_start, self._invoices(sub)[-1].amount_total),
                         (date(2026, 3, 1), 35.2))

    def test_renewal_dialog_refuses_what_cannot_be_renewed(self):
        sub = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01")
        sub.auto_renew = False
        with freeze_time("2026-12-01"):
            wizard = self._renew_wizard(sub).create({})
            wizard.line_ids.quantity = 0.0
            self.assertIn("above 0", wizard.preview_error)
            with self.assertRaisesRegex(UserError, "above 0"), self.env.cr.savepoint():
                wizard.action_renew()
            self.assertFalse(sub.renewal_change_ids)
            sub.action_cancel()
            with self.assertRaisesRegex(UserError, "cannot be renewed"), self.env.cr.savepoint():
                self._renew_wizard(sub).create({}).action_renew()
        viewer = new_test_user(self.env, login="renew_viewer", groups="subscription_billing.group_subscription_viewer")
        running = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01", partner=self.partner_b)
        with self.assertRaises(AccessError), self.env.cr.savepoint():
            running.with_user(viewer)._renew_with_terms(self.plan_monthly, [
                {"line_id": False, "product_id": self.product.id, "quantity": 1.0, "price_unit": 1.0, "discount": 0}])
        self.assertFalse(running.renewal_change_ids)


@tagged("post_install", "-at_install")
class TestRenewalDialogForm(AutopayCommon):
    """The dialogs as the browser drives them (onchange): their amounts are the subscription's."""

    def test_the_dialogs_do_not_count_the_new_lines_twice(self):
        from odoo.tests import Form

        sub = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01")
        with freeze_time("2026-01-01"):
            self._run_billing()
        with freeze_time("2026-03-01"):
            renew = Form(self.env["subscription.renew.wizard"].with_context(active_ids=sub.ids,
                                                                             active_model=sub._name))
            self.assertEqual((renew.current_term_total, renew.term_total, renew.is_changed), (132.0, 132.0, False))
            change = Form(self.env["subscription.change.wizard"].with_context(active_id=sub.id,
                                                                              active_model=sub._name))
            with change.line_ids.edit(0) as line:
                line.quantity = 2.0
            # March 1 of a yearly period from Jan 1: 306 of 365 days left, one more copy.
            self.assertEqual((change.credit, change.charge), (100.6, 201.2))
        self.assertEqual(len(sub.line_ids), 1)


@tagged("post_install", "-at_install")
class TestRenewalTermsReview(AutopayCommon):
    """What a review found: terms waiting are edited, not lost; they are seen as their subscription."""

    def _renew(self, sub, **edits):
        action = sub.action_open_renew_wizard()
        wizard = self.env[action["res_model"]].with_context(**action["context"]).create({})
        if "plan" in edits:
            wizard.plan_id = edits["plan"]
            wizard._onchange_plan_id()
        if "quantity" in edits:
            wizard.line_ids.quantity = edits["quantity"]
        wizard.action_renew()
        return wizard

    def test_renewing_again_edits_the_terms_waiting_without_extending_again(self):
        sub = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01")
        sub.auto_renew = False
        with freeze_time("2026-12-01"):
            self._renew(sub, plan=self.plan_monthly, quantity=2.0)
            self.assertEqual(sub.date_end, date(2027, 12, 31))
            action = sub.action_open_renew_wizard()
            wizard = self.env[action["res_model"]].with_context(**action["context"]).create({})
            self.assertEqual((wizard.plan_id, wizard.line_ids.quantity, wizard.date_effective),
                             (self.plan_monthly, 2.0, date(2027, 1, 1)), "the terms agreed are shown to edit")
            self.assertIn("Monthly (test)", wizard.waiting_summary)
            wizard.line_ids.quantity = 3.0
            wizard.action_renew()
        self.assertEqual(sub.date_end, date(2027, 12, 31), "not extended a second time")
        waiting = sub.renewal_change_ids.filtered(lambda c: c.state == "scheduled")
        self.assertEqual((waiting.date_effective, waiting.line_ids.quantity), (date(2027, 1, 1), 3.0))
        with freeze_time("2026-12-02"):
            self._renew(sub, plan=self.plan_yearly, quantity=1.0)  # back to the current terms
        self.assertFalse(sub.renewal_change_ids.filtered(lambda c: c.state == "scheduled"))
        self._assert_logged(sub, "withdrawn")
        self.assertEqual(sub.date_end, date(2027, 12, 31))

    def test_own_documents_salespeople_see_only_their_subscriptions_terms_and_change_none_by_hand(self):
        own = new_test_user(self.env, login="own_renewals", groups="sales_team.group_sale_salesman")
        theirs = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01", user_id=self.sales_user.id)
        theirs.auto_renew = False
        with freeze_time("2026-12-01"):
            self._renew(theirs, plan=self.plan_monthly)
        change = theirs.renewal_change_ids
        Change = self.env["subscription.renewal.change"].with_user(own)
        self.assertFalse(Change.search([]), "another salesperson's terms are not theirs to see")
        with self.assertRaises(AccessError), self.env.cr.savepoint():
            change.with_user(own).write({"state": "cancelled"})
        with self.assertRaises(AccessError), self.env.cr.savepoint():
            change.with_user(own).action_cancel()
        with self.assertRaises(AccessError), self.env.cr.savepoint():
            change.with_user(self.sales_user).write({"date_effective": "2026-12-02"})  # only through the dialog
        change.with_user(self.sales_user).action_cancel()
        self.assertEqual(change.state, "cancelled")
