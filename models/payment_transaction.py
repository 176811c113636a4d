from odoo import SUPERUSER_ID, api, fields, models

from .. import const
from ..tools import log_notes


class PaymentTransaction(models.Model):
    """Autopay charges and autopay enrollment on any provider; Stripe's specifics live in
    ``payment_transaction_stripe.py``."""

    _inherit = "payment.transaction"

    # === FIELDS === #

    subscription_charge_ids = fields.One2many("subscription.charge", "transaction_id", string="Autopay charges")
    subscription_autopay_id = fields.Many2one(
        "subscription.subscription", string="Autopay setup for", readonly=True, index="btree_not_null",
        help="The subscription whose autopay method is the token this transaction saves.",
    )
    subscription_failure_code = fields.Char(
        readonly=True, help="The provider's error code of a failed autopay charge (e.g. Stripe's card_declined).",
    )
    subscription_review_reason = fields.Text(
        readonly=True, help="Why the outcome of this autopay charge is unknown.",
    )

    # === CONSTRAINT METHODS === #

    @api.constrains("token_id")
    def _check_token_is_active(self):
        """Upstream's check assumes one transaction per call; autopay creates them in batches."""
        for tx in self:
            super(PaymentTransaction, tx)._check_token_is_active()
        return True

    # === BUSINESS METHODS - PROCESSING === #

    def _log_sent_message(self):
        """While an autopay run calls the provider (context ``subscription_defer_logs``, the call's
        own transaction), its transactions' messages are neither built nor logged: the charge keeps
        the call's state (``subscription.charge.call_state``), and whoever handles the charge next
        (the run's post-processing, a webhook, staff, Odoo's post-processing) logs them first
        (``subscription.charge._take_call_notes``)."""
        return super(PaymentTransaction, self._subscription_logging_now())._log_sent_message()

    def _log_received_message(self):
        """As ``_log_sent_message``: an autopay run's answers are logged after the call."""
        return super(PaymentTransaction, self._subscription_logging_now())._log_received_message()

    def _subscription_logging_now(self):
        """Those of these transactions whose messages are logged now (all but an autopay run's
        while it calls the provider)."""
        if not self.env.context.get("subscription_defer_logs"):
            return self
        return self.filtered(lambda tx: not tx._subscription_logs_in_batch())

    def _subscription_call_notes(self, call_state):
        """The messages Odoo logs for a token payment's call, for an autopay run's call whose
        logging was left for later: the transaction initiated, then the answer if the transaction
        is still in the state the call left it in (``call_state``; an answer that moved it on is
        logged by Odoo when it comes, after these, see ``_log_message_on_linked_documents``).

        :param str call_state: the transaction's state when the call returned
        :return: list of ``(account.move record, message, author partner id)``, in order
        """
        self.ensure_one()
        messages = [self._get_sent_message()]
        if call_state == self.state and self.state != "draft":
            messages.append(self._get_received_message())
        return [note for message in messages if message for note in self._subscription_log_notes(message)]

    def _log_message_on_linked_documents(self, message):
        """Autopay charges' transactions log Odoo's messages on their invoices the light way (as
        internal notes through Odoo's ``_message_log_batch``, same text and author, without
        ``message_post``'s recipients, reply-to and thread computations): during a charge's
        post-processing (context ``subscription_log_buffer``, a ``tools.NoteBuffer``) they are
        collected, and the charge logs them with its own notes in one create per round
        (``tools.log_notes``), in the same transaction. Other transactions, and autopay ones
        outside a run (a webhook, staff, Odoo's post-processing cron), log as Odoo does, after
        the messages of the run's call if they are still to be logged (the charge is locked
        first, waiting for a run settling it)."""
        buffer = self.env.context.get("subscription_log_buffer")
        if buffer is None or not self._subscription_logs_in_batch():
            if self.subscription_charge_ids:
                log_notes(self.subscription_charge_ids._lock_pending(skip_locked=False)._take_call_notes())
            return super()._log_message_on_linked_documents(message)
        buffer.extend(self._subscription_log_notes(message))
        return None

    def _subscription_logs_in_batch(self):
        """This transaction is an autopay charge's: its messages go to its invoices only (no sales
        order, no source transaction: ``subscription.charge._create_for_invoices`` makes it)."""
        self.ensure_one()
        return bool(self.subscription_charge_ids)

    def _subscription_log_notes(self, message):
        """The notes Odoo's ``account_payment`` posts for ``message``: one per invoice of the
        transaction, with the same author.

        :return: list of ``(account.move record, message, author partner id)``
        """
        self.ensure_one()
        author = self.env.user.partner_id if self.env.uid == SUPERUSER_ID else self.partner_id
        return [(invoice, message, author.id) for invoice in self._get_invoices_to_notify()]

    def _apply_updates(self, payment_data):
        """Autopay charges follow their transaction as soon as the provider's answer is applied.
        An answer arriving before the run post-processed the charge (a webhook) comes after the
        messages of the run's call, logged first while the transaction is still in the state the
        call left it in (so its answer is logged too)."""
        sync = self.subscription_charge_ids and not self.env.context.get("subscription_charge_defer_sync")
        if sync:
            # Waits for a run settling the charge (then this is retried, and finds it settled).
            log_notes(self.subscription_charge_ids._lock_pending(skip_locked=False)._take_call_notes())
        res = super()._apply_updates(payment_data)
        if sync:
            self.subscription_charge_ids._sync_from_transaction()
        return res

    def _post_process(self):
        """Paid autopay charges: their payments are created in one ``create``, posted together and
        reconciled with their invoices in one reconciliation plan, instead of one payment created,
        posted and reconciled per transaction. Odoo's post-processing then goes on as usual (it
        finds each transaction's payment and only logs it). Other transactions, and any paid
        autopay charge Odoo's per-transaction path must handle (an early payment discount, a
        partial capture), are left to it."""
        batch = self.filtered(lambda tx: tx._subscription_batch_payment_ok())
        if len(batch) > 1:
            batch._subscription_create_payments()
        return super()._post_process()

    def _subscription_batch_payment_ok(self):
        """This transaction is a paid autopay charge whose payment is a plain one for its invoices."""
        self.ensure_one()
        return bool(
            self.state == "done" and self.subscription_charge_ids and self.operation != "validation"
            and not self.payment_id and not self.is_post_processed and not self.source_transaction_id
            and not self.child_transaction_ids and self.invoice_ids
            and all(invoice.state == "posted" for invoice in self.invoice_ids)
            and not any(invoice._get_invoice_next_payment_values().get("installment_state") == "epd"
                        for invoice in self.invoice_ids))

    def _subscription_create_payments(self):
        """The payments of these paid transactions, as Odoo's ``_create_payment`` makes each one
        (same values, posted, reconciled with the transaction's invoices), created, posted and
        reconciled in batches.

        :return: the ``account.payment`` records, in the order of ``self``
        """
        vals_list = []
        for tx in self:
            tx = tx.with_company(tx.company_id)
            method_line = tx.provider_id.journal_id.inbound_payment_method_line_ids.filtered(
                lambda line, tx=tx: line.payment_provider_id == tx.provider_id)
            term_lines = tx.invoice_ids.line_ids.filtered(lambda line: line.display_type == "payment_term")
            vals = {
                "amount": abs(tx.amount),
                "payment_type": "inbound" if tx.amount > 0 else "outbound",
                "currency_id": tx.currency_id.id,
                "partner_id": tx.partner_id.commercial_partner_id.id,
                "partner_type": "customer",
                "journal_id": tx.provider_id.journal_id.id,
                "company_id": tx.provider_id.company_id.id,
                "payment_method_line_id": method_line.id,
                "payment_token_id": tx.token_id.id,
                "payment_transaction_id": tx.id,
                "memo": f"{tx.reference} - {tx.provider_reference or ''}",
                # No write-off (as Odoo's ``[]``), but without the key: the payments' journal
                # entries are then created together when they are posted, not one per payment.
                "invoice_ids": tx.invoice_ids,
            }
            if term_lines:
                vals["destination_account_id"] = term_lines[0].account_id.id
            vals_list.append(vals)
        # As the billing day's invoices: no follower added, and the creation message and field
        # tracking skipped only where they are not the legal audit trail (restrictive audit trail
        # off), as the billing day does (``subscription.subscription._bill_apply``).
        context = {"mail_create_nosubscribe": True}
        if not any(self.company_id.mapped("restrictive_audit_trail")):
            context.update(mail_create_nolog=True, mail_notrack=True)
        payments = self.env["account.payment"].with_context(**context).create(vals_list)
        # Nothing is reconciled while the entries are made: Odoo's reconciliation queries are
        # skipped for them (``account.payment._compute_stat_buttons_from_reconciliation``).
        payments.with_context(subscription_batch_payments=True).action_post()
        payments = payments.with_env(self.env)
        plan = []
        for tx, payment in zip(self, payments, strict=True):
            tx.payment_id = payment
            invoices = tx.invoice_ids.filtered(lambda inv: inv.state != "cancel")
            lines = (payment.move_id.line_ids + invoices.line_ids).filtered(
                lambda line, payment=payment: line.account_id == payment.destination_account_id
                and not line.reconciled)
            if lines:
                plan.append(lines)
        if plan:
            self.env["account.move.line"]._reconcile_plan(plan)
        return payments

    def _tokenize(self, payment_data):
        """A payment method saved from a subscription's portal page becomes its autopay method."""
        res = super()._tokenize(payment_data)
        if self.subscription_autopay_id and self.token_id:
            self.subscription_autopay_id.sudo()._enroll_autopay(self.token_id)
        return res

    # === BUSINESS METHODS - AUTOPAY === #

    def _subscription_classify_failure(self):
        """How this failed autopay transaction failed.

        The rule for providers that give no codes is conservative: an ``error`` may pass on
        a later try, a ``cancel`` (refused mandate, payment cancelled) needs the customer.
        Providers with codes override it.

        :return: ``(kind, code)``, kind being ``temporary`` (retried on the schedule) or
            ``permanent`` (the subscription is suspended at once)
        """
        self.ensure_one()
        kind = "permanent" if self.state == "cancel" else "temporary"
        return kind, self.subscription_failure_code or self.state

    def _subscription_reverse_payment(self, reason):
        """The money of this autopay charge was taken back (chargeback, reversed debit): its payment
        is cancelled, which reopens the invoice and puts it back into collection.

        :param str reason: why, for the chatter
        """
        self.ensure_one()
        charges = self.subscription_charge_ids.filtered(lambda c: c.state == "done" and not c.is_reversed)
        if not charges:
            return
        for sub in charges.subscription_id:
            sub.message_post(body=self.env._("The payment %(reference)s was taken back: %(reason)s",
                                             reference=self.reference, reason=reason))
        payment = self.payment_id.sudo()
        if payment and payment.state not in ("draft", "canceled"):
            payment.action_draft()  # unreconciles: the invoice reopens (account_move.py puts it back)
            payment.action_cancel()
        # A payment already gone: the charge still counts as reversed.
        charges.filtered(lambda c: not c.is_reversed)._mark_reversed(reason)

    def _subscription_ask_status(self):
        """Ask the provider again about a transaction whose outcome is unknown (still draft).

        The request is sent again only to providers where that cannot charge twice
        (``const.RESEND_SAFE_PROVIDERS``); for the others the review reason says to check
        the provider's dashboard. Providers that can read a payment's status override it.
        """
        self.ensure_one()
        if self.provider_code not in const.RESEND_SAFE_PROVIDERS:
            self.subscription_review_reason = self.env._(
                "%(provider)s cannot be asked for the status from Odoo: check its dashboard, then mark the "
                "charge paid or failed.", provider=self.provider_id.name)
            return
        self.subscription_review_reason = False
        self._charge_with_token()
