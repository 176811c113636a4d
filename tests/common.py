from contextlib import contextmanager
from unittest.mock import patch

from odoo.fields import Command
from odoo.tests import TransactionCase, new_test_user


class SubscriptionCommon(TransactionCase):
    """Trendhouse fixtures: one magazine product on monthly, quarterly and yearly 1-year plans."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.company = cls.env.company
        cls.currency = cls.company.currency_id
        cls.tax = cls.env["account.tax"].create({
            "name": "Test VAT 10%",
            "amount": 10.0,
            "amount_type": "percent",
            "type_tax_use": "sale",
            "company_id": cls.company.id,
        })
        cls.plan_monthly = cls.env["subscription.plan"].create({
            "name": "Monthly (test)", "billing_period_value": 1, "billing_period_unit": "month",
            "term_value": 1, "term_unit": "year", "auto_renew": True,
        })
        cls.plan_quarterly = cls.env["subscription.plan"].create({
            "name": "Quarterly (test)", "billing_period_value": 3, "billing_period_unit": "month",
            "term_value": 1, "term_unit": "year", "auto_renew": True,
        })
        cls.plan_yearly = cls.env["subscription.plan"].create({
            "name": "Yearly (test)", "billing_period_value": 1, "billing_period_unit": "year",
            "term_value": 1, "term_unit": "year", "auto_renew": False,
        })
        cls.product = cls.env["product.product"].create({
            "name": "Trendhouse Weekly (test)",
            "type": "service",
            "recurring_invoice": True,
            "list_price": 15.0,
            "taxes_id": [Command.set(cls.tax.ids)],
        })
        cls.env["subscription.pricing"].create([
            {"product_tmpl_id": cls.product.product_tmpl_id.id, "plan_id": cls.plan_monthly.id, "price": 12.0},
            {"product_tmpl_id": cls.product.product_tmpl_id.id, "plan_id": cls.plan_quarterly.id, "price": 32.0},
            {"product_tmpl_id": cls.product.product_tmpl_id.id, "plan_id": cls.plan_yearly.id, "price": 120.0},
        ])
        cls.partner = cls.env["res.partner"].create({"name": "Ada Reader", "email": "ada@example.com"})
        cls.partner_b = cls.env["res.partner"].create({"name": "Bob Reader", "email": "bob@example.com"})
        cls.sales_user = new_test_user(
            cls.env, login="sub_sales", groups="sales_team.group_sale_salesman_all_leads", name="Sam Sales",
            email="sam@example.com",
        )

    @classmethod
    def _create_subscription(cls, partner=None, plan=None, date_start="2026-01-01", start=True, **vals):
        sub = cls.env["subscription.subscription"].create({
            "partner_id": (partner or cls.partner).id,
            "plan_id": (plan or cls.plan_monthly).id,
            "date_start": date_start,
            "line_ids": [Command.create({"product_id": cls.product.id, "quantity": 1.0})],
            **vals,
        })
        if start:
            sub.action_start()
        return sub

    @classmethod
    def _create_many_subscriptions(cls, count, **vals):
        """``count`` customers, each with one running subscription."""
        partners = cls.env["res.partner"].create([
            {"name": f"Reader {i}", "email": f"reader{i}@example.com"} for i in range(count)
        ])
        subs = cls.env["subscription.subscription"]
        for partner in partners:
            subs |= cls._create_subscription(partner=partner, **vals)
        return subs

    def _run_billing(self):
        """Run the billing-day scheduled action for real (it commits per batch)."""
        cron = self.env.ref("subscription_billing.ir_cron_generate_invoices")
        with self.enter_registry_test_mode():
            cron.method_direct_trigger()
        self.env.invalidate_all()

    @contextmanager
    def _counting_text_compilations(self):
        """Yield a list that collects the QWeb templates compiled from text (an e-mail body held
        as text; not views) while the block runs: Odoo's expression check compiles one too."""
        QWeb = type(self.env["ir.qweb"])
        compiled = []
        original = QWeb._generate_code

        def counting(qweb, template):
            if not isinstance(template, (int, str)):
                compiled.append(template)
            return original(qweb, template)

        with patch.object(QWeb, "_generate_code", counting):
            yield compiled

    def _run_sending(self):
        """Run the scheduled action that makes invoice PDFs and e-mails them (commits per batch)."""
        cron = self.env.ref("subscription_billing.ir_cron_send_invoices")
        with self.enter_registry_test_mode():
            cron.method_direct_trigger()
        self.env.invalidate_all()
