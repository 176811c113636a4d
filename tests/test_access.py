from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged
from odoo.tests.common import JsonRpcException
from odoo.tools import mute_logger

from .test_portal import PortalCommon

HIDDEN_FROM_EMPLOYEES = ("amount_total", "recurring_monthly", "payment_token_id", "charge_ids", "line_ids",
                         "billing_error")


@tagged("post_install", "-at_install")
class TestRoles(PortalCommon):
    """Everyone sees and does exactly what their role allows, through every door."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.own_sales = new_test_user(cls.env, login="own_sales", groups="sales_team.group_sale_salesman",
                                      name="Olga Own")
        cls.all_sales = new_test_user(cls.env, login="all_sales", name="Alan All",
                                      groups="sales_team.group_sale_salesman_all_leads")
        cls.employee = new_test_user(cls.env, login="support", groups="base.group_user", name="Sue Support",
                                     password="support_pw_123")
        cls.viewer = new_test_user(cls.env, login="viewer", name="Vic Viewer",
                                   groups="subscription_billing.group_subscription_viewer")
        cls.accountant = new_test_user(cls.env, login="accountant", groups="account.group_account_invoice",
                                       name="Ann Accounts")
        cls.company_b = cls.env["res.company"].create({"name": "Other Magazine (roles)"})
        cls.other_company_user = new_test_user(
            cls.env, login="other_company", groups="sales_team.group_sale_manager",
            company_id=cls.company_b.id, company_ids=[cls.company_b.id],
        )
        cls.mine = cls._create_subscription(partner=cls.partner, user_id=cls.own_sales.id)
        cls.unassigned = cls._create_subscription(partner=cls.partner, user_id=False)
        cls.theirs = cls.sub_bob  # another salesperson's (the creator's)

    # ------------------------------------------------------------------ back office roles

    def test_own_documents_salesperson_sees_and_edits_only_their_own_and_unassigned(self):
        Sub = self.env["subscription.subscription"].with_user(self.own_sales)
        visible = Sub.search([("id", "in", (self.mine | self.unassigned | self.theirs).ids)])
        self.assertEqual(visible, self.mine | self.unassigned)
        with self.assertRaises(AccessError):
            Sub.browse(self.theirs.id).read(["name"])
        with self.assertRaises(AccessError):
            Sub.browse(self.theirs.id).write({"note": "mine now"})
        with self.assertRaises(AccessError):
            Sub.browse(self.theirs.id).action_suspend()
        with self.assertRaises(AccessError):
            Sub.create({"partner_id": self.partner.id, "plan_id": self.plan_monthly.id,
                        "user_id": self.all_sales.id, "line_ids": [(0, 0, {"product_id": self.product.id})]})
        Sub.browse(self.mine.id).action_suspend()
        self.assertEqual(self.mine.state, "suspended")
        self.assertEqual(self.theirs.state, "active")
        self.assertFalse(self.theirs.note)
        created = Sub.create({"partner_id": self.partner.id, "plan_id": self.plan_monthly.id,
                              "line_ids": [(0, 0, {"product_id": self.product.id})]})
        self.assertEqual(created.user_id, self.own_sales)

    def test_all_documents_salesperson_sees_and_edits_all(self):
        Sub = self.env["subscription.subscription"].with_user(self.all_sales)
        self.assertEqual(Sub.search([("id", "in", (self.mine | self.theirs).ids)]), self.mine | self.theirs)
        Sub.browse(self.theirs.id).write({"note": "<p>Called the customer</p>"})
        self.assertIn("Called", self.theirs.note)
        with self.assertRaises(AccessError):
            self.plan_monthly.with_user(self.all_sales).write({"name": "Renamed"})

    def test_employees_see_the_standing_but_not_the_money(self):
        self.theirs.payment_token_id = self.token_bob
        self._bill_and_charge("2026-05-01")  # a charge, with its amount in the chatter
        partner = self.partner_b.with_user(self.employee)
        self.assertEqual(partner.subscription_status, "active")
        summary = str(partner.subscription_summary)
        for shown in (self.theirs.name, self.theirs.plan_id.name, "Active", "next invoice"):
            self.assertIn(shown, summary)
        self.assertNotIn("13.20", summary)
        self.assertNotIn("4242", summary)
        self.assertEqual(partner.subscription_count, 1)
        self.assertFalse(partner.subscription_ids, "the records themselves need a subscription group")
        # The contact form opens for them, with the standing.
        form = self.env["res.partner"].with_user(self.employee).get_views([(False, "form")])
        self.assertIn("subscription_summary", form["views"]["form"]["arch"])
        self.assertNotIn('name="subscription_ids"', form["views"]["form"]["arch"])
        self.partner_b.with_user(self.employee).read(["subscription_status", "subscription_summary"])
        # The subscription itself, its money, lines, charges and messages stay closed to them.
        record = self.env["subscription.subscription"].with_user(self.employee).browse(self.theirs.id)
        for field in ("state", *HIDDEN_FROM_EMPLOYEES):
            with self.subTest(field=field), self.assertRaises(AccessError):
                record.read([field])
        for model in ("subscription.charge", "subscription.line"):
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(self.employee).search([])
        messages = self.env["mail.message"].with_user(self.employee).search(
            [("model", "=", "subscription.subscription"), ("res_id", "=", self.theirs.id)])
        self.assertFalse(messages)
        activities = self.env["mail.activity"].with_user(self.employee).search(
            [("res_model", "=", "subscription.subscription")])
        self.assertFalse(activities)
        self.authenticate("support", "support_pw_123")
        with mute_logger("odoo.http", "werkzeug"):
            self.assertEqual(self._page(f"/my/subscriptions/{self.theirs.id}").status_code, 404)

    def test_viewers_and_subscription_only_users_open_the_form(self):
        own_only = new_test_user(self.env, login="own_only", groups="subscription_billing.group_subscription_user")
        for user, sub in ((self.viewer, self.theirs), (own_only, self.unassigned)):
            with self.subTest(user=user.login):
                Sub = self.env["subscription.subscription"].with_user(user)
                views = Sub.get_views([(False, "form"), (False, "list"), (False, "kanban")])
                fields = views["models"]["subscription.subscription"]["fields"]
                [values] = Sub.browse(sub.id).web_read({name: {} for name in fields})
                self.assertEqual(values["amount_total"], sub.amount_total)

    def test_the_viewer_group_reads_everything_and_changes_nothing(self):
        self.theirs.payment_token_id = self.token_bob
        self._bill_and_charge("2026-05-01")
        record = self.env["subscription.subscription"].with_user(self.viewer).browse(self.theirs.id)
        self.assertEqual(record.amount_total, self.theirs.amount_total)
        Charge = self.env["subscription.charge"].with_user(self.viewer)
        charges = Charge.search([("subscription_id", "=", self.theirs.id)])
        self.assertEqual(charges, self.theirs.charge_ids)
        self.assertTrue(charges, "another salesperson's charges too")
        self.assertEqual(charges.read(["amount"])[0]["amount"], 13.2)
        with self.assertRaises(AccessError):
            record.write({"note": "x"})
        with self.assertRaises(AccessError):
            record.action_suspend()
        self.assertEqual(self.theirs.state, "active")

    def test_accountant_registers_payments_but_does_not_manage_subscriptions(self):
        record = self.env["subscription.subscription"].with_user(self.accountant).browse(self.theirs.id)
        with self.assertRaises(AccessError):
            record.action_suspend()
        with self.assertRaises(AccessError):
            record.read(["amount_total"])
        self.assertEqual(self.theirs.state, "active")

    def test_payments_of_subscription_invoices_are_read_without_narrowing_accountants(self):
        """Subscription staff read the payments of subscription invoices (Odoo's invoice form shows
        them); an accountant who is also a salesperson still reads every payment."""
        self._bill_and_charge("2026-05-01")
        self._register_payment(self.sub_bob.invoice_ids)
        other = self.env["account.payment"].create({
            "payment_type": "inbound", "partner_type": "customer", "partner_id": self.partner_b.id, "amount": 5.0,
        })
        Payment = self.env["account.payment"]
        sub_payment = self.sub_bob.invoice_ids.matched_payment_ids
        self.assertTrue(sub_payment)
        self.assertEqual(Payment.with_user(self.all_sales).search([("id", "in", (sub_payment | other).ids)]),
                         sub_payment)
        both = new_test_user(self.env, login="accountant_sales", groups="account.group_account_invoice,"
                             "sales_team.group_sale_salesman")
        self.assertEqual(Payment.with_user(both).search([("id", "in", (sub_payment | other).ids)]), sub_payment | other)
        with self.assertRaises(AccessError):
            sub_payment.with_user(self.all_sales).write({"memo": "x"})

    def test_another_company_sees_nothing(self):
        Sub = self.env["subscription.subscription"].with_user(self.other_company_user)
        self.assertFalse(Sub.search([]))
        with self.assertRaises(AccessError):
            Sub.browse(self.theirs.id).read(["name"])

    def test_nobody_forces_a_state(self):
        self.theirs.action_cancel()
        self.mine.action_cancel()
        for user, sub, error in ((self.all_sales, self.theirs, UserError), (self.own_sales, self.mine, UserError),
                                 (self.own_sales, self.theirs, AccessError), (self.employee, self.theirs, AccessError),
                                 (self.viewer, self.theirs, AccessError)):
            with self.subTest(user=user.login, sub=sub.name), self.assertRaises(error):
                sub.with_user(user).write({"state": "active"})
        self.assertEqual((self.theirs.state, self.mine.state), ("cancelled", "cancelled"))

    # ------------------------------------------------------------------ portal routes

    def _post_portal(self, sub, action, **data):
        url = f"/my/subscriptions/{sub.id}/{action}"
        data.setdefault("csrf_token", self._csrf(sub.get_portal_url()))
        with mute_logger("odoo.http", "werkzeug"):
            response = self.url_open(url, data=data)
        self.env.invalidate_all()
        return response

    def test_an_employee_cannot_act_on_a_customers_subscription_in_the_portal(self):
        self.plan_monthly.customer_can_stop_renewal = True
        self.theirs.payment_token_id = self.token_bob
        self.authenticate("support", "support_pw_123")
        self.assertEqual(self._page(self.theirs.get_portal_url()).status_code, 200, "with the link they may look")
        token = self.theirs.access_token
        for action in ("autopay/disable", "renewal/stop"):
            with self.subTest(action=action):
                self.assertEqual(self._post_portal(self.theirs, action).status_code, 404)
                self.assertEqual(self._post_portal(self.theirs, action, access_token=token).status_code, 403)
        with self.assertRaises(JsonRpcException), mute_logger("odoo.http"):
            self._rpc(f"/my/subscriptions/{self.theirs.id}/autopay/assign", token_id=self.token_bob.id)
        self.assertEqual((self.theirs.payment_token_id, self.theirs.auto_renew), (self.token_bob, True))
        self.assertFalse(any("turned" in str(body) for body in self.theirs.message_ids.mapped("body")))

    def test_staff_with_rights_act_in_the_portal_under_their_own_name(self):
        self.theirs.payment_token_id = self.token_bob
        self.all_sales.password = "all_sales_pw_123"
        self.authenticate("all_sales", "all_sales_pw_123")
        self.assertEqual(self._post_portal(self.theirs, "autopay/disable").status_code, 200)
        self.assertFalse(self.theirs.payment_token_id)
        message = self.theirs.message_ids.filtered(lambda m: "turned autopay off" in str(m.body))
        self.assertEqual(message.author_id, self.all_sales.partner_id)
        self.assertIn("Alan All turned autopay off", str(message.body))
        self.assertNotIn("The customer", str(message.body))

    def test_the_customer_acts_under_the_customers_name(self):
        self.sub_ada.payment_token_id = self.token_ada
        response = self._post_portal(self.sub_ada, "autopay/disable", access_token=self.sub_ada.access_token)
        self.assertEqual(response.status_code, 200)
        message = self.sub_ada.message_ids.filtered(lambda m: "turned autopay off" in str(m.body))
        self.assertEqual(message.author_id, self.partner)
        self.assertIn("The customer turned autopay off", str(message.body))

    def test_an_own_documents_salesperson_cannot_reach_another_salespersons_subscription(self):
        self.own_sales.password = "own_sales_pw_123"
        self.authenticate("own_sales", "own_sales_pw_123")
        with mute_logger("odoo.http", "werkzeug"):
            self.assertEqual(self._page(self.theirs.get_portal_url().split("?")[0]).status_code, 404)

    def test_a_salesperson_cannot_create_a_subscription_in_a_later_state(self):
        Sub = self.env["subscription.subscription"].with_user(self.all_sales)
        for state in ("past_due", "suspended", "expired", "cancelled"):
            with self.subTest(state=state), self.assertRaisesRegex(UserError, "created draft or active"):
                Sub.create({"partner_id": self.partner.id, "plan_id": self.plan_monthly.id, "state": state,
                            "line_ids": [(0, 0, {"product_id": self.product.id})]})
        with self.assertRaises(UserError):
            Sub.browse(self.theirs.id).write({"date_anchor": "2026-01-15"})

    def test_an_odd_provider_id_gets_a_clear_refusal(self):
        with mute_logger("odoo.http"):
            message = self._rpc_error(f"/my/subscriptions/{self.sub_ada.id}/autopay/transaction",
                                      access_token=self.sub_ada.access_token, provider_id="x",
                                      payment_method_id=self.demo_method.id, flow="direct")
        self.assertIn("cannot save a payment method", message)
        self.assertNotIn("invalid literal", message)

    def test_a_portal_end_is_attributed_to_the_customer(self):
        self.plan_open = self.env["subscription.plan"].create({"name": "Open (roles)", "term_value": 0,
                                                               "customer_can_stop_renewal": True})
        sub = self._create_subscription(partner=self.partner, plan=self.plan_open, date_start="2026-05-01")
        response = self._post_portal(sub, "renewal/stop", access_token=sub.access_token)
        self.assertEqual(response.status_code, 200)
        scheduled = sub.message_ids.filtered(lambda m: "Scheduled to end" in str(m.body))
        self.assertEqual(scheduled.author_id, self.partner)
        self.assertTrue(sub.is_end_scheduled)

    def test_public_visitors_need_the_token(self):
        self.sub_ada.payment_token_id = self.token_ada
        with mute_logger("odoo.http", "werkzeug"):
            response = self.url_open(f"/my/subscriptions/{self.sub_ada.id}/autopay/disable",
                                     data={"csrf_token": self._csrf(self.sub_ada.get_portal_url())})
        self.assertEqual(response.status_code, 404)
        self.env.invalidate_all()
        self.assertEqual(self.sub_ada.payment_token_id, self.token_ada)

    # ------------------------------------------------------------------ what errors reveal

    def test_payment_methods_of_others_get_the_answer_of_one_that_does_not_exist(self):
        self.authenticate("ada_portal", "ada_portal_pw")
        answers = set()
        missing_id = self.env["payment.token"].sudo().search([], order="id desc", limit=1).id + 1000
        for token_id in (self.token_bob.id, missing_id, "not a number"):
            with self.subTest(token_id=token_id), mute_logger("odoo.http"):
                message = self._rpc_error(f"/my/subscriptions/{self.sub_ada.id}/autopay/assign", token_id=token_id,
                                          access_token=self.sub_ada.access_token)
            self.assertTrue(message)
            answers.add(message)
            self.assertNotIn(self.token_bob.payment_details, message)
            self.assertNotIn(self.partner_b.name, message)
        self.assertEqual(len(answers), 1, f"the same answer whether the method exists or not: {answers}")
        self.assertFalse(self.sub_ada.payment_token_id)

    def test_linked_records_name_only_what_the_caller_may_read(self):
        self.sub_bob.payment_token_id = self.token_bob
        self.assertTrue(self.token_bob.get_linked_records_info())
        for user in (self.user_ada, self.other_company_user):
            with self.subTest(user=user.login):
                info = self.token_bob.with_user(user).sudo(False).get_linked_records_info()
                self.assertNotIn(self.sub_bob.name, str(info))

    def test_only_usable_methods_are_offered(self):
        other_provider = self.demo_provider.copy({"name": "Demo of the other company",
                                                  "company_id": self.company_b.id})
        foreign = self._create_token(partner=self.partner, provider_id=other_provider.id, payment_details="9999")
        no_saving = self.demo_provider.copy({"name": "Demo that cannot save methods", "allow_tokenization": False})
        unsaved = self._create_token(partner=self.partner, provider_id=no_saving.id, payment_details="8888")
        usable = self.sub_ada._autopay_usable_tokens()
        self.assertIn(self.token_ada, usable)
        for token in (foreign, unsaved, self.token_bob):
            self.assertNotIn(token, usable)
        html = self._page(self.sub_ada.get_portal_url()).text
        for token in (foreign, unsaved):
            self.assertNotIn(f"o_payment_token_{token.id}", html)
            # As a method is shown (masked digits); the bare digits may occur in the page's hashes.
            self.assertNotIn(f"•••• {token.payment_details}", html)
