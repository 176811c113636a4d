from contextlib import contextmanager
from datetime import date
from unittest.mock import patch

from psycopg2.errors import UniqueViolation

from odoo.exceptions import UserError, ValidationError
from odoo.fields import Command
from odoo.tests import freeze_time, tagged
from odoo.tools import mute_logger

from .common import SubscriptionCommon


@tagged("post_install", "-at_install")
class TestBillingDay(SubscriptionCommon):
    def _invoices(self, sub):
        return self.env["account.move"].search(
            [("subscription_id", "=", sub.id)], order="subscription_period_start"
        )

    @freeze_time("2026-01-31")
    def test_the_audit_trail_is_the_stock_one_where_the_company_requires_it(self):
        """The creation message and field tracking are the legal audit trail when the company's
        restrictive audit trail is on: the billing day then keeps what Odoo's own invoicing keeps
        (and skips them elsewhere, for speed)."""
        def trail(invoice):
            self.env.cr.precommit.run()  # tracking values are written when the transaction commits
            return [(m.message_type, m.subtype_id, str(m.body), m.tracking_value_ids.field_id.mapped("name"))
                    for m in invoice.message_ids]

        plain = self._create_subscription(date_start="2026-01-31")
        self.assertEqual(trail(plain.with_context(tracking_disable=False)._bill()), [])
        self.company.restrictive_audit_trail = True
        audited = self._create_subscription(partner=self.partner_b, date_start="2026-01-31")
        ours = audited.with_context(tracking_disable=False)._bill()
        stock = self.env["account.move"].with_context(tracking_disable=False).create({
            "move_type": "out_invoice", "partner_id": self.partner_b.id, "invoice_date": "2026-01-31",
            "invoice_line_ids": [Command.create({"product_id": self.product.id, "price_unit": 12.0})]})
        stock.action_post()
        self.assertTrue(trail(ours))
        self.assertEqual(trail(ours), trail(stock), "the same audit trail as an invoice posted by hand")

    @freeze_time("2026-01-31")
    def test_monthly_invoice_posted_with_period_and_tax(self):
        sub = self._create_subscription(date_start="2026-01-31")
        self.assertEqual(sub.next_invoice_date, date(2026, 1, 31))
        self.assertEqual(sub.date_end, date(2027, 1, 30))
        self.assertEqual(sub.amount_untaxed, 12.0)
        self.assertEqual(sub.amount_tax, 1.2)
        self._run_billing()
        invoice = self._invoices(sub)
        self.assertEqual(len(invoice), 1)
        self.assertEqual(invoice.state, "posted")
        self.assertEqual(invoice.move_type, "out_invoice")
        self.assertEqual(invoice.partner_id, self.partner)
        self.assertEqual(invoice.subscription_period_start, date(2026, 1, 31))
        self.assertEqual(invoice.subscription_period_end, date(2026, 2, 27))
        self.assertEqual(invoice.amount_untaxed, 12.0)
        self.assertEqual(invoice.amount_total, 13.2)
        self.assertIn("01/31/2026 to 02/27/2026", invoice.invoice_line_ids.name)
        self.assertEqual(sub.next_invoice_date, date(2026, 2, 28))

    def test_month_end_anchoring_over_a_year(self):
        with freeze_time("2026-01-31"):
            sub = self._create_subscription(date_start="2026-01-31")
        expected = [date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)]
        for day in [date(2026, 1, 31)] + expected[:-1]:
            with freeze_time(day):
                self._run_billing()
        self.assertEqual(self._invoices(sub).mapped("subscription_period_start"), [date(2026, 1, 31)] + expected[:-1])
        self.assertEqual(sub.next_invoice_date, date(2026, 5, 31))

    @freeze_time("2026-04-15")
    def test_catch_up_one_invoice_per_missed_period(self):
        sub = self._create_subscription(date_start="2026-01-01")
        self._run_billing()
        invoices = self._invoices(sub)
        self.assertEqual(invoices.mapped("subscription_period_start"),
                         [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)])
        self.assertTrue(all(inv.state == "posted" for inv in invoices))
        self.assertEqual(sub.next_invoice_date, date(2026, 5, 1))

    @freeze_time("2026-04-15")
    def test_rerun_does_not_duplicate_invoice(self):
        sub = self._create_subscription(date_start="2026-03-01")
        self._run_billing()
        self._run_billing()
        # Moving the date back by hand over invoiced periods is refused with a readable message ...
        with self.assertRaisesRegex(ValidationError, "already invoiced"), self.env.cr.savepoint():
            sub.next_invoice_date = date(2026, 3, 1)
        # ... and even a date moved behind the ORM's back (SQL, a race) never invoices twice.
        self.env.cr.execute("UPDATE subscription_subscription SET next_invoice_date = '2026-03-01' WHERE id = %s",
                            [sub.id])
        self.env.invalidate_all()
        with mute_logger("odoo.addons.subscription_billing.models.subscription_billing", "odoo.sql_db"):
            self._run_billing()
        self.assertEqual(len(self._invoices(sub)), 2)
        self.assertIn("already invoiced", sub.billing_error, "the refused duplicate is reported, readably")
        self.assertNotIn("duplicate key", sub.billing_error)

    @freeze_time("2026-03-01")
    def test_unique_index_rejects_duplicate_written_directly(self):
        sub = self._create_subscription(date_start="2026-03-01")
        self._run_billing()
        invoice = self._invoices(sub)
        with self.assertRaises(UniqueViolation), mute_logger("odoo.sql_db"), self.env.cr.savepoint():
            self.env["account.move"].create({
                "move_type": "out_invoice",
                "partner_id": self.partner.id,
                "subscription_id": sub.id,
                "subscription_period_start": invoice.subscription_period_start,
                "invoice_line_ids": [Command.create({"name": "dup", "price_unit": 1.0})],
            })
            self.env.flush_all()

    @freeze_time("2026-01-01")
    def test_quarterly_and_yearly_amounts(self):
        quarterly = self._create_subscription(plan=self.plan_quarterly)
        yearly = self._create_subscription(plan=self.plan_yearly, partner=self.partner_b)
        self._run_billing()
        self.assertEqual(self._invoices(quarterly).amount_untaxed, 32.0)
        self.assertEqual(self._invoices(quarterly).subscription_period_end, date(2026, 3, 31))
        self.assertEqual(quarterly.next_invoice_date, date(2026, 4, 1))
        self.assertEqual(self._invoices(yearly).amount_total, 132.0)
        self.assertEqual(yearly.next_invoice_date, date(2027, 1, 1))
        self.assertAlmostEqual(quarterly.recurring_monthly, 10.67)
        self.assertAlmostEqual(yearly.recurring_monthly, 10.0)

    def test_term_end_expires_when_not_renewing(self):
        with freeze_time("2025-01-01"):
            sub = self._create_subscription(plan=self.plan_yearly, date_start="2025-01-01")
            self._run_billing()
        self.assertEqual(sub.date_end, date(2025, 12, 31))
        with freeze_time("2026-01-01"):
            self._run_billing()
        self.assertEqual(sub.state, "expired")
        self.assertEqual(sub.close_reason_id, self.env.ref("subscription_billing.close_reason_expired"))
        self.assertEqual(len(self._invoices(sub)), 1, "no invoice after the term")

    def test_term_end_renews_when_auto_renew(self):
        with freeze_time("2025-01-01"):
            sub = self._create_subscription(plan=self.plan_quarterly, date_start="2025-01-01")
        self.assertTrue(sub.auto_renew)
        with freeze_time("2026-01-01"):
            self._run_billing()
        self.assertEqual(sub.state, "active")
        self.assertEqual(sub.date_end, date(2026, 12, 31))
        self.assertEqual(len(self._invoices(sub)), 5)
        self.assertEqual(sub.next_invoice_date, date(2026, 4, 1))

    @freeze_time("2026-02-01")
    def test_failing_subscription_is_logged_and_others_billed(self):
        good = self._create_subscription(date_start="2026-02-01")
        bad = self._create_subscription(partner=self.partner_b, date_start="2026-02-01")
        original = type(bad)._prepare_invoice_vals

        def prepare(sub, *args, **kwargs):
            if sub == bad:
                raise UserError(sub.env._("No income account for this product"))
            return original(sub, *args, **kwargs)

        with patch.object(type(bad), "_prepare_invoice_vals", prepare), \
                mute_logger("odoo.addons.subscription_billing.models.subscription_billing"):
            self._run_billing()
        self.assertEqual(len(self._invoices(good)), 1)
        self.assertEqual(good.next_invoice_date, date(2026, 3, 1))
        self.assertFalse(self._invoices(bad))
        self.assertEqual(bad.next_invoice_date, date(2026, 2, 1), "date not moved without invoice")
        self.assertEqual(bad.billing_failed_on, date(2026, 2, 1))
        self.assertIn("No income account", bad.billing_error)
        self.assertTrue(bad.activity_ids, "the salesperson gets an activity")
        # Parked for the day: a rerun the same day leaves it alone, the next day retries it.
        self._run_billing()
        self.assertFalse(self._invoices(bad))
        with freeze_time("2026-02-02"):
            self._run_billing()
        self.assertEqual(len(self._invoices(bad)), 1)
        self.assertFalse(bad.billing_error)

    def test_a_failure_episode_has_one_activity_closed_once_billed(self):
        sub = self._create_subscription(partner=self.partner_b, date_start="2026-02-01")
        original = type(sub)._prepare_invoice_vals
        broken = {"on": True}

        def prepare(rec, *args, **kwargs):
            if broken["on"]:
                raise UserError(rec.env._("No income account for this product"))
            return original(rec, *args, **kwargs)

        activity_type = self.env.ref("subscription_billing.mail_activity_type_billing_failed")
        with patch.object(type(sub), "_prepare_invoice_vals", prepare), \
                mute_logger("odoo.addons.subscription_billing.models.subscription_billing"):
            for day in ("2026-02-01", "2026-02-02", "2026-02-03"):
                with freeze_time(day):
                    self._run_billing()
                open_activities = sub.activity_ids.filtered(lambda a: a.activity_type_id == activity_type)
                self.assertEqual(len(open_activities), 1, f"one activity for the whole episode ({day})")
                self.assertEqual(open_activities.user_id, sub.user_id)
            broken["on"] = False
            with freeze_time("2026-02-04"):
                self._run_billing()
        self.assertEqual(len(self._invoices(sub)), 1)
        self.assertFalse(sub.activity_ids.filtered(lambda a: a.activity_type_id == activity_type),
                         "billing again closes the episode's activity")
        done = self.env["mail.message"].search([
            ("model", "=", sub._name), ("res_id", "=", sub.id), ("mail_activity_type_id", "=", activity_type.id),
        ])
        self.assertEqual(len(done), 1, "marked done once, with its feedback")
        # A new failure later is a new episode with a new activity.
        broken["on"] = True
        with patch.object(type(sub), "_prepare_invoice_vals", prepare), freeze_time("2026-03-01"), \
                mute_logger("odoo.addons.subscription_billing.models.subscription_billing"):
            self._run_billing()
        self.assertEqual(len(sub.activity_ids.filtered(lambda a: a.activity_type_id == activity_type)), 1)

    @freeze_time("2026-02-01")
    def test_invoice_mail_queued_with_portal_link(self):
        sub = self._create_subscription(date_start="2026-02-01")
        self._run_billing()
        self._run_sending()
        invoice = self._invoices(sub)
        mail = self.env["mail.mail"].search([("model", "=", "account.move"), ("res_id", "=", invoice.id)])
        self.assertEqual(len(mail), 1)
        self.assertEqual(mail.recipient_ids, self.partner)
        self.assertEqual(mail.state, "outgoing")
        self.assertTrue(invoice.access_token)
        self.assertIn(f"/my/invoices/{invoice.id}?access_token={invoice.access_token}", mail.body_html)
        self.assertTrue(invoice.is_move_sent)
        # The link opens the invoice without login (portal access by token).
        self.assertEqual(invoice.get_portal_url(), f"/my/invoices/{invoice.id}?access_token={invoice.access_token}")

    @freeze_time("2026-02-10")
    def test_generate_invoice_now_bills_next_period_once(self):
        sub = self._create_subscription(date_start="2026-02-01")
        self._run_billing()
        self.assertEqual(sub.next_invoice_date, date(2026, 3, 1))
        sub.action_generate_invoice()
        invoices = self._invoices(sub)
        self.assertEqual(invoices.mapped("subscription_period_start"), [date(2026, 2, 1), date(2026, 3, 1)])
        self.assertEqual(sub.next_invoice_date, date(2026, 4, 1))
        self._run_billing()
        self.assertEqual(len(self._invoices(sub)), 2)

    @freeze_time("2026-02-10")
    def test_no_invoice_for_suspended_draft_or_cancelled(self):
        suspended = self._create_subscription(date_start="2026-02-01")
        suspended.action_suspend()
        draft = self._create_subscription(date_start="2026-02-01", start=False)
        cancelled = self._create_subscription(date_start="2026-02-01")
        cancelled.action_cancel()
        self._run_billing()
        for sub in suspended | draft | cancelled:
            self.assertFalse(self._invoices(sub))
        with self.assertRaisesRegex(UserError, "only active or past due"):
            suspended.action_generate_invoice()


@tagged("post_install", "-at_install")
class TestBillingDetails(SubscriptionCommon):
    @freeze_time("2026-05-01")
    def test_small_batches_commit_and_finish(self):
        self.env["ir.config_parameter"].set_param("subscription_billing.batch_size", 2)
        subs = self._create_many_subscriptions(5, date_start="2026-05-01")
        self._run_billing()
        self.assertEqual(len(subs.invoice_ids), 5)
        self.assertEqual(set(subs.mapped("next_invoice_date")), {date(2026, 6, 1)})

    @freeze_time("2026-05-01")
    def test_payment_term_and_fiscal_position_on_invoice(self):
        term = self.env["account.payment.term"].create({
            "name": "30 days (test)",
            "line_ids": [Command.create({"value": "percent", "value_amount": 100, "nb_days": 30})],
        })
        self.plan_monthly.payment_term_id = term
        tax_export = self.env["account.tax"].create({
            "name": "Export 0% (test)", "amount": 0.0, "type_tax_use": "sale",
            "original_tax_ids": [Command.set(self.tax.ids)],
        })
        fpos = self.env["account.fiscal.position"].create({
            "name": "Export (test)", "tax_ids": [Command.set(tax_export.ids)],
        })
        self.partner_b.property_account_position_id = fpos
        sub = self._create_subscription(partner=self.partner_b, date_start="2026-05-01")
        self.assertEqual(sub.fiscal_position_id, fpos)
        self.assertEqual(sub.line_ids.tax_ids, tax_export)
        self.assertEqual(sub.amount_total, 12.0)
        sub.action_generate_invoice()
        invoice = sub.invoice_ids
        self.assertEqual(invoice.invoice_payment_term_id, term)
        self.assertEqual(invoice.invoice_date_due, date(2026, 5, 31))
        self.assertEqual(invoice.fiscal_position_id, fpos)
        self.assertEqual(invoice.amount_total, 12.0)

    def test_mrr_in_company_currency(self):
        other = self.env["res.currency"].with_context(active_test=False).search(
            [("id", "!=", self.currency.id)], limit=1)
        other.active = True
        self.env["res.currency.rate"].create({"currency_id": other.id, "rate": 2.0, "name": "2020-01-01",
                                              "company_id": self.company.id})
        sub = self._create_subscription(plan=self.plan_quarterly, start=False, currency_id=other.id)
        self.assertEqual(sub.currency_id, other)
        self.assertEqual(sub.line_ids.price_unit, 64.0, "32.00 converted at 2 units per company unit")
        sub.action_start()
        # 64.00 per quarter in the other currency = 32.00 per quarter = 10.67 per month in company currency
        self.assertAlmostEqual(sub.recurring_monthly, 10.67, places=2)

    @freeze_time("2026-05-01")
    def test_crash_mid_run_keeps_committed_batches_and_rerun_resumes(self):
        self.env["ir.config_parameter"].set_param("subscription_billing.batch_size", 2)
        subs = self._create_many_subscriptions(5, date_start="2026-05-01")
        Sub = type(subs)
        original = Sub._bill
        calls = []

        def crashing_bill(records, *args, **kwargs):
            calls.append(len(records))
            if len(calls) >= 2:
                raise MemoryError("worker killed")  # every batch after the first dies half-way
            return original(records, *args, **kwargs)

        with patch.object(Sub, "_bill", crashing_bill), \
                mute_logger("odoo.addons.base.models.ir_cron",
                            "odoo.addons.subscription_billing.models.subscription_billing"):
            self._run_billing()
        self.assertEqual(len(subs.invoice_ids), 2, "the first batch was committed, the second rolled back")
        self._run_billing()
        self.assertEqual(len(subs.invoice_ids), 5)
        self.assertEqual(set(subs.invoice_ids.mapped("subscription_period_start")), {date(2026, 5, 1)})
        self.assertEqual(set(subs.mapped("next_invoice_date")), {date(2026, 6, 1)})


@tagged("post_install", "-at_install")
class TestWorkerLimits(SubscriptionCommon):
    """A scheduled action hands over to its next run before Odoo's worker limits could kill it."""

    def test_a_job_stops_taking_batches_once_its_share_of_the_limits_is_used(self):
        import time

        from odoo.addons.base.models.ir_cron import MIN_TIME_PER_JOB
        from odoo.addons.subscription_billing.tools import batch

        subs = self._create_many_subscriptions(3, date_start="2026-01-01")
        Sub = self.env["subscription.subscription"]
        limits = {"limit_time_cpu": 60, "limit_time_real": 120, "limit_time_real_cron": -1}
        with patch.dict(batch.config.options, limits):
            self.assertIsNone(batch.job_budget_end(self.env), "outside a scheduled action: no budget")
            started = time.monotonic()
            env = self.env(context=dict(self.env.context, cron_end_time=started + MIN_TIME_PER_JOB))
            self.assertAlmostEqual(batch.job_budget_end(env), started + 30, delta=0.01,
                                   msg="half of the smallest limit (60 s of CPU) from the job's start")
            used_up = self.env(context=dict(self.env.context, cron_end_time=started + MIN_TIME_PER_JOB - 31))
            reported = []
            Cron = type(self.env["ir.cron"])
            with freeze_time("2026-01-01"), patch.object(
                    Cron, "_commit_progress", lambda cron, processed=0, **kw: reported.append(kw) or 60.0):
                done = batch.process_in_locked_batches(Sub.with_env(used_up), Sub._billable_domain(), "_bill", 1)
            self.assertEqual(reported, [{"remaining": 3}], "what is left is reported: Odoo runs it again at once")
            reported.clear()
            with freeze_time("2026-01-01"), patch.object(
                    Cron, "_commit_progress", lambda cron, processed=0, **kw: reported.append(kw) or 60.0):
                batch.process_in_locked_batches(Sub.with_env(used_up), Sub._resume_due_domain(), "_resume_due_batch", 1)
            self.assertEqual(reported, [{"remaining": 1}],
                             "a step with nothing left still asks for a rerun: the billing after it has work")
            self.assertFalse(done, "the next run goes on")
            self.assertFalse(subs.invoice_ids, "no batch started past the budget")
        with patch.dict(batch.config.options, {"limit_time_cpu": 0, "limit_time_real": 0,
                                               "limit_time_real_cron": 0}):
            self.assertIsNone(batch.job_budget_end(env), "no limits, no budget")


@tagged("post_install", "-at_install")
class TestLockedBatches(SubscriptionCommon):
    """A batch holds locks only on the records it processes."""

    @contextmanager
    def _taken_meanwhile(self, taken):
        """Another worker takes ``taken`` (and commits) just before the first lock; yields the
        events seen: ("lock", ids locked), ("commit",), and whatever the caller adds."""
        SubClass, Cron = type(self.env["subscription.subscription"]), type(self.env["ir.cron"])
        original_lock = SubClass.try_lock_for_update
        events = []

        def lock(records, *args, **kwargs):
            if not any(event[0] == "lock" for event in events):
                taken.billing_failed_on = "2026-01-01"
            locked = original_lock(records, *args, **kwargs)
            events.append(("lock", set(locked.ids)))
            return locked

        def commit(cron, processed=0, **kwargs):
            events.append(("commit",))
            return 60.0

        with freeze_time("2026-01-01"), patch.object(SubClass, "try_lock_for_update", lock), \
                patch.object(Cron, "_commit_progress", commit):
            yield events

    def test_a_batch_keeps_no_lock_on_records_another_worker_took_meanwhile(self):
        from odoo.addons.subscription_billing.tools import batch

        subs = self._create_many_subscriptions(4, date_start="2026-01-01")
        taken, rest = subs[:2], subs[2:]
        Sub = self.env["subscription.subscription"]
        original_bill = type(Sub)._bill
        with self._taken_meanwhile(taken) as events:
            def bill(records):
                events.append(("bill", set(records.ids)))
                return original_bill(records)

            with patch.object(type(Sub), "_bill", bill):
                batch.process_in_locked_batches(Sub, Sub._billable_domain(), "_bill", 10)
        first = next(i for i, event in enumerate(events) if event[0] == "lock")
        self.assertEqual(events[first:first + 4], [
            ("lock", set(subs.ids)),  # the two taken ones were free to lock: the other worker committed
            ("commit",),  # released at once, not held while the batch is processed
            ("lock", set(rest.ids)),
            ("bill", set(rest.ids)),
        ])
        self.assertEqual(len(rest.invoice_ids), 2)
        self.assertFalse(taken.invoice_ids, "left to the worker that took them")

    def test_a_worker_whose_locked_rows_were_all_taken_meanwhile_looks_again(self):
        from odoo.addons.subscription_billing.tools import batch

        subs = self._create_many_subscriptions(4, date_start="2026-01-01")
        taken, rest = subs[:2], subs[2:]
        Sub = self.env["subscription.subscription"]
        with self._taken_meanwhile(taken) as events:
            done = batch.process_in_locked_batches(Sub, Sub._billable_domain(), "_bill", 2)
        self.assertEqual(next(event for event in events if event[0] == "lock"), ("lock", set(taken.ids)))
        self.assertTrue(done)
        self.assertEqual(len(rest.invoice_ids), 2, "the worker went on with the other candidates instead of stopping")
        self.assertFalse(taken.invoice_ids)

    def test_a_queue_job_keeps_no_lock_on_records_taken_since_it_was_enqueued(self):
        subs = self._create_many_subscriptions(4, date_start="2026-01-01")
        taken, rest = subs[:2], subs[2:]
        Sub = self.env["subscription.subscription"]
        with self._taken_meanwhile(taken) as events:
            summary = Sub._subscription_job_batch("subscription.subscription", "_bill", subs.ids, "_billable_domain")
        self.assertEqual(events[:3], [("lock", set(subs.ids)), ("commit",), ("lock", set(rest.ids))])
        self.assertIn("2 processed", summary)
        self.assertEqual(len(rest.invoice_ids), 2)
        self.assertFalse(taken.invoice_ids)


@tagged("post_install", "-at_install")
class TestPoisonRecords(SubscriptionCommon):
    """A subscription whose data Odoo would refuse (or bill wrongly) fails alone, with a reason its
    salesperson can act on, and the rest of the batch is billed in one go."""

    def _poisoned(self):
        """Three subscriptions, one per kind of poison, and two good ones around them."""
        good = self._create_many_subscriptions(2, date_start="2026-02-01")
        income = self.env["account.account"].search([
            *self.env["account.account"]._check_company_domain(self.company), ("account_type", "=", "income")], limit=1)
        wrong_account = self.env["res.partner"].create({"name": "Carla Wrong Account", "email": "carla@example.com"})
        wrong_account.with_company(self.company).property_account_receivable_id = income
        no_receivable = self._create_subscription(partner=wrong_account, date_start="2026-02-01")
        old_product = self.env["product.product"].create({
            "name": "Print edition", "type": "service", "recurring_invoice": True, "list_price": 5.0,
            "taxes_id": [Command.set(self.tax.ids)],
        })
        archived_product = self._create_subscription(partner=self.partner_b, date_start="2026-02-01")
        archived_product.line_ids.product_id = old_product
        old_product.action_archive()
        old_rate = self.env["account.tax"].create({"name": "VAT 9% (until 2025)", "amount": 9, "type_tax_use": "sale"})
        withdrawn_tax = self._create_subscription(date_start="2026-02-01")
        withdrawn_tax.line_ids.tax_ids = old_rate
        old_rate.active = False
        return good, no_receivable, archived_product, withdrawn_tax

    @freeze_time("2026-02-01")
    def test_each_poison_fails_alone_with_its_reason_and_an_activity(self):
        good, no_receivable, archived_product, withdrawn_tax = self._poisoned()
        Sub = type(good)
        one_by_one = []
        original = Sub._bill_apply

        def spy(subs, plans):
            one_by_one.append(len(subs))
            return original(subs, plans)

        with patch.object(Sub, "_bill_apply", spy), \
                mute_logger("odoo.addons.subscription_billing.models.subscription_billing"):
            self._run_billing()
        self.assertEqual(one_by_one, [2], "the good ones are billed in one go, never one by one")
        self.assertEqual(good.invoice_ids.mapped("state"), ["posted", "posted"])
        self.assertEqual(set(good.mapped("next_invoice_date")), {date(2026, 3, 1)})
        activity_type = self.env.ref("subscription_billing.mail_activity_type_billing_failed")
        expected = {
            no_receivable: "The receivable account of Carla Wrong Account",
            archived_product: "Print edition is archived",
            withdrawn_tax: "The tax VAT 9% (until 2025) on Trendhouse Weekly (test) is archived",
        }
        for sub, reason in expected.items():
            self.assertFalse(sub.invoice_ids, "nothing invoiced")
            self.assertEqual(sub.next_invoice_date, date(2026, 2, 1), "date not moved")
            self.assertIn(reason, sub.billing_error)
            self.assertEqual(sub.billing_failed_on, date(2026, 2, 1))
            activity = sub.activity_ids.filtered(lambda a, t=activity_type: a.activity_type_id == t)
            self.assertEqual(len(activity), 1)
            self.assertIn(reason, str(activity.note))
            self.assertIn(reason, sub.message_ids[0].body, "told in the chatter")
        self.assertIn("is not a receivable account", no_receivable.billing_error)
        # Corrected, each bills the next day and its activity is closed.
        no_receivable.partner_id.with_company(self.company).property_account_receivable_id = \
            self.company.partner_id.property_account_receivable_id
        archived_product.line_ids.product_id = self.product
        withdrawn_tax.line_ids.tax_ids = self.tax
        with freeze_time("2026-02-02"):
            self._run_billing()
        for sub in expected:
            self.assertEqual(len(sub.invoice_ids), 1)
            self.assertFalse(sub.billing_error)
            self.assertFalse(sub.activity_ids.filtered(lambda a: a.activity_type_id == activity_type))

    @freeze_time("2026-02-01")
    def test_archived_receivable_account_and_foreign_or_purchase_tax(self):
        receivable = self.env["account.account"].create({
            "name": "Old receivables", "code": "411999", "account_type": "asset_receivable", "reconcile": True})
        partner = self.env["res.partner"].create({"name": "Dora Archived"})
        partner.with_company(self.company).property_account_receivable_id = receivable
        receivable.active = False
        archived = self._create_subscription(partner=partner, date_start="2026-02-01")
        purchase_tax = self.env["account.tax"].create({"name": "Input VAT", "amount": 10, "type_tax_use": "purchase"})
        purchase = self._create_subscription(date_start="2026-02-01")
        purchase.line_ids.tax_ids = purchase_tax
        with mute_logger("odoo.addons.subscription_billing.models.subscription_billing"):
            self._run_billing()
        self.assertIn("Old receivables", archived.billing_error)
        self.assertIn("is archived", archived.billing_error)
        self.assertIn("Input VAT", purchase.billing_error)
        self.assertIn("is not a sales tax", purchase.billing_error)
        self.assertFalse((archived | purchase).invoice_ids)

    @freeze_time("2026-02-01")
    def test_generate_invoice_now_says_why_instead_of_billing(self):
        _good, _no_receivable, archived_product, _withdrawn = self._poisoned()
        with self.assertRaisesRegex(UserError, "Print edition is archived"):
            archived_product.action_generate_invoice()
        self.assertFalse(archived_product.invoice_ids)

    @freeze_time("2026-02-01")
    def test_a_database_error_stops_the_run_instead_of_blaming_subscriptions(self):
        from psycopg2.errors import SerializationFailure

        subs = self._create_many_subscriptions(3, date_start="2026-02-01")
        Sub = type(subs)

        def conflict(records, plans):
            raise SerializationFailure("could not serialize access due to concurrent update")

        with patch.object(Sub, "_bill_apply", conflict), self.assertRaises(SerializationFailure):
            subs._bill()
        self.assertFalse(subs.filtered("billing_error"), "no subscription is blamed for the database's error")
        self.assertFalse(subs.activity_ids)

    def test_a_database_error_while_sending_is_not_told_on_the_invoice(self):
        from psycopg2.errors import SerializationFailure

        subs = self._create_many_subscriptions(2, date_start="2026-02-01")
        with freeze_time("2026-02-01"):
            self._run_billing()
        invoices = subs.invoice_ids
        Send = type(self.env["account.move.send"])
        with patch.object(Send, "_generate_and_send_invoices", side_effect=SerializationFailure("concurrent update")), \
                self.assertRaises(SerializationFailure):
            invoices.sudo()._subscription_generate_and_send(email=False)
        self.assertFalse(invoices.message_ids.filtered(lambda m: "could not be made" in (m.body or "")),
                         "no raw database error in the invoices' chatter")

    def test_which_database_errors_stop_the_run(self):
        import psycopg2
        from psycopg2 import errors

        from odoo.addons.subscription_billing.tools import is_transient_db_error

        for error in (errors.SerializationFailure(), errors.DeadlockDetected(), errors.LockNotAvailable(),
                      psycopg2.InterfaceError("connection already closed"), errors.AdminShutdown(),
                      psycopg2.OperationalError("server closed the connection unexpectedly")):
            self.assertTrue(is_transient_db_error(error), error)
        # A statement timeout or a resource limit may be the record's doing: it fails that subscription alone.
        for error in (errors.QueryCanceled(), errors.ProgramLimitExceeded(), UserError("no income account"),
                      errors.UniqueViolation()):
            self.assertFalse(is_transient_db_error(error), error)
