from datetime import date
from unittest.mock import patch

import psycopg2.errors

from odoo.exceptions import UserError
from odoo.fields import Command
from odoo.tests import freeze_time, tagged
from odoo.tools import mute_logger

from .autopay_common import AutopayCommon

MUTED = ("odoo.addons.subscription_billing.models.subscription_charge", "odoo.addons.base.models.ir_cron")


class CollectionCommon(AutopayCommon):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tax15 = cls.env["account.tax"].create({
            "name": "VAT 15% (collection)", "amount": 15.0, "amount_type": "percent", "type_tax_use": "sale",
        })
        cls.magazine = cls.env["product.product"].create({
            "name": "Magazine (collection)", "type": "service", "recurring_invoice": True, "list_price": 40.0,
            "taxes_id": [Command.set(cls.tax15.ids)],
        })

    def _sub40(self, outcome="done", partner=None, autopay=True, **vals):
        partner = partner or self.partner
        if autopay:
            vals["payment_token_id"] = self._create_token(partner=partner, outcome=outcome).id
        sub = self.env["subscription.subscription"].create({
            "partner_id": partner.id, "plan_id": self.plan_monthly.id, "date_start": "2026-01-01",
            "line_ids": [Command.create({"product_id": self.magazine.id, "price_unit": 40.0})], **vals,
        })
        sub.action_start()
        return sub

    def _pay_by_bank(self, invoice, day):
        """A payment matched with the invoice in the bank reconciliation (not the payment wizard)."""
        journal = self.env["account.journal"].search([("type", "=", "bank"), ("company_id", "=", self.company.id)],
                                                     limit=1)
        payment = self.env["account.payment"].create({
            "payment_type": "inbound", "partner_type": "customer", "partner_id": invoice.partner_id.id,
            "amount": invoice.amount_residual, "journal_id": journal.id, "date": day,
        })
        payment.action_post()
        (payment.move_id.line_ids | invoice.line_ids).filtered(
            lambda l: l.account_id.account_type == "asset_receivable" and not l.reconciled).reconcile()
        self.env.flush_all()  # committed, as the accountant's transaction would be
        return payment

    def _done_charges(self, invoice):
        return invoice.subscription_charge_ids.filtered(lambda c: c.state == "done" and not c.is_reversed)


@tagged("post_install", "-at_install")
class TestPaymentUndone(CollectionCommon):
    """2. A payment that is undone puts the invoice back into collection."""

    def test_a_reversed_autopay_payment_is_charged_again_on_the_retry_schedule(self):
        sub = self._sub40()
        self._bill_and_charge("2026-01-01")
        january = sub.invoice_ids
        charge = sub.charge_ids
        self.assertEqual((charge.state, charge.amount), ("done", 46.0))
        self._assert_paid(january)
        with freeze_time("2026-01-20"):  # the bank reverses it
            payment = charge.transaction_id.payment_id
            payment.action_draft()
            payment.action_cancel()
        self.assertEqual(january.payment_state, "not_paid")
        self.assertTrue(charge.is_reversed)
        self.assertEqual(charge.date_reversed, date(2026, 1, 20))
        self.assertEqual(sub.state, "past_due")
        self.assertEqual(january.subscription_charge_date, date(2026, 1, 21))
        self.assertTrue(sub.activity_ids.filtered(lambda a: "Payment undone" in (a.summary or "")))
        self._assert_logged(sub, "was undone")
        with freeze_time("2026-01-21"):
            self._run_autopay()
        self._assert_paid(january)
        self.assertEqual(sub.state, "active")
        again = self._done_charges(january)
        self.assertEqual((len(again), again.attempt), (1, 2), "one successful, un-reversed charge per invoice")

    def test_a_manual_payers_undone_payment_makes_the_overdue_invoice_count_again(self):
        sub = self._sub40(partner=self.partner_b, autopay=False)
        with freeze_time("2026-01-01"):
            self._run_billing()
        january = sub.invoice_ids
        with freeze_time("2026-01-05"):
            self._register_payment(january)
        self._assert_paid(january)
        with freeze_time("2026-01-20"):
            january.line_ids.filtered(lambda l: l.account_id.account_type == "asset_receivable").remove_move_reconcile()
        self.assertEqual(january.payment_state, "not_paid")
        self.assertEqual(sub.state, "past_due", "overdue since January 1: past due at once")
        self.assertFalse(january.subscription_charge_date, "a manual payer is not charged")

    def test_the_database_allows_a_new_successful_charge_once_the_first_is_reversed(self):
        sub = self._sub40()
        self._bill_and_charge("2026-01-01")
        charge = sub.charge_ids
        charge._mark_reversed("test")
        self.env.flush_all()
        charge.copy({"state": "done"})
        self.env.flush_all()  # accepted: the first one no longer counts


@tagged("post_install", "-at_install")
class TestNeverCollectTwice(CollectionCommon):
    """6. Two payments for one invoice never happen."""

    def test_a_payment_registered_before_the_provider_is_called_stops_the_charge(self):
        sub = self._sub40()
        with freeze_time("2026-01-01"):
            self._run_billing()
        invoice = sub.invoice_ids
        Charge = type(self.env["subscription.charge"])
        original = Charge._still_to_collect
        calls = []

        def accountant_pays_first(charge):
            # An accountant's payment committed between the charge's creation and the provider call
            # (its transaction had passed the wizard's check before the charge existed).
            self._pay_by_bank(charge.invoice_id, "2026-01-01")
            calls.append(charge)
            return original(charge)

        Tx = type(self.env["payment.transaction"])
        with patch.object(Charge, "_still_to_collect", accountant_pays_first), \
                patch.object(Tx, "_charge_with_token", autospec=True, side_effect=AssertionError("charged")), \
                freeze_time("2026-01-01"):
            self._run_autopay()
        self.assertEqual(len(calls), 1)
        charge = sub.charge_ids
        self.assertEqual((charge.state, charge.transaction_id.state), ("cancelled", "cancel"))
        self._assert_paid(invoice)
        self.assertEqual(len(invoice._get_reconciled_payments()), 1, "paid once")
        self._assert_logged(sub, "nothing was charged")

    def test_the_payment_wizard_refuses_an_invoice_being_charged(self):
        sub = self._sub40(outcome="pending")  # a bank debit in processing
        self._bill_and_charge("2026-01-01")
        self.assertEqual(sub.charge_ids.state, "pending")
        with self.assertRaisesRegex(UserError, "being collected by autopay"):
            self._register_payment(sub.invoice_ids)
        self.assertEqual(sub.invoice_ids.payment_state, "not_paid")

    def test_money_that_arrives_twice_is_flagged_for_a_refund(self):
        sub = self._sub40(outcome="pending")
        self._bill_and_charge("2026-01-01")
        invoice, charge = sub.invoice_ids, sub.charge_ids
        # Paid meanwhile through the bank reconciliation (not the wizard, which refuses).
        self._pay_by_bank(invoice, "2026-01-03")
        self._assert_paid(invoice)
        with freeze_time("2026-01-05"):  # the bank debit settles after all
            charge.transaction_id._set_done()
            charge._sync_from_transaction()
        self.assertEqual(charge.state, "done")
        self.assertTrue(sub.activity_ids.filtered(lambda a: "paid twice" in (a.summary or "")))
        self._assert_logged(sub, "46.00 twice")

    def test_a_concurrent_accounting_write_never_aborts_the_run(self):
        subs = self.env["subscription.subscription"]
        for partner in (self.partner, self.partner_b):
            subs |= self._sub40(partner=partner)
        with freeze_time("2026-01-01"):
            self._run_billing()
        Charge = type(self.env["subscription.charge"])
        original = Charge._sync_from_transaction
        conflicts = []

        def conflicting_once(charges, *args, **kwargs):
            if charges and not conflicts:
                conflicts.append(charges)
                raise psycopg2.errors.SerializationFailure("could not serialize access")
            return original(charges, *args, **kwargs)

        with patch.object(Charge, "_sync_from_transaction", conflicting_once), mute_logger(*MUTED), \
                freeze_time("2026-01-01"):
            self._run_autopay()
        self.assertTrue(conflicts)
        for sub in subs:
            self._assert_paid(sub.invoice_ids)
            self.assertEqual(len(self._done_charges(sub.invoice_ids)), 1)



@tagged("post_install", "-at_install")
class TestProbedCollection(CollectionCommon):

    def test_a_partial_payment_during_a_pending_charge_is_flagged_for_a_refund(self):
        sub = self._sub40(outcome="pending")
        self._bill_and_charge("2026-01-01")
        invoice, charge = sub.invoice_ids, sub.charge_ids
        journal = self.env["account.journal"].search([("type", "=", "bank"), ("company_id", "=", self.company.id)],
                                                     limit=1)
        payment = self.env["account.payment"].create({
            "payment_type": "inbound", "partner_type": "customer", "partner_id": self.partner.id,
            "amount": 30.0, "journal_id": journal.id, "date": "2026-01-03",
        })
        payment.action_post()
        (payment.move_id.line_ids | invoice.line_ids).filtered(
            lambda l: l.account_id.account_type == "asset_receivable" and not l.reconciled).reconcile()
        self.assertEqual(invoice.payment_state, "partial")
        with freeze_time("2026-01-05"):
            charge.transaction_id._set_done()
            charge._sync_from_transaction()
        self._assert_logged(sub, "30.00 twice")
        self.assertTrue(sub.activity_ids.filtered(lambda a: "Refund" in (a.summary or "")))

    def test_an_invoice_credited_after_its_payment_was_undone_frees_the_subscription(self):
        sub = self._sub40()
        self._bill_and_charge("2026-01-01")
        invoice = sub.invoice_ids
        with freeze_time("2026-01-20"):
            invoice.line_ids.filtered(lambda l: l.account_id.account_type == "asset_receivable").remove_move_reconcile()
            self.assertEqual(sub.state, "past_due")
            invoice._reverse_moves(cancel=True)
        self.assertEqual(invoice.payment_state, "reversed")
        with freeze_time("2026-01-25"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
            self._run_autopay()
        self.assertEqual(sub.state, "active")
        self.assertEqual(len(sub.charge_ids), 1, "nothing charged for a credited invoice")
