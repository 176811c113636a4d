"""The scheduled actions with OCA queue_job installed: batches become jobs on root.subscription.

Run by ``./dev test`` in a pass of its own, on a database with queue_job installed
(``./dev test-queue``); the other tests run on a database without it (the scheduled actions
work alone).
"""

from datetime import date

from odoo.tests import freeze_time, tagged

from odoo.addons.queue_job.controllers.main import _prevent_commit
from odoo.addons.queue_job.job import Job

from .autopay_common import AutopayCommon


@tagged("post_install", "-at_install")
class TestQueueJob(AutopayCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("subscription_billing.batch_size", 2)
        cls.env["ir.config_parameter"].sudo().set_param("subscription_billing.charge_batch_size", 2)

    def _jobs(self, method="_subscription_job_batch"):
        return self.env["queue.job"].search([("method_name", "=", method)], order="id")

    def _perform(self, jobs):
        """Run these jobs as queue_job's runner does (load, perform, done, store)."""
        for record in jobs:
            # The runner's own cursor (a test cursor here): jobs may commit, as the autopay run does.
            # queue_job forbids commits in a job unless its function allows them.
            with self.enter_registry_test_mode(), self.env.registry.cursor() as cr:
                job = Job.load(self.env(cr=cr), record.uuid)
                job.set_started()
                with _prevent_commit(cr):
                    result = job.perform()
                job.set_done(result=result)
                job.store()
        self.env.invalidate_all()

    @freeze_time("2026-03-01")
    def test_billing_day_enqueues_batches_on_the_channel_and_bills_each_period_once(self):
        subs = self._create_many_subscriptions(5, date_start="2026-03-01")
        self._run_billing()
        jobs = self._jobs()
        self.assertEqual(len(jobs), 3, "5 due subscriptions in batches of 2")
        self.assertEqual(set(jobs.mapped("channel")), {"root.subscription"})
        self.assertEqual([len(j.args[2]) for j in jobs], [2, 2, 1])
        self.assertEqual({j.args[0] for j in jobs}, {"subscription.subscription"})
        self.assertFalse(subs.invoice_ids, "the scheduled action only enqueued")
        # Run again before the jobs ran: nothing is enqueued twice.
        self._run_billing()
        self.assertEqual(len(self._jobs()), 3)
        self._perform(jobs)
        self.assertEqual(set(jobs.mapped("state")), {"done"})
        self.assertEqual(len(subs.invoice_ids), 5)
        self.assertEqual(set(subs.invoice_ids.mapped("state")), {"posted"})
        self.assertEqual(set(subs.mapped("next_invoice_date")), {date(2026, 4, 1)})
        # A job run twice (a retry, a duplicate) changes nothing the second time.
        self._perform(jobs[:1])
        self.assertEqual(len(subs.invoice_ids), 5)
        self.assertIn("nothing left to do", self._jobs()[0].result)

    @freeze_time("2026-03-01")
    def test_the_job_function_is_configured_on_the_channel_and_may_commit(self):
        self._create_many_subscriptions(1, date_start="2026-03-01")
        self._run_billing()
        function = self.env["queue.job.function"].search(
            [("name", "=", "<subscription.subscription>._subscription_job_batch")])
        self.assertEqual((function.channel, function.allow_commit), ("root.subscription", True))
        self._run_billing()
        self.assertEqual(len(function.search([("name", "=", function.name)])), 1, "created once")

    @freeze_time("2026-03-01")
    def test_turned_off_the_scheduled_action_works_alone(self):
        self.env["ir.config_parameter"].sudo().set_param("subscription_billing.queue_job", "0")
        subs = self._create_many_subscriptions(3, date_start="2026-03-01")
        self._run_billing()
        self.assertFalse(self._jobs())
        self.assertEqual(len(subs.invoice_ids), 3)

    def test_daily_statuses_go_through_jobs(self):
        """The status run enqueues its steps' batches too: overdue manual payers become past due
        (reminder e-mailed) by a job, once."""
        subs = self._create_many_subscriptions(3, date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
            self._perform(self._jobs())
        with freeze_time("2026-05-02"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
            jobs = self._jobs().filtered(lambda j: j.args[1] == "_dunning_mark_past_due")
            self.assertEqual([len(j.args[2]) for j in jobs], [3])
            self.assertEqual({j.args[3] for j in jobs}, {"_dunning_overdue_domain"})
            self.assertEqual(set(subs.mapped("state")), {"active"}, "the scheduled action only enqueued")
            self._run_cron("subscription_billing.ir_cron_update_statuses")
            self.assertEqual(len(self._jobs().filtered(lambda j: j.args[1] == "_dunning_mark_past_due")), 1,
                             "nothing enqueued twice")
            self._perform(jobs)
            self._perform(jobs[:1])  # a job run twice changes nothing the second time
        self.assertEqual(set(subs.mapped("state")), {"past_due"})
        self.assertEqual(self.MailMail.sudo().search_count([
            ("recipient_ids", "in", subs.partner_id.ids), ("subject", "ilike", "Payment overdue")]), 3)

    def test_renewal_opportunities_go_through_jobs(self):
        """A step that returns the records it made (renewal opportunities, not subscriptions)
        runs as a job like the others: one opportunity per term, the job done."""
        self.env["crm.team"].create({"name": "Renewals team", "member_ids": [(4, self.sales_user.id)]})
        sub = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01", user_id=self.sales_user.id)
        sub.auto_renew = False
        with freeze_time("2026-12-05"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
            jobs = self._jobs().filtered(lambda j: j.args[1] == "_create_renewal_leads")
            self.assertEqual(len(jobs), 1)
            self._perform(jobs)
            self._perform(jobs)  # run twice: nothing more
        self.assertEqual(jobs.state, "done")
        self.assertEqual(self.env["crm.lead"].search_count([("subscription_id", "=", sub.id)]), 1)

    def test_a_long_catch_up_continues_in_a_new_job(self):
        sub = self._create_subscription(date_start="2024-01-01")
        with freeze_time("2026-03-01"):
            self._run_billing()
            self._perform(self._jobs())
            jobs = self._jobs()
            self.assertEqual(len(jobs), 2, "24 periods per batch: the rest in a job of its own")
            self._perform(jobs[1:])
        self.assertEqual(len(sub.invoice_ids), 27, "Jan 2024 to Mar 2026, each period once")
        self.assertEqual(sub.next_invoice_date, date(2026, 4, 1))

    def test_poison_subscription_fails_alone_inside_its_job(self):
        good = self._create_many_subscriptions(1, date_start="2026-03-01")
        bad = self._create_subscription(partner=self.partner_b, date_start="2026-03-01")
        old_rate = self.env["account.tax"].create({"name": "VAT 9% (old)", "amount": 9, "type_tax_use": "sale"})
        bad.line_ids.tax_ids = old_rate
        old_rate.active = False
        with freeze_time("2026-03-01"):
            self._run_billing()
            self._perform(self._jobs())
        self.assertEqual(len(good.invoice_ids), 1)
        self.assertFalse(bad.invoice_ids)
        self.assertIn("VAT 9% (old)", bad.billing_error)
        self.assertEqual(set(self._jobs().mapped("state")), {"done"}, "the job itself succeeds")

    def test_autopay_run_through_jobs_charges_each_invoice_once(self):
        subs = self.env["subscription.subscription"]
        for i in range(3):
            partner = self.env["res.partner"].create({"name": f"Payer {i}", "email": f"payer{i}@example.com"})
            subs |= self._create_autopay_subscription("done", partner=partner, date_start="2026-03-01")
        with freeze_time("2026-03-01 10:00:00"):
            self._run_billing()
            self._perform(self._jobs())
            billing_jobs = self._jobs()
            self._run_autopay()
            charge_jobs = self._jobs() - billing_jobs
            self.assertEqual([j.args[:2] for j in charge_jobs],
                             [["account.move", "_subscription_charge_autopay"]] * 2)
            self._perform(charge_jobs)
            self._perform(charge_jobs)  # twice: a retried job never charges again
        self.assertEqual(len(subs.charge_ids), 3)
        self.assertEqual(set(subs.charge_ids.mapped("state")), {"done"})
        self.assertLessEqual(set(subs.invoice_ids.mapped("payment_state")), {"paid", "in_payment"})
        txs = self.env["payment.transaction"].search([("invoice_ids", "in", subs.invoice_ids.ids)])
        self.assertEqual(len(txs), 3)
        self.assertEqual(len(txs.payment_id), 3)

    @freeze_time("2026-03-01")
    def test_sending_job_makes_pdfs_through_jobs(self):
        subs = self._create_many_subscriptions(3, date_start="2026-03-01")
        self._run_billing()
        self._perform(self._jobs())
        before = self._jobs()
        with self.enter_registry_test_mode():
            self.env.ref("subscription_billing.ir_cron_send_invoices").method_direct_trigger()
        send_jobs = self._jobs() - before
        self.assertEqual({tuple(j.args[:2]) for j in send_jobs}, {("account.move", "_subscription_send_documents")})
        self.assertEqual(sum(len(j.args[2]) for j in send_jobs), 3)
        self.assertEqual(len(subs.invoice_ids.filtered("subscription_send")), 3, "waiting for their job")
