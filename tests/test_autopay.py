from datetime import date
from unittest.mock import patch

from psycopg2.errors import UniqueViolation

from odoo import Command
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import Form, freeze_time, new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.account.models.account_payment import AccountPayment as StockPayment

from ..tools import CompiledTemplates
from .autopay_common import AutopayCommon

MUTED = ("odoo.addons.base.models.ir_cron", "odoo.addons.subscription_billing.models.subscription_charge",
         "odoo.addons.payment.models.payment_transaction", "odoo.addons.payment_demo.models.payment_transaction")


@tagged("post_install", "-at_install")
class TestAutopayOutcomes(AutopayCommon):

    def test_success_pays_and_reconciles_the_invoice_and_sends_a_receipt(self):
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        invoice = sub.invoice_ids
        self.assertEqual(len(invoice), 1)
        self._assert_paid(invoice)
        charge = sub.charge_ids
        self.assertEqual((charge.state, charge.attempt, charge.amount), ("done", 1, 13.2))
        tx = charge.transaction_id
        self.assertEqual((tx.state, tx.operation, tx.token_id), ("done", "offline", sub.payment_token_id))
        self.assertEqual(tx.invoice_ids, invoice)
        self.assertEqual(tx.payment_id.state, "paid")
        self.assertFalse(invoice.subscription_charge_date)
        self.assertEqual(sub.state, "active")
        receipt = self._mails_to(self.partner, "received, thank you")
        self.assertEqual(len(receipt), 1)
        self.assertIn("4242", receipt.body_html)
        self.assertFalse(self._mails_to(self.partner, "for your subscription"),
                         "an autopay customer gets the receipt, not the invoice to pay")
        # Rerunning charges nothing more.
        with freeze_time("2026-05-01"):
            self._run_autopay()
        self.assertEqual(len(sub.charge_ids), 1)

    def test_payments_made_together_are_those_odoo_makes_one_by_one(self):
        """Paid charges of a run get their payments created, posted and reconciled together: each
        is, field by field and journal item by journal item, what Odoo's own per-transaction
        post-processing makes for a charge paid alone."""
        together = self._create_autopay_subscription("done", date_start="2026-05-01") \
            | self._create_autopay_subscription("done", partner=self.partner_b, date_start="2026-05-01")
        Tx = type(self.env["payment.transaction"])
        batched = []
        original = Tx._subscription_create_payments

        def spy(txs):
            batched.append(len(txs))
            return original(txs)

        with patch.object(Tx, "_subscription_create_payments", spy):
            self._bill_and_charge("2026-05-01")
        self.assertEqual(batched, [2], "the two paid charges' payments were made together")
        alone_partner = self.env["res.partner"].create({"name": "Cleo Alone", "email": "cleo@example.com"})
        alone = self._create_autopay_subscription("done", partner=alone_partner, date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            invoice = alone._bill()
            charge = self.Charge._create_for_invoices(invoice)
            charge._send()
            with patch.object(type(charge.transaction_id), "_subscription_create_payments",
                              side_effect=AssertionError("one transaction: Odoo's own path")):
                charge.transaction_id._post_process()
        stock = charge.transaction_id.payment_id

        def shape(payment):
            return {
                "payment": (payment.amount, payment.payment_type, payment.partner_type, payment.journal_id,
                            payment.payment_method_line_id, payment.destination_account_id,
                            payment.state, payment.is_reconciled, payment.currency_id,
                            payment.memo == f"{payment.payment_transaction_id.reference} - "
                                            f"{payment.payment_transaction_id.provider_reference or ''}"),
                "lines": sorted((line.account_id.id, line.debit, line.credit, line.reconciled)
                                for line in payment.move_id.line_ids),
            }

        for sub in together:
            payment = sub.charge_ids.transaction_id.payment_id
            self.assertTrue(payment, "one payment per paid charge")
            self.assertEqual((payment.partner_id, payment.payment_token_id),
                             (sub.partner_id.commercial_partner_id, sub.payment_token_id))
            self.assertEqual(payment.invoice_ids, sub.invoice_ids)
            self.assertEqual(shape(payment), shape(stock))
            self._assert_paid(sub.invoice_ids)
        self._assert_paid(invoice)
        self.assertEqual(len(together.charge_ids.transaction_id.payment_id.move_id.mapped("name")), 2,
                         "numbered one by one in the journal")

    def test_payments_are_linked_to_their_entries_without_a_reconciliation_query_each(self):
        """Odoo asks, at each payment's link to its new journal entry, which invoices the payment is
        reconciled with (two SQL queries per payment): a run's payments get the same answer without
        them while nothing is reconciled, and Odoo's compute once the reconciliation is made."""
        subs = self._create_autopay_subscription("done", date_start="2026-05-01")
        for name in ("Cleo Batch", "Dan Batch"):
            partner = self.env["res.partner"].create({"name": name, "email": f"{name.split()[0].lower()}@example.com"})
            subs |= self._create_autopay_subscription("done", partner=partner, date_start="2026-05-01")
        original = StockPayment._compute_stat_buttons_from_reconciliation
        asked = []

        def spy(payments):
            asked.append(len(payments))
            return original(payments)

        with patch.object(StockPayment, "_compute_stat_buttons_from_reconciliation", spy):
            self._bill_and_charge("2026-05-01")
        payments = subs.charge_ids.transaction_id.payment_id
        self.assertEqual(len(payments), 3)
        # Once when the payments are created and once when they are reconciled, for the three
        # together; Odoo's link of each payment to its entry asked twice per payment (6 more).
        self.assertLessEqual(sum(asked), 6, asked)
        for payment in payments:
            self.assertEqual(payment.reconciled_invoice_ids, payment.payment_transaction_id.invoice_ids)
            self.assertEqual(payment.state, "paid")
            self._assert_paid(payment.reconciled_invoice_ids)

    def test_the_reconciliation_shortcut_gives_what_odoos_compute_gives(self):
        """Payments whose journal items are not reconciled (an invoice's, a credit note's, none, a
        draft without entry) and reconciled ones: the shortcut's values are Odoo's, field by field."""
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        reconciled = sub.charge_ids.transaction_id.payment_id
        invoice = sub.invoice_ids
        refund = invoice._reverse_moves([{"invoice_date": date(2026, 5, 2)}])
        refund.action_post()
        journal = self.env["account.journal"].search(
            [("type", "=", "bank"), ("company_id", "=", self.company.id)], limit=1)
        Payment = self.env["account.payment"]
        base = {"partner_id": self.partner.id, "partner_type": "customer", "journal_id": journal.id, "amount": 13.2}
        plain = Payment.create([
            dict(base, payment_type="inbound", invoice_ids=[Command.set(invoice.ids)]),
            dict(base, payment_type="outbound", invoice_ids=[Command.set(refund.ids)]),
            dict(base, payment_type="inbound"),
            dict(base, payment_type="inbound", invoice_ids=[Command.set((invoice | refund).ids)]),
            dict(base, payment_type="outbound"),
        ])
        plain.action_post()
        # Reconciled with the credit note without naming it: only Odoo's query finds it.
        matched = plain[4]
        refund.js_assign_outstanding_line(matched.move_id.line_ids.filtered(
            lambda line: line.account_id == matched.destination_account_id).id)
        draft = Payment.create(dict(base, payment_type="inbound", invoice_ids=[Command.set(invoice.ids)]))
        fields = ["reconciled_invoice_ids", "reconciled_invoices_count", "reconciled_invoices_type",
                  "reconciled_bill_ids", "reconciled_bills_count", "reconciled_statement_line_ids",
                  "reconciled_statement_lines_count"]
        payments = reconciled | plain | draft

        def values(records):
            records.invalidate_recordset(fields)
            return [[(record[name].ids if name.endswith("_ids") else record[name]) for name in fields]
                    for record in records]

        stock = values(payments)
        self.assertEqual(stock[2][:3], [refund.ids, 1, "credit_note"])
        self.assertEqual(stock[0][:2], [invoice.ids, 1])
        self.assertEqual(stock[4][:3], [(invoice | refund).ids, 2, "invoice"])
        self.assertEqual(stock[5][:3], [refund.ids, 1, "credit_note"], "found through the reconciliation")
        self.assertEqual(values(payments.with_context(subscription_batch_payments=True)), stock)

    def _payment_notes(self, sub):
        """Odoo's payment messages on ``sub``'s invoices, in order, by their key word."""
        messages = sub.invoice_ids.message_ids.sorted("id").filtered(
            lambda m: "transaction" in str(m.body) and m.subtype_id == self.env.ref("mail.mt_note"))
        # Internal notes (hidden from the portal), as Odoo's message_post of a note.
        self.assertTrue(all(m.subtype_id.internal and m.message_type == "notification" for m in messages))
        self.assertEqual(len(messages.author_id), 1)
        return [next(word for word in ("initiated", "confirmed", "posted", "pending", "error")
                     if word in str(m.body)) for m in messages]

    def test_a_webhook_settling_a_charge_before_its_run_keeps_every_message(self):
        """Stripe's webhook often settles a charge before the run post-processes it: every message
        is there once all the same, and the run then leaves the charge alone."""
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            charge = self.Charge._create_for_invoices(sub._bill())
            charge._send()  # the run's call; its post-processing comes later
            tx = charge.transaction_id
            tx._process("demo", {"reference": tx.reference, "simulated_state": "done"})  # the webhook
            self.assertEqual(charge.state, "done")
            charge._sync_from_transaction(skip_locked=True)  # the run's turn: nothing left to do
        self.assertEqual(self._payment_notes(sub), ["initiated", "confirmed", "posted"])
        self.assertEqual(len(tx.payment_id), 1)
        self.assertEqual(len(self._mails_to(self.partner, "received, thank you")), 1)

    def test_the_provider_call_leaves_odoos_messages_to_the_post_processing(self):
        """The provider call's own transaction neither builds nor logs Odoo's payment messages
        (every record is read cold there): the charge keeps the call's state, and its
        post-processing logs the messages, in order, once."""
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        Tx = type(self.env["payment.transaction"])
        built = []
        sent, received = Tx._get_sent_message, Tx._get_received_message

        def building_sent(tx):
            built.append("sent")
            return sent(tx)

        def building_received(tx):
            built.append("received")
            return received(tx)

        with freeze_time("2026-05-01"), patch.object(Tx, "_get_sent_message", building_sent), \
                patch.object(Tx, "_get_received_message", building_received):
            charge = self.Charge._create_for_invoices(sub._bill())
            charge._send()
            self.assertEqual((built, charge.call_state, charge.transaction_id.state), ([], "done", "done"))
            self.assertFalse(sub.invoice_ids.message_ids.filtered(lambda m: "transaction" in str(m.body)),
                             "nothing logged by the call")
            charge._sync_from_transaction(skip_locked=True)  # the run's post-processing
        self.assertEqual(built, ["sent", "received"])
        self.assertEqual(self._payment_notes(sub), ["initiated", "confirmed", "posted"])
        self.assertFalse(charge.call_state)
        charge._sync_from_transaction()  # nothing more to log
        self.assertEqual(self._payment_notes(sub), ["initiated", "confirmed", "posted"])

    def test_an_answer_arriving_after_the_call_comes_after_the_calls_messages(self):
        """The call left the transaction pending; the webhook confirming it comes before the run's
        post-processing: the call's messages (initiated, pending) come first, then Odoo's own."""
        sub = self._create_autopay_subscription("pending", date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            charge = self.Charge._create_for_invoices(sub._bill())
            charge._send()
            self.assertEqual(charge.call_state, "pending")
            tx = charge.transaction_id
            tx._process("demo", {"reference": tx.reference, "simulated_state": "done"})  # the webhook
            charge._sync_from_transaction(skip_locked=True)  # the run's turn: nothing left to do
        self.assertEqual(charge.state, "done")
        self.assertEqual(self._payment_notes(sub), ["initiated", "pending", "confirmed", "posted"])

    def test_odoos_own_post_processing_before_the_run_comes_after_the_calls_messages(self):
        """Odoo's post-processing cron may post a paid charge's payment before the run does, and a
        call that failed unexpectedly is still said initiated: the call's messages come first."""
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            charge = self.Charge._create_for_invoices(sub._bill())
            charge._send()
            tx = charge.transaction_id
            tx._post_process()  # what Odoo's "post-process transactions" cron does with it
            charge._sync_from_transaction(skip_locked=True)  # the run's turn
        self.assertEqual((charge.state, len(tx.payment_id)), ("done", 1))
        self.assertEqual(self._payment_notes(sub), ["initiated", "confirmed", "posted"])

        failing = self._create_autopay_subscription("done", partner=self.partner_b, date_start="2026-05-01")
        Tx = type(self.env["payment.transaction"])
        with freeze_time("2026-05-01"), mute_logger(*MUTED), \
                patch.object(Tx, "_send_payment_request", side_effect=RuntimeError("connection reset")):
            charge = self.Charge._create_for_invoices(failing._bill())
            charge._send()
            self.assertEqual((charge.call_state, charge.needs_review), ("draft", True))
            charge._sync_from_transaction(skip_locked=True)
        self.assertEqual(self._payment_notes(failing), ["initiated"])

    def test_a_charge_settled_by_hand_keeps_the_calls_message_first(self):
        """The provider never answered the call (transaction still a draft, charge in review);
        staff mark it paid or failed: the call's message comes before what that logs."""
        Tx = type(self.env["payment.transaction"])
        for action, notes in (("action_mark_paid", ["initiated", "confirmed", "posted"]),
                              ("action_mark_failed", ["initiated", "error"])):
            with self.subTest(action=action), freeze_time("2026-05-01"):
                partner = self.env["res.partner"].create({"name": action})
                sub = self._create_autopay_subscription("done", partner=partner, date_start="2026-05-01")
                charge = self.Charge._create_for_invoices(sub._bill())
                with patch.object(Tx, "_send_payment_request", lambda tx: None):  # no answer
                    charge._send()
                self.assertEqual((charge.call_state, charge.transaction_id.state), ("draft", "draft"))
                charge._mark_review("No answer from the provider.")
                getattr(charge, action)()
                self.assertEqual(self._payment_notes(sub), notes)

    def test_receipts_of_a_run_are_compiled_once_and_read_as_odoo_renders_them(self):
        """A batch of receipts compiles the template's body once (``tools.CompiledTemplates``),
        not once per charge as Odoo does for a body held as text, and each receipt reads what
        Odoo's own rendering gives for its charge."""
        subs = self._create_autopay_subscription("done", date_start="2026-05-01") \
            | self._create_autopay_subscription("done", partner=self.partner_b, date_start="2026-05-01")
        with self._counting_text_compilations() as compiled:
            self._bill_and_charge("2026-05-01")
        charges = subs.charge_ids
        self.assertEqual(len(charges), 2)
        receipts = self.env["mail.mail"].search([("model", "=", "subscription.charge"), ("res_id", "in", charges.ids)])
        self.assertEqual(len(receipts), 2)
        template = self.env.ref("subscription_billing.mail_template_payment_receipt")
        # Odoo checks the body once per batch (``_has_unsafe_expression_template_qweb``), then
        # compiled it for each charge: here once for the two.
        self.assertEqual(len(compiled), 2, "one check and one compilation of the body for the batch")
        with self._counting_text_compilations() as compiled:
            stock = template._generate_template(charges.ids, ["body_html"])
        self.assertEqual(len(compiled), 3, "Odoo's own path compiles it for each record")
        memo = template.with_context(subscription_qweb_cache=CompiledTemplates()) \
            ._generate_template(charges.ids, ["body_html"])
        for charge in charges:
            self.assertIn(charge.invoice_id.name, str(stock[charge.id]["body_html"]))
            self.assertEqual(memo[charge.id]["body_html"], stock[charge.id]["body_html"],
                             "compiled once, each charge's receipt reads as Odoo renders it")
            receipt = receipts.filtered(lambda m, c=charge: m.res_id == c.id)
            self.assertIn(charge.invoice_id.name, receipt.body_html)

    def test_a_run_logs_odoos_payment_messages_once_in_order_in_batches(self):
        """Odoo's payment messages (initiated, confirmed / pending / failed, payment posted) reach
        each invoice once, in order, as the internal notes Odoo posts; the run logs them and its
        own notes in batches, without one ``message_post`` per charge. A later webhook logs as
        Odoo does."""
        paid = self._create_autopay_subscription("done", date_start="2026-05-01")
        also_paid = self._create_autopay_subscription("done", partner=self.partner_b, date_start="2026-05-01")
        declined = self._create_autopay_subscription("error", date_start="2026-05-01")
        pending = self._create_autopay_subscription("pending", date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        Thread = type(self.env["mail.thread"])
        posted = []
        original = Thread.message_post

        def counting(records, **kwargs):
            if not kwargs.get("tracking_value_ids"):  # tracked changes stay Odoo's (the audit trail)
                posted.append(records._name)
            return original(records, **kwargs)

        with freeze_time("2026-05-01"), patch.object(Thread, "message_post", counting), mute_logger(*MUTED):
            self._run_autopay()
        self.assertFalse(posted, "notes logged in batches, not posted one by one")

        payment_notes = self._payment_notes
        for sub in paid | also_paid:
            self.assertEqual(payment_notes(sub), ["initiated", "confirmed", "posted"])
            self.assertIn(sub.charge_ids.transaction_id.payment_id.name,
                          str(sub.invoice_ids.message_ids[0].body), "the last note links the payment")
            self._assert_logged(sub, f"Payment of {sub.invoice_ids.name} charged")
        self.assertEqual(payment_notes(declined), ["initiated", "error"])
        self._assert_logged(declined, "Temporary failure")
        self.assertEqual(payment_notes(pending), ["initiated", "pending"])
        self._assert_logged(pending, "is being processed by")
        tx = pending.charge_ids.transaction_id
        tx._process("demo", {"reference": tx.reference, "simulated_state": "done"})
        self.assertEqual(payment_notes(pending), ["initiated", "pending", "confirmed", "posted"])

    def test_payments_keep_the_stock_audit_trail_where_the_company_requires_it(self):
        """The payments' creation message and field tracking are skipped for speed, except where
        the company's restrictive audit trail makes them the legal record: then each payment of a
        run has what Odoo's own post-processing gives a payment made alone."""
        def trail(payment):
            self.env.cr.precommit.run()  # tracking values are written when the transaction commits
            # Odoo's own path also tracks the payment method it computes after the creation (ours
            # is set at the creation): messages are compared without their tracked values.
            return sorted((m.message_type, m.subtype_id.id, m.model)
                          for m in payment.message_ids | payment.move_id.message_ids if not m.tracking_value_ids)

        self.env = self.env(context=dict(self.env.context, tracking_disable=False))  # tracked, as in production
        plain = self._create_autopay_subscription("done", date_start="2026-05-01") \
            | self._create_autopay_subscription("done", partner=self.partner_b, date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        for payment in plain.charge_ids.transaction_id.payment_id:
            self.assertEqual(trail(payment), [])
        self.company.restrictive_audit_trail = True
        third = self.env["res.partner"].create({"name": "Cleo Audited", "email": "cleo@example.com"})
        fourth = self.env["res.partner"].create({"name": "Dan Audited", "email": "dan@example.com"})
        audited = self._create_autopay_subscription("done", partner=third, date_start="2026-06-01") \
            | self._create_autopay_subscription("done", partner=fourth, date_start="2026-06-01")
        self._bill_and_charge("2026-06-01")
        alone_partner = self.env["res.partner"].create({"name": "Eve Alone", "email": "eve@example.com"})
        alone = self._create_autopay_subscription("done", partner=alone_partner, date_start="2026-06-01")
        with freeze_time("2026-06-01"):
            charge = self.env["subscription.charge"]._create_for_invoices(alone.with_env(self.env)._bill())
            charge._send()
            charge.transaction_id._post_process()  # one transaction: Odoo's own path
        stock = trail(charge.transaction_id.payment_id)
        self.assertTrue(stock)
        for payment in audited.charge_ids.transaction_id.payment_id:
            self.assertEqual(trail(payment), stock)

    def test_billing_day_wakes_the_autopay_action_for_autopay_invoices_only(self):
        autopay = self._create_autopay_subscription("done", date_start="2026-05-01")
        manual = self._create_subscription(partner=self.partner_b, date_start="2026-05-01")
        cron = self.env.ref("subscription_billing.ir_cron_charge_autopay")
        Trigger = self.env["ir.cron.trigger"]
        before = Trigger.search_count([("cron_id", "=", cron.id)])
        with freeze_time("2026-05-01"):
            self._run_billing()
        self.assertGreater(Trigger.search_count([("cron_id", "=", cron.id)]), before, "charged right away")
        self.assertEqual(autopay.invoice_ids.subscription_charge_date, date(2026, 5, 1))
        self.assertFalse(manual.invoice_ids.subscription_charge_date)
        self._run_sending()
        self.assertEqual(len(self._mails_to(self.partner_b, "for your Trendhouse")), 1)
        self.assertFalse(self._mails_to(self.partner, "for your Trendhouse"))

    def test_temporary_failure_is_retried_on_schedule_and_success_reactivates(self):
        sub = self._create_autopay_subscription("error", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        charge = sub.charge_ids
        self.assertEqual((charge.state, charge.failure_kind, charge.next_retry_date),
                         ("failed", "temporary", date(2026, 5, 2)))
        self.assertEqual(sub.state, "past_due")
        failed_mail = self._mails_to(self.partner, "failed — we will try again")
        self.assertEqual(len(failed_mail), 1)
        self.assertIn(sub.access_token, failed_mail.body_html, "the link opens the subscription with its token")
        self._assert_logged(sub, "next retry on")
        # Same day again: nothing is charged before the retry date.
        with freeze_time("2026-05-01 18:00:00"):
            self._run_autopay()
        self.assertEqual(len(sub.charge_ids), 1)
        # Day 2: second attempt fails too, next one three days later.
        with freeze_time("2026-05-02"):
            self._run_autopay()
        second = sub.charge_ids.sorted("attempt")[-1]
        self.assertEqual((second.attempt, second.state, second.next_retry_date), (2, "failed", date(2026, 5, 5)))
        # The customer's bank has money again: the third attempt succeeds.
        sub.payment_token_id.demo_simulated_state = "done"
        with freeze_time("2026-05-05"):
            self._run_autopay()
        third = sub.charge_ids.sorted("attempt")[-1]
        self.assertEqual((third.attempt, third.state), (3, "done"))
        self._assert_paid(sub.invoice_ids)
        self.assertEqual(sub.state, "active")
        self.assertFalse(sub.charge_ids.filtered("next_retry_date"), "no retry left pending")
        with freeze_time("2026-05-10"):
            self._run_autopay()
        self.assertEqual(len(sub.charge_ids), 3)

    def test_exhausted_retries_suspend_with_mail_and_activity_and_stop_invoicing(self):
        sub = self._create_autopay_subscription("error", date_start="2026-05-01", user_id=self.sales_user.id)
        for day in ("2026-05-01", "2026-05-02", "2026-05-05", "2026-05-10"):
            self._bill_and_charge(day)
        self.assertEqual(sub.charge_ids.sorted("attempt").mapped("attempt"), [1, 2, 3, 4])
        self.assertEqual(sub.state, "suspended")
        self.assertFalse(sub.charge_ids.filtered("next_retry_date"))
        self.assertEqual(len(self._mails_to(self.partner, "is suspended")), 1)
        self.assertEqual(len(self._mails_to(self.partner, "failed — we will try again")), 3)
        activity = sub.activity_ids
        self.assertEqual(len(activity), 1)
        self.assertEqual(activity.user_id, self.sales_user)
        self._assert_logged(sub, "No retries left")
        # Nothing more is charged, and no new invoice while suspended.
        self._bill_and_charge("2026-06-01")
        self.assertEqual(len(sub.charge_ids), 4)
        self.assertEqual(len(sub.invoice_ids), 1)

    def test_exhausted_retries_can_keep_the_subscription_active(self):
        self.company.subscription_after_retries = "notify"
        self.env["subscription.retry.rule"].search([("company_id", "=", self.company.id)]).unlink()
        self.env["subscription.retry.rule"].create({"delay_days": 2, "company_id": self.company.id})
        sub = self._create_autopay_subscription("error", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        self.assertEqual(sub.charge_ids.next_retry_date, date(2026, 5, 3), "the configured delay is used")
        self._bill_and_charge("2026-05-03")
        self.assertEqual(len(sub.charge_ids), 2)
        self.assertEqual(sub.state, "active")
        self.assertEqual(len(sub.activity_ids), 1)
        self.assertFalse(self._mails_to(self.partner, "is suspended"))

    def test_permanent_failure_suspends_immediately(self):
        sub = self._create_autopay_subscription("cancel", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        charge = sub.charge_ids
        self.assertEqual((charge.state, charge.failure_kind, charge.next_retry_date), ("failed", "permanent", False))
        self.assertEqual(sub.state, "suspended")
        self.assertEqual(len(self._mails_to(self.partner, "is suspended")), 1)
        self.assertFalse(self._mails_to(self.partner, "failed — we will try again"))
        self._bill_and_charge("2026-05-02")
        self.assertEqual(len(sub.charge_ids), 1)

    def test_pending_payment_is_never_retried_and_settles_later(self):
        sub = self._create_autopay_subscription("pending", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        charge = sub.charge_ids
        self.assertEqual((charge.state, charge.transaction_id.state, charge.needs_review),
                         ("pending", "pending", False))
        for day in ("2026-05-02", "2026-05-05"):
            self._bill_and_charge(day)
        self.assertEqual(len(sub.charge_ids), 1)
        self.assertEqual(len(self.env["payment.transaction"].search([("invoice_ids", "in", sub.invoice_ids.ids)])), 1)
        # The provider's notification arrives (as a webhook would deliver it).
        tx = charge.transaction_id
        tx._process("demo", {"reference": tx.reference, "simulated_state": "done"})
        self.assertEqual(charge.state, "done")
        self._assert_paid(sub.invoice_ids)
        self.assertEqual(len(self._mails_to(self.partner, "received, thank you")), 1)

    def test_pending_payment_that_fails_later_follows_the_retry_schedule(self):
        sub = self._create_autopay_subscription("pending", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        tx = sub.charge_ids.transaction_id
        with freeze_time("2026-05-03"):
            tx._process("demo", {"reference": tx.reference, "simulated_state": "error"})
        self.assertEqual((sub.charge_ids.state, sub.charge_ids.next_retry_date), ("failed", date(2026, 5, 4)))
        self.assertEqual(sub.state, "past_due")

    def test_manual_payment_of_a_suspended_subscription_reactivates_it(self):
        sub = self._create_autopay_subscription("cancel", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        self.assertEqual(sub.state, "suspended")
        invoice = sub.invoice_ids
        self._register_payment(invoice)
        self._assert_paid(invoice)
        self.assertEqual(sub.state, "active")
        self._assert_logged(sub, "active again")

    def test_an_accountant_registering_the_payment_reactivates_the_subscription(self):
        accountant = new_test_user(self.env, login="sub_accountant", groups="account.group_account_invoice")
        sub = self._create_autopay_subscription("cancel", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        self.assertEqual(sub.state, "suspended")
        self._register_payment(sub.invoice_ids, user=accountant)
        self.assertEqual(sub.state, "active")

    def test_support_staff_read_the_payment_history(self):
        support = new_test_user(self.env, login="sub_support", groups="subscription_billing.group_subscription_viewer")
        sub = self._create_autopay_subscription("error", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        [values] = sub.with_user(support).charge_ids.read(["state", "failure_message", "token_id", "amount"])
        self.assertEqual(values["state"], "failed")
        with self.assertRaises(AccessError):
            sub.charge_ids.with_user(support).write({"needs_review": True})
        employee = new_test_user(self.env, login="sub_employee_only", groups="base.group_user")
        with self.assertRaises(AccessError):
            sub.with_user(employee).charge_ids.read(["failure_message"])

    def test_only_subscription_administrators_settle_charges_by_hand(self):
        sub = self._create_autopay_subscription("pending", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        with self.assertRaises(AccessError):
            sub.charge_ids.with_user(self.sales_user).action_mark_paid()
        self.assertEqual(sub.charge_ids.state, "pending")

    def test_payment_by_other_means_stops_pending_retries(self):
        sub = self._create_autopay_subscription("error", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        self.assertEqual(sub.state, "past_due")
        invoice = sub.invoice_ids
        self._register_payment(invoice)
        self.assertEqual(sub.state, "active")
        self.assertFalse(sub.charge_ids.next_retry_date)
        self._bill_and_charge("2026-05-02")
        self.assertEqual(len(sub.charge_ids), 1, "a paid invoice is never charged again")

    def test_an_email_that_cannot_be_queued_never_undoes_the_outcome(self):
        sub = self._create_autopay_subscription("error", date_start="2026-05-01")
        Template = type(self.env["mail.template"])
        with patch.object(Template, "send_mail_batch", side_effect=RuntimeError("SMTP queue down")), \
                mute_logger("odoo.addons.subscription_billing.tools.mail"):
            self._bill_and_charge("2026-05-01")
        charge = sub.charge_ids
        self.assertEqual((charge.state, charge.next_retry_date, sub.state), ("failed", date(2026, 5, 2), "past_due"))
        self._assert_logged(sub, "next retry on")
        self.assertFalse(any("e-mailed" in str(body) for body in sub.message_ids.mapped("body")),
                         "the chatter does not claim an e-mail that was not queued")

    def test_a_new_method_while_a_charge_is_pending_does_not_charge_again(self):
        sub = self._create_autopay_subscription("pending", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        self.assertEqual(sub.charge_ids.state, "pending")
        with freeze_time("2026-05-01"):
            sub._enroll_autopay(self._create_token(outcome="done"))
        other = self._create_autopay_subscription("done", partner=self.partner_b, date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        self.assertEqual(len(sub.charge_ids), 1, "the bank debit in progress is not doubled by the new card")
        self.assertEqual(other.charge_ids.state, "done", "and the run goes on with the other invoices")
        tx = sub.charge_ids.transaction_id
        tx._process("demo", {"reference": tx.reference, "simulated_state": "done"})
        self._assert_paid(sub.invoice_ids)

    def test_closing_stops_retries_and_dunning_mails(self):
        sub = self._create_autopay_subscription("error", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        failed_mail = self._mails_to(self.partner, "failed — we will try again")
        self.assertEqual(failed_mail.state, "outgoing")
        sub.action_cancel()
        self.assertFalse(sub.charge_ids.next_retry_date)
        self.assertFalse(sub.invoice_ids.subscription_charge_date)
        self.assertEqual(failed_mail.state, "cancel", "a queued dunning e-mail is not sent after closing")
        self._bill_and_charge("2026-05-02")
        self.assertEqual(len(sub.charge_ids), 1)


@tagged("post_install", "-at_install")
class TestAutopayInputs(AutopayCommon):

    def test_token_of_another_customer_is_refused(self):
        sub = self._create_subscription()
        token_b = self._create_token(partner=self.partner_b)
        with self.assertRaisesRegex(ValidationError, "belongs to another customer"):
            sub.write({"payment_token_id": token_b.id})
        self.env.invalidate_all(flush=False)
        self.assertFalse(sub.payment_token_id)

    def test_token_of_a_contact_of_the_same_company_is_accepted(self):
        company = self.env["res.partner"].create({"name": "Trend Corp", "is_company": True})
        contact = self.env["res.partner"].create({"name": "Buyer", "parent_id": company.id})
        sub = self._create_subscription(partner=company)
        token = self._create_token(partner=contact)
        sub.payment_token_id = token
        self.assertEqual(sub.payment_token_id, token)

    def test_archived_token_is_refused_at_enrollment(self):
        sub = self._create_subscription()
        token = self._create_token()
        token.active = False
        with self.assertRaisesRegex(ValidationError, "removed or deactivated"):
            sub.write({"payment_token_id": token.id})

    def test_provider_of_another_company_is_refused(self):
        sub = self._create_subscription()
        other = self.env["res.company"].create({"name": "Other Trendhouse"})
        provider = self.demo_provider.copy({"company_id": other.id})
        token = self._create_token()
        token.provider_id = provider
        with self.assertRaisesRegex(ValidationError, "another company"):
            sub.write({"payment_token_id": token.id})

    def test_currency_the_provider_cannot_charge_is_refused(self):
        sub = self._create_subscription()
        other = self.env["res.currency"].with_context(active_test=False).search(
            [("id", "!=", sub.currency_id.id)], limit=1)
        self.demo_provider.available_currency_ids = other
        with self.assertRaisesRegex(ValidationError, "cannot charge in"):
            sub.write({"payment_token_id": self._create_token().id})

    def test_archived_token_takes_the_subscription_off_autopay(self):
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        sub.payment_token_id.active = False
        self.assertFalse(sub.payment_token_id)
        self._bill_and_charge("2026-05-01")
        self.assertFalse(sub.charge_ids)
        self.assertEqual(sub.invoice_ids.subscription_send, "email", "the invoice is e-mailed to be paid by hand")

    def test_a_token_deactivated_behind_the_orm_fails_the_charge_clearly(self):
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        self.env.cr.execute("UPDATE payment_token SET active = FALSE WHERE id = %s", [sub.payment_token_id.id])
        self.env.invalidate_all()
        self._bill_and_charge("2026-05-01")
        charge = sub.charge_ids
        self.assertEqual((charge.state, charge.failure_kind, charge.failure_code),
                         ("failed", "permanent", "token_inactive"))
        self.assertFalse(charge.transaction_id)
        self.assertIn("removed or deactivated", charge.failure_message)
        self.assertEqual(sub.state, "suspended")

    def test_subscription_that_left_autopay_gets_the_invoice_mail(self):
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        sub.payment_token_id = False
        with freeze_time("2026-05-01"):
            self._run_autopay()
        self.assertFalse(sub.charge_ids)
        self.assertEqual(sub.invoice_ids.subscription_send, "email")
        self._run_sending()
        self.assertEqual(len(self._mails_to(self.partner, "for your Trendhouse")), 1)

    def test_a_closed_subscription_cannot_be_enrolled(self):
        sub = self._create_subscription()
        sub.action_cancel()
        with self.assertRaisesRegex(UserError, "is closed"):
            sub._enroll_autopay(self._create_token())
        self.assertFalse(sub.payment_token_id)

    def test_setup_link_needs_an_email_address_and_an_open_subscription(self):
        no_email = self.env["res.partner"].create({"name": "No Mail"})
        sub = self._create_subscription(partner=no_email)
        with self.assertRaisesRegex(UserError, "no e-mail address"):
            sub.action_send_autopay_link()
        closed = self._create_subscription()
        closed.action_cancel()
        with self.assertRaisesRegex(UserError, "is closed"):
            closed.action_send_autopay_link()
        self.assertFalse((sub | closed).filtered("autopay_requested"))

    def test_archiving_a_token_shows_the_subscriptions_it_pays(self):
        sub = self._create_autopay_subscription("done")
        info = sub.payment_token_id.get_linked_records_info()
        self.assertEqual([(i["id"], i["name"]) for i in info], [(sub.id, sub.name)])

    def test_retry_rule_delay_must_be_positive(self):
        with self.assertRaisesRegex(ValidationError, "at least one day"):
            self.env["subscription.retry.rule"].create({"delay_days": 0})

    def test_settings_edit_the_retry_rules(self):
        settings = self.env["res.config.settings"].create({"subscription_grace_days": 7})
        settings.execute()
        self.assertEqual(self.company.subscription_grace_days, 7)
        self.assertEqual(settings.subscription_retry_rule_ids.mapped("delay_days"), [1, 3, 5])
        with self.assertRaisesRegex(ValidationError, "negative"):
            self.company.subscription_grace_days = -1

    def test_settings_add_a_retry(self):
        with Form(self.env["res.config.settings"]) as settings:
            with settings.subscription_retry_rule_ids.new() as rule:
                rule.delay_days = 7
            settings.subscription_after_retries = "notify"
        settings.save().execute()
        self.assertEqual(self.company.subscription_retry_rule_ids.mapped("delay_days"), [1, 3, 5, 7])
        self.assertEqual(self.company.subscription_after_retries, "notify")

    def test_review_buttons_refuse_settled_charges(self):
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        for button in ("action_check_status", "action_mark_paid", "action_mark_failed"):
            with self.assertRaisesRegex(UserError, "Only pending charges"):
                getattr(sub.charge_ids, button)()

    def test_a_second_worker_skips_the_invoices_the_first_one_holds(self):
        subs = self._create_many_subscriptions(4, date_start="2026-05-01")
        for sub in subs:
            sub.payment_token_id = self._create_token(partner=sub.partner_id)
        with freeze_time("2026-05-01"):
            self._run_billing()
        Move = type(self.env["account.move"])
        held = subs[:2].invoice_ids
        original = Move.try_lock_for_update

        def other_worker_holds(records, *args, **kwargs):
            return original(records - held, *args, **kwargs)

        with patch.object(Move, "try_lock_for_update", other_worker_holds), freeze_time("2026-05-01"):
            self._run_autopay()
        self.assertFalse(subs[:2].charge_ids, "rows locked by another worker are left to it")
        self.assertEqual(subs[2:].charge_ids.mapped("state"), ["done", "done"])
        with freeze_time("2026-05-01"):
            self._run_autopay()
        self.assertEqual(len(subs.charge_ids), 4)


@tagged("post_install", "-at_install")
class TestAutopayExactlyOnce(AutopayCommon):
    """A crash at any point never charges an invoice twice."""

    def _charges_and_txs(self, sub):
        txs = self.env["payment.transaction"].search([("invoice_ids", "in", sub.invoice_ids.ids)])
        return sub.charge_ids, txs

    def test_crash_before_the_provider_call_does_not_charge_on_rerun(self):
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        Charge = type(self.Charge)
        with patch.object(Charge, "_send", side_effect=MemoryError("worker killed")), mute_logger(*MUTED), \
                freeze_time("2026-05-01 10:00:00"):
            self._run_billing()
            self._run_autopay()
        charges, txs = self._charges_and_txs(sub)
        self.assertEqual((charges.state, txs.state), ("pending", "draft"), "the transaction was committed first")
        with freeze_time("2026-05-01 10:30:00"):
            self._run_autopay()
        self.assertEqual(self._charges_and_txs(sub), (charges, txs), "nothing new while the outcome is unknown")
        with freeze_time("2026-05-01 12:00:00"):
            self._run_autopay()
        self.assertTrue(charges.needs_review)
        self.assertIn("interrupted", charges.review_reason)
        self.assertEqual(self._charges_and_txs(sub), (charges, txs))
        # Staff ask the provider: the same transaction is sent (safe for this provider), once.
        charges.action_check_status()
        self.assertEqual(charges.state, "done")
        self._assert_paid(sub.invoice_ids)
        self.assertEqual(self._charges_and_txs(sub), (charges, txs))
        self.assertEqual(len(txs.payment_id), 1)

    def test_crash_before_the_call_was_marked_sent_charges_again_after_the_hour(self):
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        Charge = type(self.Charge)
        with patch.object(Charge, "_mark_sent", side_effect=MemoryError("worker killed")), \
                mute_logger(*MUTED), freeze_time("2026-05-01 10:00:00"):
            self._run_billing()
            self._run_autopay()
        first, first_tx = self._charges_and_txs(sub)
        self.assertEqual((first.state, first_tx.state, first.date_sent), ("pending", "draft", False),
                         "committed, never sent")
        with freeze_time("2026-05-01 10:30:00"):
            self._run_autopay()
        self.assertEqual(self._charges_and_txs(sub), (first, first_tx), "nothing new within the hour")
        with freeze_time("2026-05-01 12:00:00"):
            self._run_autopay()
        charges, txs = self._charges_and_txs(sub)
        self.assertEqual((first.state, first_tx.state), ("cancelled", "cancel"))
        self.assertIn("before this charge was sent", first.failure_message)
        self.assertFalse(first.needs_review, "nobody has to check a charge that never left")
        retry = charges - first
        self.assertEqual((len(retry), retry.state, retry.attempt), (1, "done", 1),
                         "charged again in the same run, still the first attempt")
        self.assertTrue(retry.date_sent)
        self.assertEqual(len(txs.filtered(lambda t: t.state == "done")), 1)
        self._assert_paid(sub.invoice_ids)

    def test_crash_after_the_provider_call_does_not_charge_on_rerun(self):
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        Charge = type(self.Charge)
        original = Charge._send

        def send_then_die(charge):
            original(charge)
            raise MemoryError("worker killed after the provider answered")

        with patch.object(Charge, "_send", send_then_die), mute_logger(*MUTED), freeze_time("2026-05-01 10:00:00"):
            self._run_billing()
            self._run_autopay()
        charges, txs = self._charges_and_txs(sub)
        self.assertEqual(len(txs), 1)
        self.assertEqual(charges.state, "pending")
        for moment in ("2026-05-01 10:30:00", "2026-05-02 10:00:00"):
            with freeze_time(moment):
                self._run_autopay()
        self.assertEqual(self._charges_and_txs(sub), (charges, txs), "never charged a second time")
        self.assertTrue(charges.needs_review)
        charges.action_mark_paid()
        self.assertEqual(charges.state, "done")
        self._assert_paid(sub.invoice_ids)

    def test_crash_before_post_processing_finishes_without_charging_again(self):
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        Charge = type(self.Charge)
        def die_when_paid(charges, *_args, **_kwargs):
            if charges:
                raise MemoryError("worker killed")

        with patch.object(Charge, "_on_success", die_when_paid), mute_logger(*MUTED), \
                freeze_time("2026-05-01 10:00:00"):
            self._run_billing()
            self._run_autopay()
        charges, txs = self._charges_and_txs(sub)
        self.assertEqual((charges.state, txs.state, txs.is_post_processed), ("pending", "done", False))
        self.assertNotIn(sub.invoice_ids.payment_state, ("paid", "in_payment"))
        with freeze_time("2026-05-01 10:05:00"):
            self._run_autopay()
        self.assertEqual(charges.state, "done")
        self._assert_paid(sub.invoice_ids)
        self.assertEqual(self._charges_and_txs(sub), (charges, txs))
        self.assertEqual(len(txs.payment_id), 1)

    def test_database_refuses_a_second_successful_or_pending_charge(self):
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        charge = sub.charge_ids
        with self.assertRaises(UniqueViolation), mute_logger("odoo.sql_db"), self.env.cr.savepoint():
            charge.copy({"state": "done"})
            self.env.flush_all()
        in_progress = charge.copy({"state": "pending"})  # one charge in progress per invoice is allowed
        with self.assertRaises(UniqueViolation), mute_logger("odoo.sql_db"), self.env.cr.savepoint():
            in_progress.copy({"state": "pending"})
            self.env.flush_all()

    def test_unexpected_provider_error_goes_to_review_and_can_be_marked_failed(self):
        sub = self._create_autopay_subscription("done", date_start="2026-05-01")
        Tx = type(self.env["payment.transaction"])
        with patch.object(Tx, "_send_payment_request", side_effect=TimeoutError("read timed out")), \
                mute_logger(*MUTED), freeze_time("2026-05-01"):
            self._run_billing()
            self._run_autopay()
        charge = sub.charge_ids
        self.assertEqual((charge.state, charge.needs_review), ("pending", True))
        self.assertIn("read timed out", charge.review_reason)
        self.assertIn(charge, self.Charge.search([("needs_review", "=", True)]))
        with freeze_time("2026-05-02"):
            self._run_autopay()
        self.assertEqual(len(sub.charge_ids), 1, "an unknown outcome is never retried blindly")
        with freeze_time("2026-05-02"):
            charge.action_mark_failed()
        self.assertEqual((charge.state, charge.next_retry_date), ("failed", date(2026, 5, 3)))
        self.assertEqual(sub.state, "past_due")


@tagged("post_install", "-at_install")
class TestManualPayers(AutopayCommon):

    def test_overdue_invoice_makes_past_due_then_suspended_after_grace(self):
        sub = self._create_subscription(date_start="2026-05-01", user_id=self.sales_user.id)
        with freeze_time("2026-05-01"):
            self._run_billing()
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self.assertEqual(sub.state, "active", "not overdue on its due date")
        with freeze_time("2026-05-02"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self.assertEqual(sub.state, "past_due")
        self.assertEqual(len(self._mails_to(self.partner, "Payment overdue")), 1)
        with freeze_time("2026-05-15"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self.assertEqual(sub.state, "past_due", "still within the 14-day grace period")
        with freeze_time("2026-05-16"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self.assertEqual(sub.state, "suspended")
        self.assertEqual(len(self._mails_to(self.partner, "is suspended")), 1)
        self.assertEqual(sub.activity_ids.user_id, self.sales_user)
        self._register_payment(sub.invoice_ids)
        self.assertEqual(sub.state, "active")

    def test_renewal_reminder_is_sent_once_per_term(self):
        self.plan_yearly.renewal_reminder_days = 30
        sub = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01", user_id=self.sales_user.id)
        self.assertEqual(sub.date_end, date(2026, 12, 31))
        with freeze_time("2026-11-15"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self.assertFalse(self._mails_to(self.partner, "subscription ends on"))
        for day in ("2026-12-05", "2026-12-06"):
            with freeze_time(day):
                self._run_cron("subscription_billing.ir_cron_update_statuses")
        mail = self._mails_to(self.partner, "subscription ends on")
        self.assertEqual(len(mail), 1)
        self.assertIn(sub.access_token, mail.body_html)
        self.assertEqual(sub.activity_ids.user_id, self.sales_user)
        self.assertEqual(sub.renewal_reminded_for, date(2026, 12, 31))


@tagged("post_install", "-at_install")
class TestAutopayRetryDate(AutopayCommon):
    """The invoice's charge date is the one truth about the next retry; staff can retry now."""

    def _failed_once(self, outcome="error"):
        sub = self._create_autopay_subscription(outcome, date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        return sub, sub.charge_ids

    def _retry_now(self, charge, user=None):
        """Press *Retry now* as in a web request (the button commits, as the scheduled action does)."""
        with self.enter_registry_test_mode(), self.registry.cursor() as cr:
            env = self.env(cr=cr, user=user or self.env.user)
            action = env["subscription.charge"].browse(charge.ids).action_retry_now()
        self.env.invalidate_all()
        return self.env["subscription.charge"].browse(action.get("res_id") or [])

    def test_the_charge_shows_the_invoice_date_and_rescheduling_moves_the_run(self):
        sub, charge = self._failed_once()
        invoice = sub.invoice_ids
        self.assertEqual(charge.next_retry_date, invoice.subscription_charge_date)
        self.assertEqual(charge.next_retry_date, date(2026, 5, 2))
        # Staff move the retry to May 4: what they write is what the scheduled action reads.
        charge.next_retry_date = date(2026, 5, 4)
        self.assertEqual(invoice.subscription_charge_date, date(2026, 5, 4))
        with freeze_time("2026-05-02"):
            self._run_autopay()
        self.assertEqual(len(sub.charge_ids), 1, "not charged before the day staff chose")
        sub.payment_token_id.demo_simulated_state = "done"
        with freeze_time("2026-05-04"):
            self._run_autopay()
        second = sub.charge_ids.sorted("attempt")[-1]
        self.assertEqual((second.attempt, second.state), (2, "done"))
        self.assertFalse(charge.next_retry_date, "an earlier attempt never shows a retry date")
        self.assertFalse(invoice.subscription_charge_date)

    def test_only_the_latest_failed_attempt_carries_and_moves_the_date(self):
        sub, first = self._failed_once()
        with freeze_time("2026-05-02"):
            self._run_autopay()
        second = sub.charge_ids.sorted("attempt")[-1]
        self.assertEqual(second.attempt, 2)
        self.assertEqual(second.next_retry_date, date(2026, 5, 5))
        self.assertFalse(first.next_retry_date)
        self.assertEqual(self.Charge.search([("next_retry_date", "!=", False), ("subscription_id", "=", sub.id)]),
                         second, "the list filter 'Retry scheduled' finds the latest attempt only")
        with self.assertRaisesRegex(UserError, "latest failed attempt"), self.env.cr.savepoint():
            first.next_retry_date = date(2026, 5, 3)
        self.assertEqual(sub.invoice_ids.subscription_charge_date, date(2026, 5, 5))

    def test_failures_at_different_attempts_in_one_run_each_get_their_own_retry_date(self):
        """A run whose failures are at different attempts: each invoice is retried on its own
        date (the second attempt 3 days on, a first one 1 day on), not on the group's other."""
        second_attempt, _first = self._failed_once()
        first_attempt = self._create_autopay_subscription("error", partner=self.partner_b, date_start="2026-05-02")
        with freeze_time("2026-05-02"):
            self._run_billing()
            self._run_autopay()
        self.assertEqual(second_attempt.charge_ids.sorted("attempt").mapped("attempt"), [1, 2])
        self.assertEqual(second_attempt.invoice_ids.subscription_charge_date, date(2026, 5, 5))
        self.assertEqual((first_attempt.charge_ids.attempt, first_attempt.invoice_ids.subscription_charge_date),
                         (1, date(2026, 5, 3)))
        self.assertEqual(first_attempt.charge_ids.next_retry_date, date(2026, 5, 3))

    def test_payment_by_other_means_clears_the_retry(self):
        sub, charge = self._failed_once()
        self._register_payment(sub.invoice_ids)
        self.assertFalse(charge.next_retry_date)
        self.assertFalse(sub.invoice_ids.subscription_charge_date)

    def test_closing_clears_the_retry(self):
        sub, charge = self._failed_once()
        sub.action_cancel()
        self.assertFalse(charge.next_retry_date)

    def test_retry_now_charges_at_once_and_reactivates(self):
        sub, charge = self._failed_once()
        self.assertEqual(sub.state, "past_due")
        sub.payment_token_id.demo_simulated_state = "done"  # the customer topped up the account
        with freeze_time("2026-05-01 15:00:00"):
            new = self._retry_now(charge, user=self.sales_user)
        self.assertEqual((new.attempt, new.state), (2, "done"))
        self._assert_paid(sub.invoice_ids)
        self.assertEqual(sub.state, "active")
        self.assertFalse(charge.next_retry_date)
        self.assertEqual(len(sub.invoice_ids.transaction_ids.filtered(lambda tx: tx.state == "done")), 1)
        # Pressed again (a double click, a stale screen): refused, nothing charged.
        with self.assertRaisesRegex(UserError, "latest failed attempt"):
            self._retry_now(charge)
        with freeze_time("2026-05-02"):
            self._run_autopay()
        self.assertEqual(len(sub.charge_ids), 2)

    def test_retry_now_that_fails_follows_the_retry_schedule(self):
        _sub, charge = self._failed_once()
        with freeze_time("2026-05-01 15:00:00"):
            new = self._retry_now(charge)
        self.assertEqual((new.attempt, new.state, new.next_retry_date), (2, "failed", date(2026, 5, 4)))
        self.assertFalse(charge.next_retry_date)

    def test_retry_now_is_refused_where_it_cannot_collect(self):
        sub, charge = self._failed_once()
        employee = new_test_user(self.env, login="retry_employee", groups="base.group_user")
        with self.assertRaises(AccessError):
            self._retry_now(charge, user=employee)
        sub.action_suspend()
        with self.assertRaisesRegex(UserError, "reactivate it first"):
            self._retry_now(charge)
        sub.action_reactivate()
        self._register_payment(sub.invoice_ids)
        with self.assertRaisesRegex(UserError, "already paid"):
            self._retry_now(charge)
        self.assertEqual(len(sub.charge_ids), 1, "nothing was charged")

    def test_retry_now_never_runs_beside_a_charge_in_progress(self):
        sub, charge = self._failed_once()
        sub.payment_token_id.demo_simulated_state = "pending"
        with freeze_time("2026-05-01 15:00:00"):
            pending = self._retry_now(charge)
        self.assertEqual(pending.state, "pending")
        with self.assertRaisesRegex(UserError, "latest failed attempt"):
            self._retry_now(charge)
        self.assertEqual(len(sub.charge_ids), 2)
