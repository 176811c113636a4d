from odoo.tests import freeze_time

from .common import SubscriptionCommon


class AutopayCommon(SubscriptionCommon):
    """Subscriptions on autopay with ``payment_demo`` tokens (simulated outcomes)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.demo_provider = cls.env.ref("payment.payment_provider_demo")
        if cls.demo_provider.state != "test":
            cls.demo_provider.state = "test"
        cls.demo_method = cls.env.ref("payment_demo.payment_method_demo")
        cls.Charge = cls.env["subscription.charge"]
        cls.MailMail = cls.env["mail.mail"]

    @classmethod
    def _create_token(cls, partner=None, outcome="done", **vals):
        return cls.env["payment.token"].create({
            "provider_id": cls.demo_provider.id,
            "payment_method_id": cls.demo_method.id,
            "partner_id": (partner or cls.partner).id,
            "provider_ref": "demo-customer",
            "payment_details": "4242",
            "demo_simulated_state": outcome,
            **vals,
        })

    @classmethod
    def _create_autopay_subscription(cls, outcome="done", partner=None, **vals):
        partner = partner or cls.partner
        token = cls._create_token(partner=partner, outcome=outcome)
        return cls._create_subscription(partner=partner, payment_token_id=token.id, **vals)

    def _run_cron(self, xmlid):
        cron = self.env.ref(xmlid)
        with self.enter_registry_test_mode():
            cron.method_direct_trigger()
        self.env.invalidate_all()

    def _run_autopay(self):
        self._run_cron("subscription_billing.ir_cron_charge_autopay")

    def _bill_and_charge(self, day):
        """One day of life: the billing day, then the autopay run."""
        with freeze_time(day):
            self._run_billing()
            self._run_autopay()

    def _mails_to(self, partner, subject_part):
        return self.MailMail.sudo().search([
            ("recipient_ids", "in", partner.ids), ("subject", "ilike", subject_part),
        ])

    def _assert_paid(self, invoice):
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))

    def _assert_logged(self, sub, text):
        bodies = [str(body) for body in sub.message_ids.mapped("body")]
        self.assertTrue(any(text in body for body in bodies), f"{text!r} not in the chatter: {bodies}")

    def _register_payment(self, invoices, user=None):
        """Staff register the payment of ``invoices`` (Odoo's payment wizard)."""
        wizard = self.env["account.payment.register"]
        if user:
            wizard = wizard.with_user(user)
        wizard.with_context(active_model="account.move", active_ids=invoices.ids).create({})._create_payments()
