from odoo import api, models


class SubscriptionDemo(models.AbstractModel):
    """What the demo data (``subscription_demo.xml``) does that XML records cannot: cards of the
    demo payment provider (an optional module), payments, and the states of the stories told."""

    _name = "subscription.demo"
    _description = "Subscription demo data"

    @api.model
    def _enroll_autopay(self, sub_ids):
        """Autopay with a demo card, when the demo payment provider is installed."""
        if "demo_simulated_state" not in self.env["payment.token"]._fields:
            return
        provider = self.env.ref("payment.payment_provider_demo", raise_if_not_found=False)
        if not provider or provider.state == "disabled":
            return
        for sub in self.env["subscription.subscription"].browse(sub_ids):
            token = self.env["payment.token"].create({
                "provider_id": provider.id,
                "payment_method_id": self.env.ref("payment_demo.payment_method_demo").id,
                "partner_id": sub.partner_id.id,
                "provider_ref": f"demo-{sub.partner_id.id}",
                "payment_details": "4242",
                "demo_simulated_state": "done",
            })
            sub.payment_token_id = token

    @api.model
    def _pay_invoices(self, sub_ids, count):
        """The first ``count`` invoices of these subscriptions are paid."""
        invoices = self.env["subscription.subscription"].browse(sub_ids).invoice_ids.sorted("invoice_date")[:count]
        if invoices:
            self.env["account.payment.register"].with_context(
                active_model="account.move", active_ids=invoices.ids,
            ).create({"group_payment": False})._create_payments()

    @api.model
    def _set_state(self, sub_ids, state, message=None):
        """Move these subscriptions to ``state`` through the lifecycle's only way to do it."""
        self.env["subscription.subscription"].browse(sub_ids)._update_state(state, message=message)

    @api.model
    def _close(self, sub_ids, reason_id, note=False):
        subs = self.env["subscription.subscription"].browse(sub_ids)
        subs._action_close("cancelled", self.env["subscription.close.reason"].browse(reason_id), note)
