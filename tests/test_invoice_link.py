from odoo.fields import Command
from odoo.tests import HttpCase, freeze_time, tagged


@tagged("post_install", "-at_install")
class TestInvoiceMailLink(HttpCase):
    """The link in the invoice e-mail opens the invoice for the customer, without login."""

    def test_mail_link_opens_invoice_without_login(self):
        tax = self.env["account.tax"].create({"name": "VAT 10% (link test)", "amount": 10, "type_tax_use": "sale"})
        plan = self.env["subscription.plan"].create({"name": "Monthly (link test)", "term_value": 1})
        product = self.env["product.product"].create({
            "name": "Trendhouse (link test)", "recurring_invoice": True, "list_price": 12.0, "type": "service",
            "taxes_id": [Command.set(tax.ids)],
        })
        partner = self.env["res.partner"].create({"name": "Link Reader", "email": "link@example.com"})
        with freeze_time("2026-02-01"):
            sub = self.env["subscription.subscription"].create({
                "partner_id": partner.id, "plan_id": plan.id, "date_start": "2026-02-01",
                "line_ids": [Command.create({"product_id": product.id})],
            })
            sub.action_start()
            sub.action_generate_invoice()
            cron = self.env.ref("subscription_billing.ir_cron_send_invoices")
            with self.enter_registry_test_mode():
                cron.method_direct_trigger()
        invoice = sub.invoice_ids
        mail = self.env["mail.mail"].search([("model", "=", "account.move"), ("res_id", "=", invoice.id)])
        self.assertEqual(len(mail), 1)
        link = invoice.get_portal_url()
        self.assertIn(link.replace("&", "&amp;"), mail.body_html)
        response = self.url_open(link)
        self.assertEqual(response.status_code, 200)
        self.assertIn(invoice.name, response.text)
        self.assertIn("13.20", response.text)
        # A wrong token shows nothing of the invoice.
        response = self.url_open(f"/my/invoices/{invoice.id}?access_token=not-the-token")
        self.assertNotIn(invoice.name, response.text)
