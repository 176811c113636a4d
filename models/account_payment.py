from odoo import models


class AccountPayment(models.Model):
    """Autopay's batched payments (``payment.transaction._subscription_create_payments``) without
    Odoo's reconciliation queries where nothing is reconciled yet."""

    _inherit = "account.payment"

    # === COMPUTE METHODS === #

    def _compute_stat_buttons_from_reconciliation(self):
        """While autopay posts its payments (context ``subscription_batch_payments``), a payment
        whose journal items have no partial reconciliation yet gets what Odoo's compute gives it
        from its own fields, without Odoo's two SQL queries.

        Odoo's ``_generate_journal_entry`` links each payment to its new entry with one ``write``
        per payment, and each such write asks, twice, which invoices the payment is reconciled with
        (``account.move._search_reconciled_payment_ids``, through the invoices' ``payment_state``):
        two queries joining payments, entries, items and partials on ``OR`` conditions, whose
        planning alone takes milliseconds, per payment. Both queries only find rows through a
        partial reconciliation of the payment's items: with none, Odoo's compute comes down to the
        payment's own ``invoice_ids``, as below. Payments with partials, and any payment outside
        that context, go to Odoo's compute. A test compares both on the same payments."""
        if not self.env.context.get("subscription_batch_payments") or not all(self._ids):
            # Unsaved payments in the set change what Odoo's compute gives: all of them go to it.
            return super()._compute_stat_buttons_from_reconciliation()
        quiet = self.filtered(lambda pay: not any(
            line.matched_debit_ids or line.matched_credit_ids for line in pay.sudo().move_id.line_ids))
        if self - quiet:
            super(AccountPayment, self - quiet)._compute_stat_buttons_from_reconciliation()
        for pay in quiet:
            pay.reconciled_invoice_ids = pay.invoice_ids.filtered(lambda move: move.is_sale_document(True))
            pay.reconciled_bill_ids = pay.invoice_ids.filtered(lambda move: move.is_purchase_document(True))
            pay.reconciled_invoices_count = len(pay.reconciled_invoice_ids)
            pay.reconciled_bills_count = len(pay.reconciled_bill_ids)
            pay.reconciled_statement_line_ids = False
            pay.reconciled_statement_lines_count = 0
            move_types = pay.reconciled_invoice_ids.mapped("move_type")
            pay.reconciled_invoices_type = "credit_note" if move_types == ["out_refund"] else "invoice"
