from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import SubscriptionCommon


@tagged("post_install", "-at_install")
class TestSubscriptionSecurity(SubscriptionCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sub = cls._create_subscription()
        cls.employee = new_test_user(cls.env, login="sub_employee", groups="base.group_user")
        cls.portal_user = new_test_user(cls.env, login="sub_portal", groups="base.group_portal")
        cls.manager = new_test_user(cls.env, login="sub_manager", groups="sales_team.group_sale_manager")
        cls.company_b = cls.env["res.company"].create({"name": "Other Magazine Inc"})
        cls.user_b = new_test_user(
            cls.env, login="sub_user_b", groups="sales_team.group_sale_salesman",
            company_id=cls.company_b.id, company_ids=[cls.company_b.id],
        )

    def test_sales_staff_work_subscriptions_but_not_plans(self):
        self.assertTrue(self.sales_user.has_group("subscription_billing.group_subscription_user"))
        sub = self._create_subscription(start=False).with_user(self.sales_user)
        sub.action_start()
        self.assertEqual(sub.state, "active")
        self.sub.with_user(self.sales_user).action_suspend()
        self.assertTrue(self.plan_monthly.with_user(self.sales_user).name)
        with self.assertRaises(AccessError):
            self.plan_monthly.with_user(self.sales_user).write({"name": "Hacked"})

    def test_manager_administers(self):
        self.assertTrue(self.manager.has_group("subscription_billing.group_subscription_manager"))
        self.plan_monthly.with_user(self.manager).write({"renewal_reminder_days": 10})
        self.assertEqual(self.plan_monthly.renewal_reminder_days, 10)

    def test_employee_reads_only(self):
        # The standing, on the contact (the records themselves need a subscription group).
        self.assertEqual(self.partner.with_user(self.employee).subscription_status, "active")
        self.assertIn(self.sub.name, self.partner.with_user(self.employee).subscription_summary)
        with self.assertRaises(AccessError):
            self.sub.with_user(self.employee).write({"note": "x"})
        with self.assertRaises(AccessError):
            self.sub.with_user(self.employee).action_generate_invoice()

    def test_portal_user_has_no_backoffice_access(self):
        for model in ("subscription.plan", "subscription.line",
                      "subscription.pricing", "subscription.close.reason", "subscription.charge"):
            with self.assertRaises(AccessError):
                self.env[model].with_user(self.portal_user).search([])
        # Subscriptions: only their own commercial entity's, read only (the portal's record rule).
        Sub = self.env["subscription.subscription"].with_user(self.portal_user)
        self.assertFalse(Sub.search([]), "another customer's subscription does not exist for them")
        with self.assertRaises(AccessError):
            Sub.browse(self.sub.id).read(["name"])
        own = self._create_subscription(partner=self.portal_user.partner_id)
        self.assertEqual(Sub.search([]), own)
        with self.assertRaises(AccessError):
            own.with_user(self.portal_user).write({"note": "mine"})

    def test_other_company_cannot_see(self):
        Sub = self.env["subscription.subscription"].with_user(self.user_b)
        self.assertFalse(Sub.search([("id", "=", self.sub.id)]))
        with self.assertRaises(AccessError):
            Sub.browse(self.sub.id).read(["name"])
