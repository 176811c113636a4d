from odoo.exceptions import UserError
from odoo.fields import Command
from odoo.tests import freeze_time, tagged

from .common import SubscriptionCommon


@tagged("post_install", "-at_install")
class TestQuotationStartsSubscription(SubscriptionCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_fee = cls.env["product.product"].create({"name": "Welcome pack", "list_price": 5.0})

    def _quotation(self, plan=None, products=None):
        return self.env["sale.order"].create({
            "partner_id": self.partner.id,
            "subscription_plan_id": plan.id if plan else False,
            "order_line": [Command.create({"product_id": p.id, "product_uom_qty": 2})
                           for p in (products or [self.product, self.setup_fee])],
        })

    @freeze_time("2026-03-10")
    def test_confirmation_starts_subscription_with_plan_price(self):
        order = self._quotation(plan=self.plan_quarterly)
        recurring = order.order_line.filtered(lambda line: line.product_id == self.product)
        self.assertEqual(recurring.price_unit, 32.0, "the plan's price per period")
        order.action_confirm()
        sub = order.subscription_ids
        self.assertEqual(len(sub), 1)
        self.assertEqual(sub.state, "active")
        self.assertEqual(sub.plan_id, self.plan_quarterly)
        self.assertEqual(sub.line_ids.product_id, self.product, "one-off products stay on the order")
        self.assertEqual(sub.line_ids.quantity, 2)
        self.assertEqual(sub.amount_untaxed, 64.0)
        self.assertEqual(str(sub.next_invoice_date), "2026-03-10")
        # The order invoices the one-off product only; the subscription invoices the rest.
        self.assertEqual(recurring.qty_to_invoice, 0)
        fee = order.order_line - recurring
        self.assertEqual(fee.qty_to_invoice, 2)
        self.assertEqual(order.subscription_count, 1)

    def test_order_without_plan_creates_nothing(self):
        order = self._quotation()
        order.action_confirm()
        self.assertFalse(order.subscription_ids)

    def test_plan_without_subscription_product_refused(self):
        order = self._quotation(plan=self.plan_monthly, products=[self.setup_fee])
        with self.assertRaisesRegex(UserError, "no subscription product"):
            order.action_confirm()
