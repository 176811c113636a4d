from odoo import models


class PaymentToken(models.Model):
    _inherit = "payment.token"

    def get_linked_records_info(self):
        """Show the subscriptions charged with this payment method before it is archived."""
        res = super().get_linked_records_info()
        subs_sudo = self.env["subscription.subscription"].sudo().search([("payment_token_id", "in", self.ids)])
        # Only the subscriptions the caller may read (a customer's own, a salesperson's ...).
        for sub in subs_sudo.with_env(self.env)._filtered_access("read"):
            res.append({
                "description": self.env._("Subscription (autopay)"),
                "id": sub.id,
                "name": sub.name,
                "url": sub.access_url,
            })
        return res
