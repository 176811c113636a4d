import io
from datetime import date
from unittest.mock import patch

import psycopg2.errors

from odoo.tests import freeze_time, tagged
from odoo.tools import mute_logger
from odoo.tools.pdf import PdfFileReader

from ..models.account_move import _wkhtmltopdf_renders_batches
from .autopay_common import AutopayCommon
from .test_portal import PortalCommon


@tagged("post_install", "-at_install")
class TestInvoiceDocuments(AutopayCommon):
    """Every subscription invoice gets its official PDF after the billing day, through Odoo's own
    invoice sending, in the background; manual payers get it by e-mail."""

    def _invoice_mails(self, invoices):
        return self.MailMail.sudo().search([("model", "=", "account.move"), ("res_id", "in", invoices.ids)])

    @freeze_time("2026-02-01")
    def test_billing_day_leaves_pdf_and_mail_to_the_sending_job(self):
        sub = self._create_subscription(date_start="2026-02-01")
        self._run_billing()
        invoice = sub.invoice_ids
        # Nothing rendered or e-mailed inside the billing day.
        self.assertEqual(invoice.state, "posted")
        self.assertEqual(invoice.subscription_send, "email")
        self.assertFalse(invoice.invoice_pdf_report_id)
        self.assertFalse(self._invoice_mails(invoice))
        cron = self.env.ref("subscription_billing.ir_cron_send_invoices")
        self.assertTrue(self.env["ir.cron.trigger"].sudo().search_count([("cron_id", "=", cron.id)]),
                        "the billing day wakes the sending job up")

        self._run_sending()
        self.assertTrue(invoice.invoice_pdf_report_id, "the official PDF exists: the portal stops saying Proforma")
        self.assertTrue(invoice.is_move_sent)
        self.assertFalse(invoice.subscription_send)
        mail = self._invoice_mails(invoice)
        self.assertEqual(len(mail), 1)
        self.assertEqual(mail.recipient_ids, self.partner)
        self.assertEqual(mail.subject, f"Invoice {invoice.name} for your Trendhouse Weekly (test) subscription")
        self.assertEqual(mail.attachment_ids.mapped("name"), [invoice.invoice_pdf_report_id.name])
        self.assertIn(invoice.get_portal_url().replace("&", "&amp;"), mail.body_html)
        self.assertNotIn("Journal Entry", mail.body_html)
        self.assertNotIn(invoice.name.replace("/", "-"), mail.body_html)

        # A rerun sends nothing twice.
        self._run_sending()
        self.assertEqual(len(self._invoice_mails(invoice)), 1)

    @freeze_time("2026-02-01")
    def test_a_batch_of_invoice_mails_compiles_their_body_once(self):
        """Odoo's invoice sending renders each invoice's e-mail on its own, checking and compiling
        the body every time; in the sending job a batch does it once, and each e-mail still holds
        its own invoice. Also with a wkhtmltopdf that makes one PDF per call (Debian's build, the
        setup's fallback), where each invoice is sent on its own."""
        subs = self._create_subscription(date_start="2026-02-01") \
            | self._create_subscription(partner=self.partner_b, date_start="2026-02-01")
        self._run_billing()
        with self._counting_text_compilations() as compiled, \
                patch("odoo.addons.subscription_billing.models.account_move._wkhtmltopdf_renders_batches",
                      return_value=False):
            self._run_sending()
        mails = self._invoice_mails(subs.invoice_ids)
        self.assertEqual(len(mails), 2)
        for invoice in subs.invoice_ids:
            mail = mails.filtered(lambda m, i=invoice: m.res_id == i.id)
            self.assertIn(invoice.get_portal_url().replace("&", "&amp;"), mail.body_html)
        self.assertEqual(len(compiled), 2, "one check and one compilation of the e-mail body for the batch "
                                         "(Odoo's own sending: two per invoice)")

    @freeze_time("2026-02-01")
    def test_autopay_invoice_gets_its_pdf_but_no_invoice_mail(self):
        sub = self._create_autopay_subscription(date_start="2026-02-01")
        self._run_billing()
        invoice = sub.invoice_ids
        self.assertEqual(invoice.subscription_send, "pdf")
        self._run_sending()
        self.assertTrue(invoice.invoice_pdf_report_id)
        self.assertFalse(self._invoice_mails(invoice), "autopay customers get a receipt or a failure notice")

    def test_catch_up_sends_one_mail_listing_the_invoices(self):
        with freeze_time("2026-01-01"):
            sub = self._create_subscription(date_start="2026-01-01")
        with freeze_time("2026-03-15"):
            self._run_billing()
            self._run_sending()
        invoices = sub.invoice_ids.sorted("subscription_period_start")
        self.assertEqual(len(invoices), 3)
        self.assertTrue(all(invoices.mapped("invoice_pdf_report_id")))
        self.assertFalse(self._invoice_mails(invoices), "not one e-mail per invoice")
        mail = self.MailMail.sudo().search([("model", "=", "subscription.subscription"), ("res_id", "=", sub.id)])
        self.assertEqual(len(mail), 1)
        self.assertEqual(mail.recipient_ids, self.partner)
        self.assertEqual(mail.subject, "3 invoices for your Trendhouse Weekly (test) subscription")
        self.assertEqual(sorted(mail.attachment_ids.mapped("name")),
                         sorted(invoices.invoice_pdf_report_id.mapped("name")))
        for invoice in invoices:
            self.assertIn(invoice.name, mail.body_html)
        self.assertIn("39.60", mail.body_html, "the total of the three invoices (3 × 13.20)")

    @freeze_time("2026-02-01")
    def test_pdf_failure_is_told_on_the_invoice_and_leaves_the_queue(self):
        sub = self._create_subscription(date_start="2026-02-01")
        other = self._create_subscription(partner=self.partner_b, date_start="2026-02-01")
        self._run_billing()
        invoice, other_invoice = sub.invoice_ids, other.invoice_ids
        Send = type(self.env["account.move.send"])
        original = Send._generate_and_send_invoices

        def failing(send, moves, **kwargs):
            if invoice in moves:
                raise ValueError("wkhtmltopdf crashed")
            return original(send, moves, **kwargs)

        with patch.object(Send, "_generate_and_send_invoices", failing), \
                mute_logger("odoo.addons.subscription_billing.models.account_move"):
            self._run_sending()
        self.assertEqual(invoice.state, "posted")
        self.assertFalse(invoice.subscription_send)
        self.assertIn("wkhtmltopdf crashed", invoice.message_ids[0].body)
        self.assertTrue(other_invoice.invoice_pdf_report_id, "the other invoices go on")
        self.assertEqual(sub.next_invoice_date, date(2026, 3, 1))

    @freeze_time("2026-02-01")
    def test_cancelled_before_its_turn_leaves_the_queue(self):
        sub = self._create_subscription(date_start="2026-02-01")
        self._run_billing()
        invoice = sub.invoice_ids
        invoice.button_cancel()
        self._run_sending()
        self.assertFalse(invoice.subscription_send)
        self.assertFalse(invoice.invoice_pdf_report_id)
        self.assertFalse(self._invoice_mails(invoice))

@tagged("post_install", "-at_install")
class TestPortalRealInvoice(PortalCommon):

    @freeze_time("2026-05-01")
    def test_portal_invoice_is_the_official_one_once_sent(self):
        self._run_billing()
        invoice = self.sub_ada.invoice_ids
        self.authenticate("ada_portal", "ada_portal_pw")
        page = self._page(f"/my/invoices/{invoice.id}?report_type=html")
        self.assertIn("Proforma", page.text, "before the sending job, Odoo shows a pro-forma")
        self._run_sending()
        page = self._page(f"/my/invoices/{invoice.id}?report_type=html")
        self.assertNotIn("Proforma", page.text)
        self.assertIn(invoice.name, page.text)
        download = self._page(f"/my/invoices/{invoice.id}?report_type=pdf&download=true")
        self.assertEqual(download.content, invoice.invoice_pdf_report_id.raw)


    @freeze_time("2026-02-01")
    def test_real_pdfs_rendered_in_one_batch_are_split_per_invoice(self):
        """With the real wkhtmltopdf (not the tests' HTML stand-in), served its layout's styles by the
        test's web server as in production: one call renders the batch, each invoice gets its own
        PDF, its own number on it, and no pro-forma title."""
        if not _wkhtmltopdf_renders_batches():
            self.fail("./dev setup installs a patched-Qt wkhtmltopdf; Odoo found another one")
        subs = self._create_many_subscriptions(3, date_start="2026-02-01")
        self._run_billing()
        invoices = subs.invoice_ids
        Report = type(self.env["ir.actions.report"])
        original, calls = Report._run_wkhtmltopdf, []

        def counted(report, bodies, *args, **kwargs):
            calls.append(len(bodies))
            return original(report, bodies, *args, **kwargs)

        with patch.object(Report, "_run_wkhtmltopdf", counted):
            self.env["account.move"].with_context(force_report_rendering=True).browse(
                invoices.ids)._subscription_send_documents()
        self.assertEqual(calls, [3], "the three invoices rendered in one wkhtmltopdf call")
        for invoice in invoices:
            raw = invoice.invoice_pdf_report_id.raw
            self.assertTrue(raw.startswith(b"%PDF"))
            reader = PdfFileReader(io.BytesIO(raw))
            text = "".join(page.extract_text() for page in reader.pages)
            self.assertIn(invoice.name, text)
            self.assertIn(invoice.partner_id.name, text)
            self.assertNotIn("Proforma", text)
            for other in invoices - invoice:
                self.assertNotIn(other.name, text)


@tagged("post_install", "-at_install")
class TestSendingMeetsConcurrentUpdates(AutopayCommon):

    @freeze_time("2026-02-01")
    def test_a_batch_rolled_back_by_a_concurrent_update_is_redone_once(self):
        sub = self._create_subscription(date_start="2026-02-01")
        self._run_billing()
        Move = type(self.env["account.move"])
        original = Move._subscription_send_documents
        calls = []

        def conflicting(moves):
            calls.append(len(moves))
            if len(calls) == 1:
                raise psycopg2.errors.SerializationFailure("could not serialize access due to concurrent update")
            return original(moves)

        with patch.object(Move, "_subscription_send_documents", conflicting):
            self._run_sending()
        self.assertEqual(len(calls), 2)
        invoice = sub.invoice_ids
        self.assertTrue(invoice.invoice_pdf_report_id)
        mails = self.MailMail.sudo().search([("model", "=", "account.move"), ("res_id", "=", invoice.id)])
        self.assertEqual(len(mails), 1, "e-mailed once")


@tagged("post_install", "-at_install")
class TestSendingWithinWorkerLimits(AutopayCommon):

    @freeze_time("2026-02-01")
    def test_invoices_left_when_the_runs_time_is_up_are_made_by_the_next_run(self):
        subs = self._create_many_subscriptions(2, date_start="2026-02-01")
        self._run_billing()
        invoices = subs.invoice_ids
        self.assertTrue(all(invoices.mapped("subscription_send")))
        from odoo.addons.subscription_billing.models import account_move as move_module

        with patch.object(move_module, "job_budget_end", lambda env: 0.0):  # the run's time is up
            left = invoices._subscription_send_documents()
        self.assertEqual(left, invoices, "nothing started past the budget")
        self.assertTrue(all(invoices.mapped("subscription_send")), "still waiting for the next run")
        self.assertFalse(invoices.invoice_pdf_report_id)
        self._run_sending()
        self.assertEqual(len(invoices.invoice_pdf_report_id), 2)
        self.assertFalse(any(invoices.mapped("subscription_send")))
