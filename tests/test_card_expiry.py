from datetime import date
from unittest.mock import patch

from odoo.tests import freeze_time, tagged

from .autopay_common import AutopayCommon


@tagged("post_install", "-at_install")
class TestCardExpiry(AutopayCommon):
    """A card that expires before the next charge: one reminder per method and expiry, flagged."""

    def test_one_reminder_per_method_and_expiry(self):
        sub = self._create_autopay_subscription("done", date_start="2026-01-01")
        other = self._create_subscription(partner=self.partner, date_start="2026-01-01",
                                          payment_token_id=sub.payment_token_id.id)
        self._bill_and_charge("2026-01-01")
        token = sub.payment_token_id
        token.write({"card_exp_month": 1, "card_exp_year": 2026})  # ends Jan 31, next charge Feb 1
        no_expiry = self._create_autopay_subscription("done", partner=self.partner_b, date_start="2026-01-01")
        self.assertEqual(self.env["subscription.subscription"].search(
            [("is_card_expiring", "=", True), ("id", "in", (sub | other | no_expiry).ids)]), sub | other)
        self.assertTrue(sub.is_card_expiring)
        self.assertFalse(no_expiry.is_card_expiring, "a method without an expiry is skipped")
        Thread = type(self.env["mail.thread"])
        for day in ("2026-01-10", "2026-01-11"):  # the notes of a run in one create, none posted one by one
            with patch.object(Thread, "message_post", side_effect=AssertionError("a note per subscription")), \
                    freeze_time(day):
                self._run_cron("subscription_billing.ir_cron_update_statuses")
        [mail] = self._mails_to(self.partner, "expires before")
        self.assertIn("Update my payment method", mail.body_html)
        self.assertIn(sub.get_portal_url(anchor="autopay").replace("&", "&amp;"), mail.body_html)
        self.assertEqual(token.subscription_expiry_reminded, "2026-01")
        self._assert_logged(sub, "Card expiry reminder e-mailed")
        self._assert_logged(other, "Card expiry reminder e-mailed")
        # A customer without an e-mail address: nothing was e-mailed, and the chatter says why.
        silent = self._create_autopay_subscription("done", partner=self.env["res.partner"].create(
            {"name": "Noel No-Mail"}), date_start="2026-01-01")
        with freeze_time("2026-01-01"):
            self._run_billing()
        silent.payment_token_id.write({"card_exp_month": 1, "card_exp_year": 2026})
        with freeze_time("2026-01-12"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self.assertEqual(silent.payment_token_id.subscription_expiry_reminded, "2026-01")
        self._assert_logged(silent, "No card expiry reminder was e-mailed (the customer has no e-mail address): ")
        self.assertNotIn("Card expiry reminder e-mailed", " ".join(str(b) for b in silent.message_ids.mapped("body")))
        self.assertFalse(self._mails_to(self.partner_b, "expires before"))
        # The bank sends a new expiry on the same method: a new reminder when it expires again.
        token.write({"card_exp_month": 3, "card_exp_year": 2026})
        self.assertFalse(sub.is_card_expiring)
        self.assertEqual(sub.next_invoice_date, date(2026, 2, 1))
