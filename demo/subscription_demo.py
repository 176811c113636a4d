from odoo import api, models


class SubscriptionDemo(models.AbstractModel):
    """What the demo data (``subscription_demo.xml``) does that XML records cannot: cards of the
    demo payment provider (an optional module), payments, and the states of the stories told."""

    _name = "subscription.demo"
    _description = "Subscription demo data"

    @api.model
    def _enroll_autopay(self, sub_ids, outcome="done"):
        """Autopay with a demo card (whose charges end in ``outcome``), when the demo payment
        provider is installed. Returns whether it is."""
        if "demo_simulated_state" not in self.env["payment.token"]._fields:
            return False
        provider = self.env.ref("payment.payment_provider_demo", raise_if_not_found=False)
        if not provider or provider.state == "disabled":
            return False
        for sub in self.env["subscription.subscription"].browse(sub_ids):
            token = self.env["payment.token"].create({
                "provider_id": provider.id,
                "payment_method_id": self.env.ref("payment_demo.payment_method_demo").id,
                "partner_id": sub.partner_id.id,
                "provider_ref": f"demo-{sub.partner_id.id}",
                "payment_details": "4242",
                "demo_simulated_state": outcome,
            })
            sub.payment_token_id = token
        return True

    @api.model
    def _billed_on_time(self, sub_ids):
        """The demo bills months of history today; as if each invoice had been sent on its day, each
        is due on its invoice date (an invoice issued today for a past period is due today)."""
        for invoice in self.env["subscription.subscription"].browse(sub_ids).invoice_ids:
            invoice.invoice_date_due = invoice.invoice_date
            invoice.line_ids.filtered(lambda line: line.display_type == "payment_term").date_maturity = (
                invoice.invoice_date)

    @api.model
    def _settle(self, sub_ids, keep_unpaid=0):
        """The customers of these subscriptions paid every invoice but their last ``keep_unpaid``;
        no invoice e-mail goes out for the past (their PDFs are made by the sending job)."""
        subs = self.env["subscription.subscription"].browse(sub_ids)
        subs.invoice_ids.write({"subscription_send": "pdf"})
        to_pay = self.env["account.move"]
        for sub in subs:
            unpaid = sub.invoice_ids.filtered(lambda m: m.payment_state == "not_paid").sorted("invoice_date")
            to_pay |= unpaid[:len(unpaid) - keep_unpaid] if keep_unpaid else unpaid
        if to_pay:
            self.env["account.payment.register"].with_context(
                active_model="account.move", active_ids=to_pay.ids,
            ).create({"group_payment": False})._create_payments()

    @api.model
    def _overdue(self, sub_ids):
        """The dunning of manual payers, as the daily scheduled action runs it: past due (or
        suspended once the grace period is over), the customer reminded."""
        subs = self.env["subscription.subscription"].browse(sub_ids)
        subs.filtered_domain(subs._dunning_overdue_domain())._dunning_mark_past_due()
        subs.filtered_domain(subs._dunning_grace_over_domain())._dunning_suspend()

    @api.model
    def _autopay_fails(self, sub_ids, outcome):
        """These subscriptions' demo card is refused (``outcome``: ``error`` is retried, ``cancel`` is
        final): their unpaid invoice gets the failed attempt the autopay run would make."""
        if not self._enroll_autopay(sub_ids, outcome=outcome):
            return
        subs = self.env["subscription.subscription"].browse(sub_ids)
        invoices = subs.invoice_ids.filtered(lambda m: m.payment_state == "not_paid")
        Charge = self.env["subscription.charge"]
        charges = Charge._create_for_invoices(invoices)
        for charge in charges.filtered(lambda c: c.state == "pending"):
            charge._send()
        charges._sync_from_transaction()

    @api.model
    def _suspend_by_staff(self, sub_ids, reason):
        self.env["subscription.subscription"].browse(sub_ids).action_suspend(reason=reason)

    @api.model
    def _close(self, sub_ids, reason_id, note=False):
        subs = self.env["subscription.subscription"].browse(sub_ids)
        subs._action_close("cancelled", self.env["subscription.close.reason"].browse(reason_id), note)
