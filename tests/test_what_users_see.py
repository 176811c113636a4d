from datetime import date
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, freeze_time, new_test_user, tagged
from odoo.tools import mute_logger
from odoo.tools.safe_eval import safe_eval

from .autopay_common import AutopayCommon
from .test_portal import PortalCommon


@tagged("post_install", "-at_install")
class TestStatusesSayWhy(AutopayCommon):
    """Every status says since when, how much, why and what next; labels match the data."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.employee = new_test_user(cls.env, login="see_support", groups="base.group_user", name="Sue Support")
        cls.viewer = new_test_user(cls.env, login="see_viewer", name="Vic Viewer",
                                   groups="subscription_billing.group_subscription_viewer")

    def _suspend_overdue(self, sub):
        with freeze_time("2026-05-01"):
            self._run_billing()
        for day in ("2026-05-02", "2026-05-16"):
            with freeze_time(day):
                self._run_cron("subscription_billing.ir_cron_update_statuses")

    def test_failed_autopay_says_since_when_how_much_why_and_next_retry(self):
        sub = self._create_autopay_subscription("error", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        invoice = sub.invoice_ids
        with freeze_time("2026-05-01"):
            sub.invalidate_recordset()
            self.assertEqual(sub.health, "failed")
            summary = sub.health_summary
            self.assertIn("Payment failed since 05/01/2026", summary)
            self.assertIn(f"$\xa013.20 unpaid, oldest {invoice.name} due 05/01/2026", summary)
            self.assertIn("Declined: ", summary)
            self.assertIn("next retry on 05/02/2026", summary)
            self.assertIn("update their payment method", sub.health_next_step)
            self.assertEqual(sub.amount_due, 13.2)
        # The contact's tab, for support without the subscription rights: the same line, no amount.
        text = str(self.partner.with_user(self.employee).subscription_summary)
        self.assertIn("Payment failed since", text)
        self.assertIn(invoice.name, text)
        self.assertNotIn("13.20", text)
        # ... and with the amount for those who read amounts.
        self.assertIn("13.20 unpaid", str(self.partner.with_user(self.viewer).subscription_summary))

    def test_manual_payer_is_overdue_never_payment_failed(self):
        sub = self._create_subscription(date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        with freeze_time("2026-05-03"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
            sub.invalidate_recordset()
            self.assertEqual((sub.state, sub.health), ("past_due", "overdue"))
            self.assertIn("Overdue since 05/01/2026", sub.health_summary)
            self.assertIn("suspended on 05/16/2026 if still unpaid", sub.health_summary)
            self.assertNotIn("failed", sub.health_summary.lower())
            self.assertEqual(sub.grace_end_date, date(2026, 5, 16))
            standing = sub._customer_standing()
            self.assertEqual(standing["title"], "Payment overdue")
            self.assertIn(f"{sub.invoice_ids.name} ($\xa013.20) is past its due date of 05/01/2026", standing["text"])
            self.assertIn("before 05/16/2026", standing["text"])

    def test_failed_charge_on_an_invoice_not_yet_due_is_not_called_past_due(self):
        terms = self.env["account.payment.term"].create({
            "name": "30 days (test)", "line_ids": [(0, 0, {"value": "percent", "value_amount": 100, "nb_days": 30})],
        })
        self.plan_monthly.payment_term_id = terms
        sub = self._create_autopay_subscription("error", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        with freeze_time("2026-05-01"):
            standing = sub._customer_standing()
        self.assertEqual(standing["title"], "Your payment failed")
        self.assertNotIn("past its due date", standing["text"])
        self.assertIn("We will try again on 05/02/2026", standing["text"])

    def test_suspension_by_staff_asks_a_reason_and_is_not_explained_as_unpaid(self):
        sub = self._create_subscription(date_start="2026-05-01", user_id=self.sales_user.id)
        wizard = Form(self.env["subscription.suspend.wizard"].with_user(self.sales_user).with_context(
            active_ids=sub.ids, active_model=sub._name))
        with self.assertRaises(AssertionError):  # the reason is required in the dialog
            wizard.save()
        blank = self.env["subscription.suspend.wizard"].with_user(self.sales_user).create(
            {"subscription_ids": sub.ids, "reason": "   "})
        with self.assertRaisesRegex(UserError, "Say why"):
            blank.action_suspend()
        wizard.reason = "Customer travels until September"
        wizard.save().action_suspend()
        self.assertEqual(sub.state, "suspended")
        self.assertEqual(sub.health, "suspended")
        self.assertIn("Suspended by staff since", sub.health_summary)
        self.assertIn("Customer travels until September", sub.health_summary)
        self.assertNotIn("unpaid", sub.health_summary)
        self.assertIn("contact us", sub._customer_standing()["text"])
        self.assertIn("Customer travels until September", sub.message_ids[0].body)

    def test_suspended_after_grace_says_invoice_unpaid(self):
        sub = self._create_subscription(date_start="2026-05-01")
        self._suspend_overdue(sub)
        with freeze_time("2026-05-16"):
            sub.invalidate_recordset()
            self.assertEqual(sub.state, "suspended")
            self.assertIn("Suspended since 05/16/2026: invoice unpaid", sub.health_summary)
            self.assertIn("Register the payment", sub.health_next_step)
            standing = sub._customer_standing()
        self.assertEqual(standing["title"], "Your subscription is suspended")
        self.assertIn(sub.invoice_ids.name, standing["text"])

    def test_notes_say_when_the_customer_could_not_be_e_mailed_and_why(self):
        """Past due and suspended in one run: a customer without an e-mail address gets no e-mail
        and the chatter says so and why; one with an address is e-mailed, as the notes say."""
        silent = self.env["res.partner"].create({"name": "Noel No-Mail"})
        sub = self._create_subscription(partner=silent, date_start="2026-05-01")
        told = self._create_subscription(partner=self.partner_b, date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        with freeze_time("2026-05-16"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self.assertEqual((sub.state, told.state), ("suspended", "suspended"))
        self.assertFalse(self.MailMail.sudo().search([("recipient_ids", "in", silent.ids)]))
        self._assert_logged(sub, "the subscription is past due. No payment reminder was e-mailed: the customer "
                                 "has no e-mail address.")
        self._assert_logged(sub, "the subscription is suspended. The customer was not e-mailed: the customer "
                                 "has no e-mail address.")
        bodies = " ".join(str(body) for body in sub.message_ids.mapped("body"))
        self.assertNotIn("Payment reminder e-mailed", bodies)
        self.assertNotIn("Customer e-mailed", bodies)
        self._assert_logged(told, "the subscription is past due. Payment reminder e-mailed.")
        self._assert_logged(told, "the subscription is suspended. Customer e-mailed.")
        self.assertTrue(self._mails_to(self.partner_b, "suspended"))

    def test_a_status_run_logs_its_notes_and_activities_in_batches(self):
        """The daily status run explains each move in the chatter as internal notes, in order, and
        gives each salesperson their activities, without one ``message_post`` per subscription
        and with one activity ``create`` per salesperson."""
        subs = self._create_subscription(date_start="2026-05-01", user_id=self.sales_user.id) \
            | self._create_subscription(partner=self.partner_b, date_start="2026-05-01", user_id=self.sales_user.id)
        no_salesperson = self._create_subscription(date_start="2026-05-01", user_id=False)
        subs |= no_salesperson
        with freeze_time("2026-05-01"):
            self._run_billing()
        Thread = type(self.env["mail.thread"])
        Activity = type(self.env["mail.activity"])
        posted, logged, activity_creates = [], [], []
        post, log_batch, create = Thread.message_post, Thread._message_log_batch, Activity.create

        def counting_post(records, **kwargs):
            if not kwargs.get("tracking_value_ids"):  # tracked changes stay Odoo's (the audit trail)
                posted.append(records._name)
            return post(records, **kwargs)

        def counting_log_batch(records, bodies, **kwargs):
            if records._name == "subscription.subscription" and not kwargs.get("tracking_value_ids"):
                logged.append(len(records))  # notes (the state's tracking is logged per record by Odoo)
            return log_batch(records, bodies, **kwargs)

        def counting_create(model, vals_list):
            activity_creates.append(len(vals_list) if isinstance(vals_list, list) else 1)
            return create(model, vals_list)

        # 2026-05-16: overdue and past the 14-day grace, both steps in one run.
        with patch.object(Thread, "message_post", counting_post), patch.object(Activity, "create", counting_create), \
                patch.object(Thread, "_message_log_batch", counting_log_batch), freeze_time("2026-05-16"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        self.assertFalse(posted, "notes logged in batches, not posted one by one")
        self.assertEqual(logged, [3, 3], "one create of notes per step (past due, suspended) for the three")
        self.assertEqual(sorted(activity_creates), [1, 2], "one create per salesperson")
        note = self.env.ref("mail.mt_note")
        for sub in subs:
            sub.invalidate_recordset()
            self.assertEqual(sub.state, "suspended")
            notes = sub.message_ids.filtered(lambda m: m.subtype_id == note and not m.tracking_value_ids).sorted("id")
            self.assertEqual([("past due" in str(m.body), "suspended" in str(m.body)) for m in notes],
                             [(True, False), (False, True)], "past due, then suspended, in order")
            self.assertIn("14 days after its due date", str(notes[1].body))
            # Internal notes of kind notification (hidden from the portal, as a note message_post
            # gives) by the scheduled action's user.
            self.assertTrue(all(m.is_internal and m.message_type == "notification" for m in notes))
            self.assertEqual(notes.author_id, self.env.ref("base.user_root").partner_id)
            activity = sub.activity_ids
            self.assertEqual(activity.summary, "Suspended: invoice unpaid")
            self.assertEqual(activity.user_id, sub.user_id or self.env.ref("base.user_admin"))

    def test_starting_for_a_customer_without_email_warns(self):
        partner = self.env["res.partner"].create({"name": "No Mail Reader"})
        sub = self._create_subscription(partner=partner, start=False)
        action = sub.action_start()
        self.assertEqual(action["tag"], "display_notification")
        self.assertIn("No Mail Reader has no e-mail address", action["params"]["message"])
        self.assertEqual(sub.state, "active", "a warning, not a refusal")
        with freeze_time("2026-01-01"):
            action = sub.action_generate_invoice()
        self.assertEqual(action["params"]["next"]["res_model"], "account.move", "then the invoice opens")
        self.assertIs(self._create_subscription(start=False).action_start(), True)

    def test_payment_failures_list_counts_each_invoice_once(self):
        sub = self._create_autopay_subscription("error", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        with freeze_time("2026-05-02"):
            self._run_autopay()
        self.assertEqual(len(sub.charge_ids), 2)
        action = self.env.ref("subscription_billing.subscription_charge_action_failures")
        rows = self.Charge.search(safe_eval(action.domain))
        rows = rows.filtered(lambda c: c.subscription_id == sub)
        self.assertEqual(len(rows), 1, "one row per unpaid invoice, not per attempt")
        self.assertEqual(rows.attempt, 2)
        self.assertEqual(sum(rows.mapped("invoice_residual")), 13.2)


@tagged("post_install", "-at_install")
class TestCollections(AutopayCommon):
    """Finance follows up from one list: what is owed, since when, last attempt, next step."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.own_sales = new_test_user(cls.env, login="coll_own", groups="sales_team.group_sale_salesman")
        cls.finance = new_test_user(cls.env, login="coll_finance",
                                    groups="subscription_billing.group_subscription_user_all")

    def _rows(self, user=None):
        Collection = self.env["subscription.collection"]
        return (Collection.with_user(user) if user else Collection).search([])

    def test_one_row_per_subscription_in_collection_with_actions(self):
        failing = self._create_autopay_subscription("error", date_start="2026-05-01", user_id=self.own_sales.id)
        manual = self._create_subscription(partner=self.partner_b, date_start="2026-05-01")
        healthy = self._create_autopay_subscription("done", partner=self.env["res.partner"].create(
            {"name": "Paying Reader", "email": "pay@example.com"}), date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        with freeze_time("2026-05-03"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
            rows = self._rows()
            self.assertEqual(rows.subscription_id, failing | manual)
            self.assertNotIn(healthy, rows.subscription_id)
            row = rows.filtered(lambda r: r.subscription_id == failing)
            self.assertEqual((row.amount_due, row.last_attempt_state, row.invoice_count), (13.2, "failed", 1))
            self.assertEqual(row.oldest_due_date, date(2026, 5, 1))
            self.assertTrue(row.last_attempt_reason.startswith("Declined"))
            self.assertIn("update their payment method", row.next_step)
            manual_row = rows - row
            self.assertEqual((manual_row.amount_overdue, manual_row.is_autopay), (13.2, False))
            self.assertIn("reminder", manual_row.next_step)
            # The salesperson sees their own customers only; finance sees all.
            self.assertEqual(self._rows(self.own_sales).subscription_id, failing)
            self.assertEqual(self._rows(self.finance).subscription_id, failing | manual)

            # Bulk "send reminder": both customers with an overdue invoice are e-mailed.
            result = rows.with_user(self.finance).action_send_reminder()
            self.assertIn("2 payment reminder", result["params"]["title"])
            self.assertEqual(result["params"]["type"], "success")
            mail = self._mails_to(self.partner_b, "Payment overdue")
            self.assertEqual(len(mail), 2, "the status change's reminder and this one")
            invoice = manual.invoice_ids
            self.assertIn(f"Payment overdue for {invoice.name}: $\xa013.20 to pay", mail.mapped("subject"))
            self.assertIn(invoice.get_portal_url().replace("&", "&amp;"), mail[0].body_html)

            # Bulk "retry now" (it commits, as in a web request): the failed autopay one is charged
            # again, the manual payer skipped with the reason.
            failing.payment_token_id.demo_simulated_state = "done"
            self.env.flush_all()
            with self.enter_registry_test_mode(), self.registry.cursor() as cr:
                env = self.env(cr=cr, user=self.finance)
                result = env["subscription.collection"].browse(rows.ids).action_retry_now()
            self.env.invalidate_all()
            self.assertEqual(result["tag"], "display_notification")
            self.assertIn("1 skipped", result["params"]["message"])
        self.assertEqual(len(failing.charge_ids), 2)
        self.assertEqual(failing.charge_ids.sorted("id")[-1].state, "done")

    def test_a_viewer_reads_but_cannot_act(self):
        manual = self._create_subscription(date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        viewer = new_test_user(self.env, login="coll_viewer", groups="subscription_billing.group_subscription_viewer")
        with freeze_time("2026-05-03"):
            rows = self._rows(viewer)
            self.assertEqual(rows.subscription_id, manual)
            with self.assertRaises(AccessError):
                rows.action_send_reminder()

    def test_reminder_skips_customers_without_email_and_says_so(self):
        partner = self.env["res.partner"].create({"name": "Paper Only Reader"})
        sub = self._create_subscription(partner=partner, date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        with freeze_time("2026-05-03"):
            result = self._rows().action_send_reminder()
        self.assertIn("0 payment reminder", result["params"]["title"])
        self.assertIn(f"no e-mail address: {sub.name}", result["params"]["message"])

    def test_retry_now_without_any_failed_charge_says_why(self):
        self._create_subscription(date_start="2026-05-01")
        with freeze_time("2026-05-03"):
            self._run_billing()
            with self.assertRaisesRegex(UserError, "has a failed autopay charge to retry"):
                self._rows().action_retry_now()


@tagged("post_install", "-at_install")
class TestCustomerEmails(AutopayCommon):
    """Each customer e-mail, rendered: the customer's words, one numbering style, no internal names."""

    def _assert_customer_words(self, mail):
        for internal in ("Journal Entry", "Autopay charge", "attempt 1", "SUB/", "Proforma"):
            self.assertNotIn(internal, mail.body_html)
            self.assertNotIn(internal, mail.subject)

    def test_payment_failed_receipt_and_suspension_mails(self):
        sub = self._create_autopay_subscription("error", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        invoice = sub.invoice_ids
        [failed] = self._mails_to(self.partner, "failed")
        self.assertEqual(failed.subject, f"Payment of {invoice.name} failed — we will try again on 05/02/2026")
        self._assert_customer_words(failed)
        self.assertIn("Your payment", failed.body_html)
        self.assertIn("Demo •••• 4242", failed.body_html)
        self.assertNotIn(invoice.name.replace("/", "-"), failed.body_html)
        sub.payment_token_id.demo_simulated_state = "done"
        with freeze_time("2026-05-02"):
            self._run_autopay()
        [receipt] = self._mails_to(self.partner, "received")
        self.assertEqual(receipt.subject, f"Payment of {invoice.name} received, thank you")
        self._assert_customer_words(receipt)

        other = self._create_autopay_subscription("cancel", partner=self.partner_b, date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        [suspended] = self._mails_to(self.partner_b, "is suspended")
        self.assertEqual(suspended.subject, "Your Trendhouse Weekly (test) subscription is suspended: payment of "
                                            f"{other.invoice_ids.name} failed")
        self._assert_customer_words(suspended)
        self.assertIn("Your payment", suspended.body_html)

    def test_overdue_and_suspension_mails_name_invoice_amount_due_date_and_pay_link(self):
        sub = self._create_subscription(date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        invoice = sub.invoice_ids
        with freeze_time("2026-05-02"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        [reminder] = self._mails_to(self.partner, "Payment overdue")
        self.assertEqual(reminder.subject, f"Payment overdue for {invoice.name}: $\xa013.20 to pay")
        link = invoice.get_portal_url().replace("&", "&amp;")
        for expected in (invoice.name, "$\xa013.20", "due on 05/01/2026", link, "before 05/16/2026"):
            self.assertIn(expected, reminder.body_html)
        self._assert_customer_words(reminder)
        with freeze_time("2026-05-16"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        [suspended] = self._mails_to(self.partner, "is suspended")
        self.assertEqual(suspended.subject,
                         f"Your Trendhouse Weekly (test) subscription is suspended: {invoice.name} unpaid")
        for expected in (invoice.name, "$\xa013.20", "due on 05/01/2026", link):
            self.assertIn(expected, suspended.body_html)

    def test_reminder_with_several_overdue_invoices_names_them_all(self):
        sub = self._create_subscription(date_start="2026-04-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        invoices = sub.invoice_ids.sorted("subscription_period_start")
        self.assertEqual(len(invoices), 2)
        with freeze_time("2026-05-03"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        [reminder] = self._mails_to(self.partner, "Payment overdue")
        self.assertEqual(reminder.subject,
                         f"Payment overdue for {invoices[0].name}, {invoices[1].name}: $\xa026.40 to pay")
        for invoice in invoices:
            self.assertIn(invoice.get_portal_url().replace("&", "&amp;"), reminder.body_html)

    def test_renewal_and_autopay_setup_mails(self):
        sub = self._create_subscription(plan=self.plan_yearly, date_start="2026-01-01")
        sub.action_send_autopay_link()
        [setup] = self._mails_to(self.partner, "automatic payment")
        self.assertEqual(setup.subject, "Set up automatic payment for your Trendhouse Weekly (test) subscription")
        self._assert_customer_words(setup)
        with freeze_time("2026-12-10"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
        [renewal] = self._mails_to(self.partner, "ends on")
        self.assertEqual(renewal.subject, "Your Trendhouse Weekly (test) subscription ends on 12/31/2026")
        self.assertIn("Renew or manage my subscription", renewal.body_html)
        self.assertIn(sub.get_portal_url().replace("&", "&amp;"), renewal.body_html)

    def test_payment_method_reads_as_people_know_it(self):
        visa = self.env.ref("payment.payment_method_visa")
        token = self._create_token(payment_method_id=visa.id, card_exp_month=12, card_exp_year=2028)
        self.assertEqual(token._subscription_label(), "VISA •••• 4242, exp. 12/28")
        long_details = self._create_token(payment_details="DE89370400440532013000")
        self.assertEqual(long_details._subscription_label(), "Demo •••• 3000")
        sub = self._create_subscription(payment_token_id=token.id)
        self.assertEqual(sub.payment_method_label, "VISA •••• 4242, exp. 12/28")
        self.assertEqual(sub.payment_token_id.display_name, "VISA •••• 4242, exp. 12/28", "in the back office too")
        self.assertNotIn("exp.", token._build_display_name(), "Odoo's payment form keeps its own")


@tagged("post_install", "-at_install")
class TestPortalWords(PortalCommon):
    """The portal page says what the data says, in the customer's words."""

    def _page_text(self, sub):
        self.authenticate("ada_portal", "ada_portal_pw")
        return self._page(sub.get_portal_url()).text

    def test_a_draft_subscription_starts_it_does_not_say_started(self):
        sub = self._create_subscription(partner=self.partner, date_start="2026-12-20", start=False)
        text = self._page_text(sub)
        self.assertIn("Starts on", text)
        self.assertNotIn("Started on", text)

    def test_no_next_invoice_announced_past_a_final_end(self):
        sub = self._create_subscription(partner=self.partner, plan=self.plan_yearly, date_start="2026-01-01")
        with freeze_time("2026-01-01"):
            self._run_billing()
        self.assertEqual(sub.next_invoice_date, date(2027, 1, 1))
        self.assertFalse(sub.has_next_invoice, "the yearly term ends on 12/31/2026 and does not renew")
        text = self._page_text(sub)
        self.assertNotIn("Next invoice on", text)
        self.assertIn("Ends on", text)

    def test_lines_quantities_and_descriptions_read_naturally(self):
        text = self._page_text(self.sub_ada)
        self.assertRegex(text, r"×\s*1\s*<", "one copy reads 1, not 1.0")
        self.assertNotRegex(text, r"×\s*1\.0")
        self.assertIn("Trendhouse Weekly (test)</span>", text, "the product on its own")

    def test_invoice_history_shows_total_status_paid_date_and_pdf(self):
        with freeze_time("2026-05-01"):
            self._run_billing()
        invoice = self.sub_ada.invoice_ids
        with freeze_time("2026-05-03"):
            self._register_payment(invoice)
        text = self._page_text(self.sub_ada)
        self.assertIn("o_invoice_download", text)
        self.assertIn("Paid", text)
        paid = text[text.index("o_subscription_invoices"):]
        self.assertRegex(paid, r"on\s*<span[^>]*>05/03/2026</span>", "the day it was paid")
        self.assertIn("13.20", text)

    def test_the_method_in_use_is_not_offered_again_and_saved_ones_can_be_removed(self):
        self.sub_ada.payment_token_id = self.token_ada
        other = self._create_token(partner=self.partner, payment_details="1881")
        text = self._page_text(self.sub_ada)
        form = text[text.index("o_subscription_autopay"):]
        self.assertIn("1881", form, "the other saved method is offered")
        self.assertNotIn(f'value="{self.token_ada.id}" data-payment-option-type="token"', form)
        self.assertNotIn(f"data-payment-option-id=\"{self.token_ada.id}\"", form)
        self.assertIn("o_payment_delete_token", form, "saved methods can be removed")
        self.assertTrue(other.active)


@tagged("post_install", "-at_install")
class TestBulgarianCustomer(AutopayCommon):
    """E-mails go out in the customer's language (``lang`` of the partner), dates and amounts
    formatted for it: the first market reads Bulgarian (``i18n/bg.po``)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("bg_BG")
        cls.env["ir.module.module"]._load_module_terms(["subscription_billing"], ["bg_BG"], overwrite=True)
        cls.partner.lang = "bg_BG"

    def _mails(self, model, res_ids):
        return self.MailMail.sudo().search([("model", "=", model), ("res_id", "in", res_ids)])

    def test_invoice_mail_in_bulgarian(self):
        with freeze_time("2026-05-01"):
            sub = self._create_subscription(date_start="2026-05-01")
            self._run_billing()
            self._run_sending()
        invoice = sub.invoice_ids
        mail = self._mails("account.move", invoice.ids)
        self.assertEqual(mail.subject, f"Фактура {invoice.name} за Вашия абонамент за Trendhouse Weekly (test)")
        self.assertIn("Здравейте", mail.body_html)
        self.assertIn("13,20", mail.body_html, "amounts in the Bulgarian format")
        self.assertIn("01.05.2026", mail.body_html, "dates in the Bulgarian format")

    def test_payment_failed_mail_in_bulgarian(self):
        sub = self._create_autopay_subscription("error", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        invoice = sub.invoice_ids
        mail = self._mails("subscription.charge", sub.charge_ids.ids)
        self.assertEqual(mail.subject,
                         f"Плащането по фактура {invoice.name} е неуспешно — ще опитаме отново на 02.05.2026")
        self.assertIn("Вашето плащане", mail.body_html, "the layout's header too")
        self.assertNotIn("Your payment", mail.body_html)
        self.assertIn("13,20", mail.body_html)

    def test_one_batch_mails_each_customer_in_their_own_language(self):
        """Receipts and invoice e-mails are rendered a batch at a time with their body compiled
        once (``tools.CompiledTemplates``): a Bulgarian and an English customer in the same batch
        each read their own language."""
        bg = self._create_autopay_subscription("done", date_start="2026-05-01")
        en = self._create_autopay_subscription("done", partner=self.partner_b, date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        receipts = self._mails("subscription.charge", (bg | en).charge_ids.ids)
        self.assertEqual(len(receipts), 2)
        bg_receipt = receipts.filtered(lambda m: m.res_id == bg.charge_ids.id)
        en_receipt = receipts - bg_receipt
        self.assertIn("13,20", bg_receipt.body_html)
        self.assertNotIn("We received", bg_receipt.body_html)
        self.assertIn("We received", en_receipt.body_html)
        self.assertIn(en.invoice_ids.name, en_receipt.body_html)
        self.assertIn(bg.invoice_ids.name, bg_receipt.body_html)
        bg_manual = self._create_subscription(date_start="2026-05-01")
        en_manual = self._create_subscription(partner=self.partner_b, date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
            self._run_sending()
        self.assertIn("Здравейте", self._mails("account.move", bg_manual.invoice_ids.ids).body_html)
        en_mail = self._mails("account.move", en_manual.invoice_ids.ids)
        self.assertNotIn("Здравейте", en_mail.body_html)
        self.assertIn(en_manual.invoice_ids.name, en_mail.body_html)

    def test_portal_standing_in_bulgarian(self):
        sub = self._create_subscription(date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        with freeze_time("2026-05-03"):
            self._run_cron("subscription_billing.ir_cron_update_statuses")
            standing = sub.with_context(lang="bg_BG")._customer_standing()
        self.assertEqual(standing["title"], "Просрочено плащане")
        self.assertIn("01.05.2026", standing["text"])


@tagged("post_install", "-at_install")
class TestProbedWhatUsersSee(PortalCommon):
    """Faults found by trying the change as users and attackers would, kept as tests."""

    def _suspend_by_staff(self, sub):
        self.env["subscription.suspend.wizard"].with_user(self.sales_user).create({
            "subscription_ids": sub.ids, "reason": "Contract disputed, service on hold"}).action_suspend()

    def test_a_staff_suspension_is_not_lifted_by_a_payment_or_a_new_card(self):
        sub = self._create_subscription(partner=self.partner, date_start="2026-05-01", user_id=self.sales_user.id)
        with freeze_time("2026-05-01"):
            self._run_billing()
        self._suspend_by_staff(sub)
        # The customer saves a card from the portal: it is kept for later, nothing is charged, still suspended.
        sub._enroll_autopay(self.token_ada)
        self.assertEqual((sub.state, sub.payment_token_id), ("suspended", self.token_ada))
        self.assertFalse(sub.invoice_ids.subscription_charge_date)
        # An accountant registers the payment: still suspended, and the chatter says why.
        self._register_payment(sub.invoice_ids)
        self.assertEqual(sub.state, "suspended")
        self._assert_logged(sub, "stays suspended by staff")
        # The portal does not offer paying or a new card as the way back.
        self.authenticate("ada_portal", "ada_portal_pw")
        page = self._page(sub.get_portal_url()).text
        attention = page[page.index("o_subscription_attention"):page.index("o_subscription_attention") + 800]
        self.assertIn("contact us", attention)
        self.assertNotIn("o_subscription_pay_now", attention)
        # Staff reactivate it.
        sub.with_user(self.sales_user).action_reactivate()
        self.assertEqual(sub.state, "active")

    def test_invoices_paid_or_credited_before_sending_are_not_mailed_as_bills(self):
        with freeze_time("2026-01-01"):
            catch_up = self._create_subscription(partner=self.partner, date_start="2026-01-01")
            one = self._create_subscription(partner=self.partner, date_start="2026-03-01")
            other = self._create_subscription(partner=self.partner_b, date_start="2026-03-01")
        with freeze_time("2026-03-15"):
            self._run_billing()
        paid, credited = one.invoice_ids, other.invoice_ids
        self.assertTrue(paid and credited)
        self._register_payment(paid)
        credited._reverse_moves(cancel=True)
        middle = catch_up.invoice_ids.sorted("subscription_period_start")[1]
        middle._reverse_moves(cancel=True)
        with freeze_time("2026-03-15"):
            self._run_sending()
        mails = self.MailMail.sudo().search([("model", "=", "account.move"),
                                             ("res_id", "in", (paid | credited).ids)])
        self.assertFalse(mails, "no 'view and pay' e-mail for an invoice paid or credited in full")
        self.assertTrue(paid.invoice_pdf_report_id and credited.invoice_pdf_report_id, "their PDFs are made")
        [catch_up_mail] = self.MailMail.sudo().search([("model", "=", "subscription.subscription"),
                                                       ("res_id", "=", catch_up.id),
                                                       ("recipient_ids", "in", self.partner.ids)])
        self.assertNotIn(middle.name, catch_up_mail.body_html, "only what is still owed is listed")
        self.assertEqual(catch_up_mail.subject, "2 invoices for your Trendhouse Weekly (test) subscription")
        self.assertIn("Your subscription", catch_up_mail.body_html, "the customers' e-mail layout")

    def test_removing_the_card_autopay_uses_turns_autopay_off_and_mails_the_invoice(self):
        sub = self.sub_ada
        sub.payment_token_id = self._create_token(outcome="error")
        self._bill_and_charge("2026-05-01")
        self.assertEqual((sub.state, sub.health), ("past_due", "failed"))
        invoice = sub.invoice_ids
        self.assertTrue(invoice.subscription_charge_date, "a retry is scheduled")
        self.authenticate("ada_portal", "ada_portal_pw")
        self.make_jsonrpc_request("/payment/archive_token", {"token_id": sub.payment_token_id.id})
        self.env.invalidate_all()
        self.assertFalse(sub.payment_token_id)
        self.assertFalse(invoice.subscription_charge_date, "no retry on a removed method")
        self.assertEqual(invoice.subscription_send, "email", "the invoice is e-mailed to be paid by hand")
        self._assert_logged(sub, "was removed: autopay is off")
        with freeze_time("2026-05-02"):
            self._run_autopay()
        self.assertEqual(len(sub.charge_ids), 1, "nothing is charged on it")

    def test_a_catch_up_with_a_failed_pdf_still_lists_every_invoice_and_tells_the_salesperson(self):
        with freeze_time("2026-01-01"):
            sub = self._create_subscription(partner=self.partner, date_start="2026-01-01",
                                            user_id=self.sales_user.id)
        with freeze_time("2026-03-15"):
            self._run_billing()
        invoices = sub.invoice_ids.sorted("subscription_period_start")
        Send = type(self.env["account.move.send"])
        original = Send._generate_and_send_invoices

        def failing(send, moves, **kwargs):
            if invoices[0] in moves:
                raise ValueError("the logo is missing")
            return original(send, moves, **kwargs)

        with patch.object(Send, "_generate_and_send_invoices", failing), \
                mute_logger("odoo.addons.subscription_billing.models.account_move"), freeze_time("2026-03-15"):
            self._run_sending()
        [mail] = self.MailMail.sudo().search([("model", "=", "subscription.subscription"), ("res_id", "=", sub.id),
                                              ("recipient_ids", "in", self.partner.ids)])
        for invoice in invoices:
            self.assertIn(invoice.name, mail.body_html)
        self.assertEqual(len(mail.attachment_ids), 2, "the PDFs that were made")
        activity = sub.activity_ids.filtered(lambda a: "Invoice PDF not made" in (a.summary or ""))
        self.assertEqual(len(activity), 1)
        self.assertIn(invoices[0].name, activity.summary)

    def test_a_long_list_of_overdue_invoices_is_counted_in_the_subject(self):
        sub = self._create_subscription(partner=self.partner_b, date_start="2026-01-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        with freeze_time("2026-05-03"):
            self.assertEqual(len(sub.overdue_invoice_ids), 5)
            self.assertEqual(sub.overdue_invoices_label, "5 invoices")
