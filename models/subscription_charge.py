import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import timedelta

import psycopg2.errors

from odoo import api, fields, models, modules
from odoo.exceptions import UserError
from odoo.fields import Command, Domain
from odoo.tools import SQL, config, format_amount, format_date, split_every

from .. import const
from ..tools import NoteBuffer, log_notes, process_in_locked_batches, queue_mails

_logger = logging.getLogger(__name__)

DEFAULT_CHARGE_BATCH_SIZE = 100
# A charge whose transaction is still a draft this long after it was sent was interrupted
# (worker killed between the commit and the provider's answer): it goes to review.
INTERRUPTED_AFTER = timedelta(hours=1)
POST_PROCESS_GROUP = 25
# Provider calls in flight at once per worker (ir.config_parameter
# subscription_billing.charge_concurrency). A provider answers in 0.3-1 s: one call at a time
# would cap a worker at 1-3 charges/s. Stripe accepts 100 requests/s in live mode and 25 in test
# mode per account (https://docs.stripe.com/rate-limits); a refused call (429) is a temporary
# failure retried by the dunning schedule.
DEFAULT_CHARGE_CONCURRENCY = 8


class SubscriptionCharge(models.Model):
    _name = "subscription.charge"
    _description = "Autopay charge"
    _order = "id desc"
    _check_company_auto = True
    _rec_name = "invoice_id"

    # === FIELDS === #

    subscription_id = fields.Many2one(
        "subscription.subscription", required=True, index=True, ondelete="cascade", readonly=True,
    )
    invoice_id = fields.Many2one("account.move", required=True, index=True, ondelete="restrict", readonly=True)
    partner_id = fields.Many2one(related="subscription_id.partner_id", store=True, string="Customer")
    user_id = fields.Many2one(related="subscription_id.user_id", string="Salesperson")
    company_id = fields.Many2one(related="subscription_id.company_id", store=True, index=True)
    currency_id = fields.Many2one("res.currency", required=True, readonly=True)
    amount = fields.Monetary(readonly=True)
    attempt = fields.Integer(readonly=True, default=1, help="1 is the first try, 2 the first retry, ...")
    date_attempt = fields.Datetime(string="Attempted on", default=fields.Datetime.now, readonly=True)
    token_id = fields.Many2one("payment.token", string="Payment method", readonly=True)
    transaction_id = fields.Many2one("payment.transaction", readonly=True, index="btree_not_null")
    state = fields.Selection(
        [("pending", "Pending"), ("done", "Paid"), ("failed", "Failed"), ("cancelled", "Not needed")],
        required=True, default="pending", index=True, readonly=True,
        help="Not needed: the invoice was paid by other means just before the provider was called; nothing was sent.",
    )
    is_reversed = fields.Boolean(
        string="Reversed", readonly=True, copy=False, index=True,
        help="The payment of this charge was undone afterwards (payment cancelled or reset, reconciliation undone, "
        "chargeback): the invoice went back into collection.",
    )
    date_reversed = fields.Date(readonly=True, copy=False)
    failure_kind = fields.Selection([("temporary", "Temporary"), ("permanent", "Permanent")], readonly=True)
    failure_code = fields.Char(readonly=True, help="The provider's code, e.g. Stripe's decline code.")
    failure_message = fields.Text(readonly=True)
    is_latest_attempt = fields.Boolean(
        compute="_compute_is_latest_attempt", store=True, string="Latest attempt",
        help="No later attempt exists for this invoice: the list of payment failures shows one row per invoice.",
    )
    invoice_residual = fields.Monetary(
        related="invoice_id.amount_residual", string="Still due",
        help="What is left to pay on the invoice now (0 once paid or credited).",
    )
    payment_method_label = fields.Char(
        compute="_compute_payment_method_label", string="Paid with",
        help="The payment method as the customer knows it, e.g. Visa •••• 4242, exp. 12/28.",
    )
    failure_label = fields.Char(
        compute="_compute_failure_label", string="Reason",
        help="Why the charge failed, in words a customer understands (from the provider's code when known).",
    )
    next_retry_date = fields.Date(
        compute="_compute_next_retry_date", inverse="_inverse_next_retry_date", store=True, index="btree_not_null",
        help="Day the invoice is charged again: its 'Autopay on' date, shown on its latest failed attempt. "
        "Changing it here reschedules the retry.",
    )
    date_sent = fields.Datetime(
        string="Sent on", readonly=True, copy=False,
        help="When the provider was called (saved just before the call): a charge interrupted before it "
        "was sent is charged again, one interrupted after is checked by a person.",
    )
    call_state = fields.Char(
        readonly=True, copy=False,
        help="The transaction's state when the run's provider call returned, kept while Odoo's messages of that "
        "call (initiated, then the answer) wait to be logged on the invoice with the charge's post-processing; "
        "empty once logged.",
    )
    review_reason = fields.Text(readonly=True, help="Why the outcome of this charge was unknown.")
    needs_review = fields.Boolean(
        compute="_compute_needs_review", store=True, index=True,
        help="The outcome is unknown: ask the provider again, or mark the charge paid or failed.",
    )

    # One successful charge per invoice, and one charge in flight per invoice, whatever happens.
    _one_done_per_invoice = models.UniqueIndex(
        "(invoice_id) WHERE state = 'done' AND is_reversed IS NOT TRUE",
        "This invoice has already been charged successfully.",
    )
    _one_pending_per_invoice = models.UniqueIndex(
        "(invoice_id) WHERE state = 'pending'", "This invoice already has a charge in progress."
    )

    # === COMPUTE METHODS === #

    @api.depends("state", "review_reason")
    def _compute_needs_review(self):
        for charge in self:
            charge.needs_review = charge.state == "pending" and bool(charge.review_reason)

    @api.depends("state", "invoice_id.subscription_charge_date", "invoice_id.subscription_charge_ids")
    def _compute_next_retry_date(self):
        """The invoice's charge date is the one truth; its latest attempt, when failed, shows it."""
        for charge in self:
            latest = charge._is_latest_attempt()
            charge.next_retry_date = charge.invoice_id.subscription_charge_date if (
                charge.state in ("failed", "cancelled") and latest) else False

    def _inverse_next_retry_date(self):
        for charge in self:
            if charge.state != "failed" or not charge._is_latest_attempt():
                raise UserError(self.env._(
                    "Only the latest failed attempt of an invoice can be rescheduled (%(charge)s).",
                    charge=charge.display_name))
            if charge.next_retry_date and charge.subscription_id.state not in const.BILLABLE_STATES:
                raise UserError(self.env._(
                    "%(sub)s is %(state)s: its invoices are not charged.",
                    sub=charge.subscription_id.display_name, state=charge.subscription_id._state_label()))
            charge.invoice_id.sudo().subscription_charge_date = charge.next_retry_date

    @api.depends("invoice_id.subscription_charge_ids")
    def _compute_is_latest_attempt(self):
        for charge in self:
            charge.is_latest_attempt = charge._is_latest_attempt()

    @api.depends("token_id")
    def _compute_payment_method_label(self):
        for charge in self:
            charge.payment_method_label = charge.token_id._subscription_label()

    @api.depends("state", "failure_code", "failure_message")
    def _compute_failure_label(self):
        """Stripe's decline codes (https://docs.stripe.com/declines/codes) and our own problem codes
        read as "Declined: insufficient funds"; others show the provider's message."""
        labels = {
            "insufficient_funds": self.env._("Declined: insufficient funds"),
            "card_declined": self.env._("Declined by the bank"),
            "generic_decline": self.env._("Declined by the bank"),
            "do_not_honor": self.env._("Declined by the bank"),
            "expired_card": self.env._("Declined: card expired"),
            "lost_card": self.env._("Declined: card reported lost"),
            "stolen_card": self.env._("Declined: card reported stolen"),
            "incorrect_cvc": self.env._("Declined: wrong security code"),
            "processing_error": self.env._("Error at the bank: will be tried again"),
            "try_again_later": self.env._("Error at the bank: will be tried again"),
            "authentication_required": self.env._("The bank asks you to confirm the payment"),
            "card_velocity_exceeded": self.env._("Declined: card limit reached"),
            "withdrawal_count_limit_exceeded": self.env._("Declined: card limit reached"),
            const.CODE_TOKEN_INACTIVE: self.env._("Payment method removed"),
        }
        for charge in self:
            if charge.state != "failed":
                charge.failure_label = False
                continue
            charge.failure_label = labels.get(charge.failure_code) or (
                self.env._("Declined: %(reason)s", reason=charge.failure_message.strip().rstrip("."))
                if charge.failure_message else self.env._("Declined"))

    def _subscription_mail_header(self):
        """Header of the customer e-mails about this charge (see ``mail_layout_customer``)."""
        self.ensure_one()
        return {"caption": self.env._("Your payment"), "title": self.invoice_id.name}

    def _compute_display_name(self):
        for charge in self:
            charge.display_name = self.env._(
                "%(invoice)s, attempt %(attempt)s", invoice=charge.invoice_id.name or "", attempt=charge.attempt,
            )

    # === ACTION METHODS === #

    def action_retry_now(self):
        """Charge the invoice of these failed charges again, now, as the autopay run would.

        Every exactly-once rule of the run holds: the invoice is locked (a run charging it at
        the same moment makes this refuse), it must still be open with no charge in progress,
        and the new transaction is committed before the provider is called.

        :return: an action opening the new attempt(s)
        :raise UserError: a charge is not the latest failed attempt of an open invoice of a
            running autopay subscription, or its invoice is being charged right now
        :raise AccessError: the user may not edit the subscriptions
        """
        self.subscription_id.check_access("write")
        for charge in self:
            problem = charge._retry_now_problem()
            if problem:
                raise UserError(problem)
        invoices = self.invoice_id.sudo()
        locked = invoices.try_lock_for_update()
        for invoice in locked:
            invoice.subscription_charge_date = invoice.company_id._subscription_today()
        due = locked.filtered_domain(invoices._autopay_due_domain())
        if due != invoices:
            raise UserError(self.env._(
                "%(invoices)s is being charged right now: wait for that attempt's outcome.",
                invoices=", ".join((invoices - due).mapped("name"))))
        for charge in self:
            charge.subscription_id.message_post(body=self.env._(
                "%(user)s asked to charge %(invoice)s again now.", user=self.env.user.name,
                invoice=charge.invoice_id.sudo().name))
        # Rights were checked above; the attempt itself runs as the scheduled action does.
        new = self.sudo()._charge_invoices(due).sudo(False)
        action = self.env["ir.actions.act_window"]._for_xml_id("subscription_billing.subscription_charge_action")
        if len(new) == 1:
            action.update(res_id=new.id, view_mode="form", views=[(False, "form")])
        else:
            action["domain"] = [("id", "in", new.ids)]
        return action

    def action_check_status(self):
        """Ask the provider again; its answer settles the charge, or it stays in review."""
        self._check_reviewable()
        for charge in self:
            tx = charge.transaction_id.sudo()  # every pending charge has one
            if tx.state == "draft":
                tx.with_context(subscription_charge_defer_sync=True)._subscription_ask_status()
            charge._sync_from_transaction()
            if charge.state == "pending" and tx.state == "draft":
                charge._mark_review(tx.subscription_review_reason or self.env._(
                    "The provider still gives no final answer."))
        return True

    def action_mark_paid(self):
        """Staff saw the money arrive (e.g. in the provider's dashboard): record the payment."""
        self._check_reviewable()
        for charge in self:
            tx = charge.transaction_id.sudo()
            tx._set_done(state_message=self.env._("Marked as paid by %(user)s.", user=self.env.user.name))
            charge._on_success()
        return True

    def action_mark_failed(self):
        """Staff know the charge did not go through: it fails and follows the retry schedule."""
        self._check_reviewable()
        for charge in self:
            message = self.env._("Marked as failed by %(user)s.", user=self.env.user.name)
            charge.transaction_id.sudo()._set_error(message)
            charge._on_failure(message)
        return True

    # === BUSINESS METHODS === #

    @api.model
    def _cron_charge_autopay(self, batch_size=None):
        """Charge every open invoice of autopay subscriptions whose (re)try date has come.

        Each transaction is committed before its provider is called, and the
        provider's answer is committed before it is post-processed, so a crash at
        any point never charges an invoice twice: an interrupted charge is finished
        from what the provider answered, or put in review when nobody knows.
        Invoices locked by another worker are skipped (``SKIP LOCKED``).
        """
        batch_size = batch_size or int(self.env["ir.config_parameter"].sudo().get_param(
            "subscription_billing.charge_batch_size", DEFAULT_CHARGE_BATCH_SIZE))
        self._recover_interrupted()
        Move = self.env["account.move"].sudo()
        process_in_locked_batches(
            Move, Move._autopay_due_domain(), "_subscription_charge_autopay",
            batch_size, order="subscription_charge_date, id", queue_domain="_autopay_due_domain",
        )

    @api.model
    def _charge_invoices(self, invoices):
        """Charge these locked, due invoices: one attempt each, committed at every step.

        :param invoices: ``account.move`` records locked by the caller and due for autopay
        :return: the charges created (one per invoice)
        """
        cron = self.env["ir.cron"]
        charges = self._create_for_invoices(invoices)
        # The transactions exist in the database before any provider hears of them.
        cron._commit_progress()
        # Payments, reconciliation, e-mails and statuses by small groups, as the answers come (the
        # other calls stay in flight meanwhile): posting payments locks the journal's numbering
        # until the commit, so other workers wait that long.
        for group in self._send_all(charges.filtered(lambda c: c.state == "pending")):
            self._post_process_group(group)
        charges.filtered(lambda c: c.state == "failed" and not c.failure_kind)._on_failure()
        return charges

    @api.model
    def _send_all(self, charges):
        """Call the providers for these committed charges, several calls in flight at once, and
        give the answered ones back by groups as they come, to be post-processed while the other
        calls are in flight.

        Each charge is sent in a transaction of its own (a worker thread with its own database
        cursor): the charge is claimed as sent (``_mark_sent``, committed, before that
        transaction reads anything), its invoice locked and checked, the provider called, and
        the answer committed before anything is post-processed. At most
        ``subscription_billing.charge_concurrency`` calls are in flight (default
        ``DEFAULT_CHARGE_CONCURRENCY``, capped so that each worker keeps connections of Odoo's
        ``db_maxconn`` pool free: two per call); 1, or Odoo's test mode (one shared test cursor),
        sends them one after the other, each in a transaction of its own.

        :param charges: pending ``subscription.charge`` records, committed
        :return: a generator of ``subscription.charge`` groups (at most ``POST_PROCESS_GROUP``
            each) whose provider was called; every call of a group was committed before the
            group is given, and the caller's transaction starts afresh (it sees the answers)
        """
        concurrency = int(self.env["ir.config_parameter"].sudo().get_param(
            "subscription_billing.charge_concurrency", DEFAULT_CHARGE_CONCURRENCY) or 1)
        concurrency = min(concurrency, max(1, (config["db_maxconn"] - 4) // 2))
        cron = self.env["ir.cron"]
        # The threads' transactions see the charges; no lock is held meanwhile. Each charge's own
        # transaction then starts after its claim (no stale snapshot of the charge row).
        cron._commit_progress()
        if concurrency <= 1 or len(charges) <= 1 or modules.module.current_test:
            sent = []
            for charge in charges:
                # The invoice stays locked until the answer is committed.
                if charge._mark_sent() and charge._still_to_collect():
                    charge._send()
                    sent.append(charge.id)
                cron._commit_progress()  # each answer is durable before anything is post-processed
                if len(sent) == POST_PROCESS_GROUP:
                    yield self.browse(sent)
                    sent = []
            if sent:
                yield self.browse(sent)
            return
        with ThreadPoolExecutor(max_workers=min(concurrency, len(charges)),
                                thread_name_prefix="subscription_charge") as pool:
            futures = {pool.submit(self._send_in_own_transaction, charge_id): charge_id for charge_id in charges.ids}
            sent = []
            for count, future in enumerate(as_completed(futures), start=1):
                if future.result():
                    sent.append(futures[future])
                if sent and (len(sent) == POST_PROCESS_GROUP or count == len(futures)):
                    # The group's answers were committed by the threads: end this cursor's
                    # transaction (nothing is pending in it) so that the next one sees them.
                    cron._commit_progress()
                    self.env.invalidate_all()
                    yield self.browse(sent)
                    sent = []

    def _send_in_own_transaction(self, charge_id):
        """One charge sent by a worker thread of ``_send_all``, in a cursor of its own: checked,
        marked sent, sent, committed. Never raises (a failure is logged and the charge goes to
        review). :return: True when the provider was called"""
        try:
            with self.env.registry.cursor() as cr:
                env = api.Environment(cr, self.env.uid, self.env.context, su=self.env.su)  # as the caller (sudo kept)
                charge = env["subscription.charge"].browse(charge_id)
                if not (charge._mark_sent() and charge._still_to_collect()):
                    return False
                charge._send()
                return True
        except Exception:  # the call's outcome is unknown: the next run's recovery decides
            _logger.exception("Autopay charge %s could not be sent or saved", charge_id)
            return False

    def _mark_sent(self):
        """Claim this charge for sending, in a transaction of its own committed at once, before
        the caller's transaction reads it: a run killed after this point leaves a charge that may
        have been taken (checked by a person), one killed before leaves a charge never sent
        (charged again by the recovery). The claim is conditional (still pending, never claimed),
        so a charge the recovery cancelled meanwhile, or another worker claimed, is not sent; a
        claim racing with the recovery's write fails on the row (serialization) and sends nothing.

        :return: True when the charge was claimed (the provider may be called)
        """
        self.ensure_one()
        if modules.module.current_test:
            # Tests share one database transaction: a scheduled action's test cursor commits the
            # mark as the separate transaction would; elsewhere the write is enough.
            if self.state != "pending" or self.date_sent:
                return False
            self.date_sent = fields.Datetime.now()
            if type(self.env.cr).__name__ == "TestCursor":
                self.env["ir.cron"]._commit_progress()
            return True
        with self.env.registry.cursor() as cr:
            cr.execute("UPDATE subscription_charge SET date_sent = now() AT TIME ZONE 'UTC' "
                       "WHERE id = %s AND state = 'pending' AND date_sent IS NULL", [self.id])
            claimed = cr.rowcount == 1
        self.invalidate_recordset(["date_sent", "state"])
        return claimed

    def _still_to_collect(self):
        """Just before the provider is called: lock the invoice and check it is still open.

        An accountant may have registered its payment since the charge was created (that
        transaction committed): then nothing is sent and the charge is not needed. An invoice
        another transaction is writing right now is left for the next run.

        :return: True when the charge may be sent (the invoice stays locked until the next commit)
        """
        self.ensure_one()
        invoice = self.invoice_id.sudo()
        locked = invoice.try_lock_for_update()
        if locked:
            invoice.invalidate_recordset(["payment_state", "amount_residual", "state"])
            if locked.filtered_domain(locked._subscription_open_domain()) and \
                    invoice.currency_id.compare_amounts(invoice.amount_residual, self.amount) == 0:
                return True
            reason = self.env._("%(invoice)s was paid by other means before the charge was sent: nothing was "
                                "charged.", invoice=invoice.name)
        else:
            invoice.subscription_charge_date = self.company_id._subscription_today()
            reason = self.env._("%(invoice)s was being changed at that moment: it will be charged on the next "
                                "run.", invoice=invoice.name)
        self.transaction_id.sudo()._set_canceled(state_message=reason)
        self.write({"state": "cancelled", "failure_message": reason})
        self.subscription_id.message_post(body=reason)
        return False

    @api.model
    def _post_process_group(self, group, attempts=3):
        """Post-process a group of answered charges and commit; a concurrent accounting write
        (serialization failure, lock) rolls the group back and retries it. The providers'
        answers are already committed, so a group that keeps failing is finished by the next
        run's recovery, and the rest of the run goes on."""
        for attempt in range(1, attempts + 1):
            try:
                group._sync_from_transaction(skip_locked=True)
                self.env["ir.cron"]._commit_progress()
                return True
            except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable,
                    psycopg2.errors.DeadlockDetected) as error:
                _logger.info("Autopay post-processing of %s charges conflicted (%s), attempt %s of %s",
                             len(group), error.pgcode, attempt, attempts)
                self.env.cr.rollback()
                self.env.invalidate_all()
        _logger.warning("Autopay post-processing of charges %s left to the next run", group.ids)
        return False

    @api.model
    def _recover_interrupted(self):
        """Finish charges a crashed run left behind, without charging anyone again.

        Another worker may be running: a charge it has sent and not post-processed yet looks the
        same as one a crashed run left; whichever locks it first settles it (``_lock_pending``),
        by groups committed one by one, each retried on a conflict (``_post_process_group``).
        """
        answered = self.search([
            ("state", "=", "pending"), ("needs_review", "=", False),
            ("transaction_id.state", "in", ("done", "error", "cancel")),
        ])
        for group in split_every(POST_PROCESS_GROUP, answered.ids, self.browse):
            self._post_process_group(group)
        interrupted = self.search([
            ("state", "=", "pending"), ("needs_review", "=", False),
            ("transaction_id.state", "=", "draft"),
            ("date_attempt", "<", fields.Datetime.now() - INTERRUPTED_AFTER),
        ])
        never_sent = interrupted.filtered(lambda c: not c.date_sent)
        # Only those whose invoice this run holds (another worker may be about to send one).
        locked_invoices = never_sent.invoice_id.sudo().try_lock_for_update()
        never_sent = never_sent.filtered(lambda c: c.invoice_id in locked_invoices)
        interrupted = interrupted.filtered(lambda c: c.date_sent) | never_sent
        if never_sent:
            # The provider never heard of them: no money moved, the invoices are charged again.
            reason = self.env._("The run was interrupted before this charge was sent: nothing was charged; it is "
                                "sent again.")
            never_sent.transaction_id.sudo()._set_canceled(state_message=reason)
            never_sent.write({"state": "cancelled", "failure_message": reason})
            still_open = never_sent.invoice_id.sudo().filtered_domain(never_sent.invoice_id._subscription_open_domain())
            for company, invoices in still_open.grouped("company_id").items():
                invoices.subscription_charge_date = company._subscription_today()
        for charge in interrupted - never_sent:
            charge._mark_review(self.env._(
                "The run that sent this charge was interrupted before the provider's answer was saved. "
                "It was not sent again: ask the provider for the status, or check its dashboard and "
                "mark the charge paid or failed."
            ))

    @api.model
    def _create_for_invoices(self, invoices):
        """One charge (and one draft offline transaction) per invoice, dates cleared.

        Invoices whose subscription left autopay get their invoice e-mail instead; a
        payment method that cannot be used any more gives a failed charge at once.
        """
        invoices = invoices.sudo()
        invoices.write({"subscription_charge_date": False})
        # Attempts so far: failed ones, and collected ones whose payment was undone since.
        failed_counts = dict(self.sudo()._read_group(
            [("invoice_id", "in", invoices.ids), ("state", "in", ("failed", "done"))], ["invoice_id"], ["__count"],
        ))
        without_token = invoices.browse()
        charge_vals, tx_vals = [], []
        for invoice in invoices:
            sub = invoice.subscription_id
            token = sub.payment_token_id
            if not token:
                without_token |= invoice
                continue
            vals = {
                "subscription_id": sub.id,
                "invoice_id": invoice.id,
                "token_id": token.id,
                "currency_id": invoice.currency_id.id,
                "amount": invoice.amount_residual,
                "attempt": failed_counts.get(invoice, 0) + 1,
            }
            problem = sub._autopay_problem(token, invoice.currency_id)
            if problem:
                vals.update(state="failed", failure_code=problem[0], failure_message=problem[1])
            else:
                tx_vals.append({
                    "provider_id": token.provider_id.id,
                    "payment_method_id": token.payment_method_id.id,
                    "token_id": token.id,
                    "operation": "offline",
                    "amount": invoice.amount_residual,
                    "currency_id": invoice.currency_id.id,
                    "partner_id": invoice.partner_id.id,
                    "invoice_ids": [Command.set(invoice.ids)],
                })
                vals["transaction_id"] = len(tx_vals) - 1  # replaced below
            charge_vals.append(vals)
        txs = self.env["payment.transaction"].sudo().create(tx_vals) if tx_vals else None
        for vals in charge_vals:
            if "transaction_id" in vals:
                vals["transaction_id"] = txs[vals["transaction_id"]].id
        if without_token:
            without_token._subscription_queue_sending(email=True)
        return self.sudo().create(charge_vals)

    def _send(self):
        """Ask the provider to charge this (committed) transaction.

        The charge follows the answer when it is post-processed. Odoo's messages of the call (the
        transaction initiated, then its answer) are not written in the call's own transaction,
        where every record is read cold after the previous commit (about a third of the send's
        time): the call's state is kept (``call_state``) and the messages are logged with the
        charge's post-processing, in batches (``_take_call_notes``).
        """
        self.ensure_one()
        tx = self.transaction_id.sudo().with_context(subscription_charge_defer_sync=True,
                                                     subscription_defer_logs=True)
        # Written first: this transaction locks the charge before its transaction, in the order a
        # webhook locks them (``payment.transaction._apply_updates``); kept if the call fails.
        self.call_state = "draft"
        self.flush_recordset(["call_state"])
        try:
            with self.env.cr.savepoint():
                tx._charge_with_token()
                self.call_state = tx.state
        except Exception as error:  # an unexpected answer must not be guessed at
            _logger.exception("Autopay charge %s: the provider call failed", tx.reference)
            self._mark_review(self.env._("The call to the provider failed unexpectedly: %(error)s", error=error))

    def _take_call_notes(self):
        """Odoo's messages of these charges' provider calls, which ``_send`` left to be logged (the
        transaction initiated; its answer while the transaction is still in the state the call left
        it in: a later answer, e.g. a webhook's, is logged by Odoo itself), as notes for
        ``tools.log_notes``, in order; ``call_state`` is cleared, so they are taken once. The
        caller holds the charges' lock (``_lock_pending``).

        :return: list of ``(account.move record, message, author partner id)``
        """
        waiting = self.filtered("call_state")
        notes = []
        for charge in waiting:
            notes.extend(charge.transaction_id.sudo()._subscription_call_notes(charge.call_state))
        if waiting:
            waiting.call_state = False
        return notes

    def _sync_from_transaction(self, skip_locked=False):
        """Make pending charges follow their transaction: paid, failed, pending or unknown. Every
        note (on invoices and subscriptions) is logged at the end, in batches, the messages of the
        run's provider call first (``_take_call_notes``).

        :param bool skip_locked: leave the charges another transaction is settling at this moment
            to it (autopay runs and their recovery, ``_post_process_group``); by default (a webhook,
            staff) wait for it, then see what it did (``_lock_pending``)
        """
        done = failed = self.browse()
        notes = NoteBuffer()
        locked = self.filtered(lambda c: c.state == "pending")._lock_pending(skip_locked=skip_locked)
        notes.extend(locked._take_call_notes())  # the call's messages first, then what follows from them
        for charge in locked:
            tx = charge.transaction_id.sudo()
            if tx.state == "done":
                done |= charge
            elif tx.state in ("error", "cancel"):
                failed |= charge
            elif tx.state in ("pending", "authorized"):
                if charge.review_reason:
                    charge.review_reason = False
                notes.append((charge.subscription_id, self.env._(
                    "Payment of %(invoice)s is being processed by %(provider)s; it will not be retried "
                    "while it is pending.", invoice=charge.invoice_id.name, provider=tx.provider_id.name,
                )))
            elif tx.subscription_review_reason and not charge.needs_review:
                charge._mark_review(tx.subscription_review_reason)
        done._on_success(notes=notes)
        failed._on_failure(notes=notes)
        log_notes(notes)

    def _flag_double_payment(self, surplus):
        """This charge collected more than was left to pay: an activity to refund the surplus."""
        self.ensure_one()
        amount = format_amount(self.env, surplus, self.currency_id)
        text = self.env._(
            "%(invoice)s was partly or fully paid by other means when the autopay payment arrived: the customer "
            "paid %(amount)s twice. Refund it (it shows as a customer credit meanwhile).",
            invoice=self.invoice_id.name, amount=amount)
        self.subscription_id.message_post(body=text)
        self.subscription_id._schedule_salesperson_activity(
            self.env._("Refund %(amount)s paid twice", amount=amount), note=text)

    def _mark_reversed(self, reason):
        """The payment of these done charges was undone: they no longer count as collected."""
        self.write({"is_reversed": True, "date_reversed": fields.Date.context_today(self)})
        for charge in self:
            charge.subscription_id.message_post(body=self.env._(
                "The autopay payment of %(invoice)s (%(amount)s, attempt %(attempt)s) was reversed: %(reason)s",
                invoice=charge.invoice_id.name, amount=format_amount(self.env, charge.amount, charge.currency_id),
                attempt=charge.attempt, reason=reason))

    def _mark_review(self, reason):
        self.ensure_one()
        self.review_reason = reason
        self.subscription_id.message_post(body=self.env._(
            "Payment of %(invoice)s needs a check: %(reason)s", invoice=self.invoice_id.name, reason=reason,
        ))

    def _on_success(self, notes=None):
        """Paid: reconcile through Odoo's post-processing, tell the customer, stop retries.

        Money that arrives for an invoice already paid by other means (a bank debit settling
        after a payment registered by hand) is not left silently as customer credit: the
        salesperson gets an activity to refund it.

        :param notes: a ``tools.NoteBuffer`` the caller logs (``tools.log_notes``); by default
            the notes are logged here
        """
        if not self:
            return
        own_notes = notes is None
        notes = NoteBuffer() if own_notes else notes
        # What was left to collect when the money arrived: less than the charge means paid twice.
        due_before = {charge: charge.invoice_id.sudo()._subscription_residual() for charge in self}
        self.transaction_id.sudo().with_context(subscription_log_buffer=notes).filtered(
            lambda tx: not tx.is_post_processed)._post_process()
        self.write({"state": "done"})
        for charge in self:
            surplus = charge.amount - due_before[charge]
            if charge.currency_id.compare_amounts(surplus, 0) > 0:
                charge._flag_double_payment(surplus)
        mailed = queue_mails(
            self.env.ref("subscription_billing.mail_template_payment_receipt", raise_if_not_found=False), self)
        for charge in self:
            text = self.env._(
                "Payment of %(invoice)s charged: %(amount)s on %(method)s (attempt %(attempt)s).",
                invoice=charge.invoice_id.name, amount=format_amount(self.env, charge.amount, charge.currency_id),
                method=charge.token_id._subscription_label(), attempt=charge.attempt,
            )
            if charge in mailed:
                text = self.env._("%(text)s Receipt e-mailed.", text=text)
            notes.append((charge.subscription_id, text))
        if own_notes:
            log_notes(notes)

    def _classify(self):
        """``(kind, code, message)`` of this failed charge, kind being temporary or permanent."""
        self.ensure_one()
        tx = self.transaction_id.sudo()
        message = self.failure_message or tx.state_message or self.env._("The payment was refused.")
        if self.failure_code and not tx:  # the payment method could not be used at all
            code = self.failure_code
            kind = "temporary" if code in const.AUTOPAY_TEMPORARY_PROBLEMS else "permanent"
            return kind, code, message
        return *tx._subscription_classify_failure(), message

    def _on_failure(self, message=None, notes=None):
        """Failed: schedule the next retry (past due) or, when final, suspend or notify.

        The failure's kind, code and message are copied onto the charge here, once, at the end
        of the attempt. E-mails are queued per template for the whole set, then each
        subscription's chatter tells what happened and whether the customer was e-mailed.

        :param str message: the failure message, when not the provider's (e.g. staff's)
        :param notes: a ``tools.NoteBuffer`` the caller logs (``tools.log_notes``); by default
            the notes are logged here
        """
        rules_by_company = {}
        retries = defaultdict(lambda: self.env["account.move"].sudo())  # retry date -> invoices
        to_mail = defaultdict(lambda: self.browse())  # template -> charges
        failure_notes = []  # (charge, chatter text before the e-mail mention)
        suspension = self.env.ref("subscription_billing.mail_template_payment_suspended", raise_if_not_found=False)
        for charge in self:
            sub = charge.subscription_id
            if message:
                charge.failure_message = message
            today = sub.company_id._subscription_today()
            kind, code, reason = charge._classify()
            if sub.company_id not in rules_by_company:
                rules_by_company[sub.company_id] = self.env["subscription.retry.rule"]._get_for_company(sub.company_id)
            rules = rules_by_company[sub.company_id]
            vals = {"state": "failed", "failure_kind": kind, "failure_code": code, "failure_message": reason}
            head = self.env._("Payment of %(invoice)s (%(amount)s) failed: %(reason)s.",
                              invoice=charge.invoice_id.name, reason=(reason or "").strip().rstrip("."),
                              amount=format_amount(self.env, charge.amount, charge.currency_id))
            if kind == "temporary" and charge.attempt <= len(rules) and sub.state in const.BILLABLE_STATES:
                delay, template = rules[charge.attempt - 1]
                retry_date = today + timedelta(days=delay)
                charge.write(vals)
                retries[retry_date] |= charge.invoice_id
                sub._update_state("past_due")
                if template:
                    to_mail[template] |= charge
                failure_notes.append((charge, self.env._(
                    "%(head)s Temporary failure (%(code)s): attempt %(attempt)s of %(total)s, next retry on "
                    "%(date)s, %(left)s left.",
                    head=head, code=code, attempt=charge.attempt, total=len(rules) + 1,
                    date=format_date(self.env, retry_date), left=len(rules) - charge.attempt + 1,
                )))
                continue
            charge.write(vals)
            why = (self.env._("Permanent failure (%(code)s).", code=code) if kind == "permanent"
                   else self.env._("No retries left after %(attempt)s attempts.", attempt=charge.attempt))
            if sub.state not in const.BILLABLE_STATES:
                failure_notes.append((charge, self.env._("%(head)s %(why)s", head=head, why=why)))
                continue
            if kind == "permanent" or sub.company_id.subscription_after_retries == "suspend":
                sub._update_state("suspended", vals={"suspension_cause": "payment", "suspension_note": False})
                if suspension:
                    to_mail[suspension] |= charge
                failure_notes.append((charge, self.env._("%(head)s %(why)s Subscription suspended.",
                                                         head=head, why=why)))
                summary = self.env._("Autopay failed: subscription suspended")
            else:
                sub._update_state("active")
                failure_notes.append((charge, self.env._("%(head)s %(why)s The subscription stays active.",
                                                         head=head, why=why)))
                summary = self.env._("Autopay failed: invoice unpaid")
            sub._schedule_salesperson_activity(summary, note=reason)
        # One write per retry date (a posted invoice's write goes through the accounting checks).
        for retry_date, invoices in retries.items():
            invoices.subscription_charge_date = retry_date
        mailed = self.browse()
        for template, charges in to_mail.items():
            mailed |= queue_mails(template, charges)
        logged = NoteBuffer() if notes is None else notes
        for charge, text in failure_notes:
            if charge in mailed:
                text = self.env._("%(text)s Customer e-mailed.", text=text)
            logged.append((charge.subscription_id, text))
        if notes is None:
            log_notes(logged)

    @api.model
    def _stop_retries(self, subscriptions):
        """No more retries or dunning e-mails for these subscriptions (closed or cancelled)."""
        charges = self.sudo().search([("subscription_id", "in", subscriptions.ids)])
        self.env["account.move"].sudo().search([
            ("subscription_id", "in", subscriptions.ids), ("subscription_charge_date", "!=", False),
        ]).write({"subscription_charge_date": False})
        if charges:
            self.env["mail.mail"].sudo().search(
                Domain("model", "=", self._name) & Domain("res_id", "in", charges.ids)
                & Domain("state", "=", "outgoing")
            ).write({"state": "cancel"})

    # === TOOLING === #

    def _check_reviewable(self):
        self.check_access("write")
        wrong = self.filtered(lambda c: c.state != "pending")
        if wrong:
            raise UserError(self.env._("Only pending charges can be checked or settled by hand (%(charges)s).",
                                       charges=", ".join(wrong.mapped("display_name"))))
        busy = self - self._lock_pending()
        if busy:
            raise UserError(self.env._("%(charges)s is being processed right now: reload it in a moment.",
                                       charges=", ".join(busy.mapped("display_name"))))

    def _lock_pending(self, skip_locked=True):
        """Lock those of these charges still pending.

        A charge settled by a transaction that committed after this one started raises a
        serialization failure (PostgreSQL's repeatable read): the caller retries, and then sees
        it settled (``_post_process_group``; Odoo retries HTTP requests on it).

        :param bool skip_locked: skip the charges another transaction holds (an autopay run
            settling them: it finishes them); False waits for it (a webhook must not leave a
            charge whose holder saw its transaction still pending)
        :return: the locked pending charges (``subscription.charge``)
        """
        if not self:
            return self
        self.flush_recordset(["state"])
        rows = self.env.execute_query(SQL(
            "SELECT id FROM subscription_charge WHERE id = ANY(%s) AND state = 'pending' FOR NO KEY UPDATE %s",
            list(self.ids), SQL("SKIP LOCKED") if skip_locked else SQL()))
        locked = {row[0] for row in rows}
        return self.filtered(lambda c: c.id in locked)

    def _retry_now_problem(self):
        """Why this charge cannot be retried now (a message), or None."""
        self.ensure_one()
        sub = self.subscription_id
        invoice = self.invoice_id.sudo()  # salespeople need not read invoices to retry
        if self.state != "failed" or not self._is_latest_attempt():
            return self.env._("Only the latest failed attempt of an invoice can be retried (%(charge)s).",
                              charge=self.display_name)
        if not invoice.filtered_domain(invoice._subscription_open_domain()):
            return self.env._("%(invoice)s is already paid or cancelled.", invoice=invoice.name)
        if sub.state not in const.BILLABLE_STATES:
            return self.env._("%(sub)s is %(state)s: reactivate it first.", sub=sub.display_name,
                              state=sub._state_label())
        if not sub.payment_token_id:
            return self.env._("%(sub)s has no autopay payment method.", sub=sub.display_name)
        return None

    def _is_latest_attempt(self):
        """True when no later attempt exists for this charge's invoice."""
        self.ensure_one()
        return self.id == max(self.sudo().invoice_id.subscription_charge_ids.ids, default=self.id)
