import functools
import logging
import subprocess
import time
from collections import defaultdict
from datetime import timedelta

import psycopg2.errors

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Domain
from odoo.tools import format_amount, format_date, split_every

from odoo.addons.base.models.ir_actions_report import _wkhtml

from .. import const
from ..tools import CompiledTemplates, is_transient_db_error, job_budget_end, process_in_locked_batches

_logger = logging.getLogger(__name__)

# Invoices taken per batch of the sending job: rendered in one wkhtmltopdf call when the binary
# can render several documents at once (patched Qt), else one by one.
SEND_BATCH_SIZE = 50
SEND_BATCH_SIZE_UNPATCHED = 10
# A batch rolled back by a concurrent update is redone this many times in one run at most.
SEND_ATTEMPTS = 5


@functools.lru_cache(1)
def _wkhtmltopdf_renders_batches():
    """True when Odoo's wkhtmltopdf is a patched-Qt build, which renders several documents in one
    call (Debian's build refuses: Odoo raises "Tried to convert multiple documents ... unpatched QT")."""
    try:
        out = subprocess.run([_wkhtml().bin, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return "with patched qt" in out.stdout


class AccountMove(models.Model):
    """Subscription invoices: their period, their autopay date, the domains that select them."""

    _inherit = "account.move"

    # === FIELDS === #

    subscription_id = fields.Many2one(
        "subscription.subscription", index="btree_not_null", readonly=True, copy=False, ondelete="restrict",
    )
    subscription_period_start = fields.Date(readonly=True, copy=False)
    subscription_period_end = fields.Date(readonly=True, copy=False)
    subscription_charge_date = fields.Date(
        string="Autopay on", readonly=True, copy=False, index="btree_not_null",
        help="Day the subscription's saved payment method is charged for this invoice (first try or retry). "
        "The only record of the next retry: the charges show it, the autopay action reads it.",
    )
    subscription_charge_ids = fields.One2many("subscription.charge", "invoice_id", string="Autopay charges")
    subscription_send = fields.Selection(
        [("pdf", "Official PDF"), ("email", "Official PDF and e-mail")],
        string="To send", readonly=True, copy=False, index="btree_not_null",
        help="Waiting for the background job that makes the invoice's official PDF through Odoo's invoice "
        "sending, and e-mails it to a customer who pays by hand.",
    )

    # The exactly-once guarantee of the billing day lives in the database: at most
    # one live customer invoice per subscription and period, whatever runs at once.
    # A cancelled invoice, or one credited in full, frees its period to be invoiced again.
    _subscription_period_uniq = models.UniqueIndex(
        "(subscription_id, subscription_period_start)"
        " WHERE subscription_id IS NOT NULL AND subscription_period_start IS NOT NULL"
        " AND move_type = 'out_invoice' AND state != 'cancel' AND payment_state IS DISTINCT FROM 'reversed'",
        "This subscription period has already been invoiced.",
    )

    # === CORE METHODS OVERRIDES === #

    def _invoice_paid_hook(self):
        """Paying a subscription's open invoices, by any means, brings it back to active."""
        res = super()._invoice_paid_hook()
        # Paid: no (re)try is due any more; the charges' next retry date follows.
        self.sudo().filtered("subscription_charge_date").write({"subscription_charge_date": False})
        # Whoever registers the payment (an accountant, the portal) may not manage subscriptions.
        subs = self.sudo().subscription_id.filtered(lambda s: s.state in ("past_due", "suspended"))
        subs._reactivate_if_paid()
        return res

    # === BUSINESS METHODS === #

    @api.model
    def _subscription_open_domain(self):
        """Posted customer invoices not fully paid yet."""
        return Domain([
            ("move_type", "=", "out_invoice"),
            ("state", "=", "posted"),
            ("payment_state", "in", ("not_paid", "partial")),
        ])

    @api.model
    def _subscription_live_domain(self):
        """Subscription invoices that hold their period: neither cancelled nor credited in full
        (what the exactly-once index ``_subscription_period_uniq`` counts)."""
        return Domain([
            ("move_type", "=", "out_invoice"), ("subscription_period_start", "!=", False),
            ("state", "!=", "cancel"), ("payment_state", "!=", "reversed"),
        ])

    @api.model
    def _subscription_overdue_domain(self, today=None):
        """Open invoices due before ``today`` (default: today)."""
        today = today or fields.Date.context_today(self)
        return self._subscription_open_domain() & Domain("invoice_date_due", "<", today)

    @api.model
    def _autopay_due_domain(self, today=None):
        """Open invoices of autopay subscriptions whose (re)try date has come in their company's
        time zone (``today`` forces one day for every company)."""
        return (
            self.env["res.company"]._subscription_per_company(
                lambda _c, company_today: Domain("subscription_charge_date", "<=", today or company_today))
            & self._subscription_open_domain()
            & Domain("subscription_id.state", "in", const.BILLABLE_STATES)
            # Never a second charge while one is in progress (the database refuses it too).
            & Domain("subscription_charge_ids", "not any", [("state", "=", "pending")])
        )

    def action_subscription_reinvoice(self):
        """Open *Invoice a period again* for the period of this cancelled or credited invoice."""
        self.ensure_one()
        action = self.subscription_id.action_open_reinvoice_wizard()
        action["context"]["default_period_start"] = fields.Date.to_string(self.subscription_period_start)
        return action

    def _subscription_payment_undone(self):
        """These invoices were paid and are open again (payment cancelled or reset, reconciliation
        undone, chargeback): back into collection.

        The charge that had collected them shows it was reversed; an autopay subscription gets a
        new attempt on the retry schedule (it is past due meanwhile), a manual payer follows the
        overdue and grace rules (past due at once when the invoice is overdue); the salesperson
        gets an activity. At most one successful, un-reversed charge per invoice still holds.
        """
        invoices = self.sudo().filtered_domain(
            self._subscription_open_domain() & Domain("subscription_id", "!=", False))
        for invoice in invoices:
            sub = invoice.subscription_id
            today = invoice.company_id._subscription_today()
            charges = invoice.subscription_charge_ids.filtered(lambda c: c.state == "done" and not c.is_reversed)
            charges._mark_reversed(self.env._("%(invoice)s is unpaid again.", invoice=invoice.name))
            what = self.env._("The payment of %(invoice)s was undone: the invoice is open again (%(amount)s due).",
                              invoice=invoice.name,
                              amount=format_amount(self.env, invoice.amount_residual, invoice.currency_id))
            if sub.state in const.BILLABLE_STATES and sub.payment_token_id:
                rules = self.env["subscription.retry.rule"]._get_for_company(sub.company_id)
                retry = today + timedelta(days=rules[0][0] if rules else 1)
                invoice.subscription_charge_date = retry
                sub._update_state("past_due")
                what = self.env._("%(what)s Autopay charges it again on %(date)s.", what=what,
                                  date=format_date(self.env, retry))
            elif sub.state == "active" and invoice.invoice_date_due and invoice.invoice_date_due < today:
                sub._update_state("past_due")
            sub.message_post(body=what)
            sub._schedule_salesperson_activity(self.env._("Payment undone: %(invoice)s", invoice=invoice.name),
                                               note=what)

    def _subscription_paid_dates(self):
        """``{invoice id: date}`` of the day each paid invoice was settled (its last reconciliation)."""
        paid = self.filtered(lambda m: m.payment_state in ("paid", "in_payment"))
        receivable = paid.line_ids.filtered(lambda line: line.account_id.account_type == "asset_receivable")
        dates = {}
        for line in receivable:
            settled = line.matched_credit_ids.mapped("max_date")
            if settled:
                dates[line.move_id.id] = max(max(settled), dates.get(line.move_id.id) or max(settled))
        return dates

    def _subscription_residual(self):
        """What is left to pay on this invoice (0 once paid or credited), in its currency."""
        self.ensure_one()
        if self.state != "posted" or self.payment_state in ("paid", "in_payment", "reversed"):
            return 0.0
        return self.amount_residual

    def _subscription_charge_autopay(self):
        """Charge these locked invoices now (a batch of the autopay run)."""
        self.env["subscription.charge"]._charge_invoices(self)

    def _subscription_notify_billed(self):
        """After billing: the sending job makes the invoices' PDFs and e-mails manual payers; autopay
        invoices are charged now. Both run in the background, never inside the billing batches."""
        if not self:
            return
        if any(self.mapped("subscription_send")):
            self.env.ref("subscription_billing.ir_cron_send_invoices")._trigger()
        if any(self.mapped("subscription_charge_date")):
            self.env.ref("subscription_billing.ir_cron_charge_autopay")._trigger()

    def _subscription_queue_sending(self, email=True):
        """Have the sending job make these invoices' official PDFs and, with ``email``, e-mail them
        (e.g. an autopay invoice left without a payment method). Returns nothing."""
        self.sudo().write({"subscription_send": "email" if email else "pdf"})
        self._subscription_notify_billed()

    @api.model
    def _cron_send_invoices(self, batch_size=None):
        """Scheduled action: official PDFs and e-mails of the posted subscription invoices waiting for
        them, in committed batches (``FOR UPDATE SKIP LOCKED``: several workers can share them).

        :param int batch_size: invoices per batch (default: 50 with a patched-Qt wkhtmltopdf, which
            renders them in one call, else 10)
        """
        if not batch_size:
            batch_size = SEND_BATCH_SIZE if _wkhtmltopdf_renders_batches() else SEND_BATCH_SIZE_UNPATCHED
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                process_in_locked_batches(self, self._subscription_send_domain(), "_subscription_send_documents",
                                          batch_size, order="subscription_id, id",
                                          queue_domain="_subscription_send_domain")
                return
            except psycopg2.errors.SerializationFailure:
                # Another job changed one of the batch's subscriptions meanwhile (e.g. the daily statuses):
                # the whole batch is rolled back and redone (its e-mails go out only after a commit).
                if attempt == SEND_ATTEMPTS:
                    raise
                self.env.cr.rollback()
                _logger.info("Sending invoices: a batch met a concurrent update, redoing it (attempt %s)", attempt)

    @api.model
    def _subscription_send_domain(self):
        """Invoices waiting for their official PDF (and e-mail) from the sending job."""
        return Domain("subscription_send", "!=", False)

    def _subscription_send_documents(self):
        """Make this locked batch's official PDFs (``invoice_pdf_report_id``) through Odoo's own invoice
        sending (``account.move.send``) and e-mail them, the PDF attached.

        A subscription with several invoices to e-mail in the batch (a catch-up of several periods)
        sends its customer one e-mail listing them, with every PDF. An invoice whose documents fail
        gets the error in its chatter (Odoo's way) and leaves the queue; the others go on.
        """
        # E-mail bodies compiled once for the whole batch (``tools.CompiledTemplates``), even when
        # the PDFs are made one invoice per call (Odoo's invoice sending takes the template, and
        # the rendering context, in the invoices' environment).
        moves = self.sudo().with_context(subscription_qweb_cache=CompiledTemplates())
        not_posted = moves.filtered(lambda m: m.state != "posted")  # cancelled before its turn
        moves -= not_posted
        # Paid or credited before its turn: its PDF, but no e-mail asking to pay it.
        to_mail = moves.filtered(lambda m: m.subscription_send == "email" and m.partner_id.email
                                 and m.payment_state in ("not_paid", "partial"))
        by_sub = defaultdict(lambda: self.browse())
        for move in to_mail:
            by_sub[move.subscription_id] |= move
        catch_ups = {sub: invoices for sub, invoices in by_sub.items() if len(invoices) > 1}
        in_catch_ups = self.browse().union(*catch_ups.values())
        single_mails = to_mail - in_catch_ups
        chunk = SEND_BATCH_SIZE if _wkhtmltopdf_renders_batches() else 1
        budget_end = job_budget_end(self.env)
        failed = left = self.browse()
        for email, todo in ((True, single_mails), (False, moves - single_mails)):
            for invoices in split_every(chunk, todo.ids, moves.browse):
                if budget_end is not None and time.monotonic() > budget_end:
                    left |= invoices  # the next run makes them: no worker killed halfway
                    continue
                failed_now, left_now = invoices._subscription_generate_and_send(email=email, budget_end=budget_end)
                failed |= failed_now
                left |= left_now
        for sub, invoices in catch_ups.items():
            if budget_end is not None and time.monotonic() > budget_end:
                left |= invoices
                continue
            sub._send_invoices_mail(invoices)
        ((moves | not_posted) - left).write({"subscription_send": False})
        for sub in failed.subscription_id:
            names = ", ".join(failed.filtered(lambda m, s=sub: m.subscription_id == s).mapped("name"))
            sub._schedule_salesperson_activity(
                self.env._("Invoice PDF not made: %(invoices)s", invoices=names),
                note=self.env._("The official PDF of %(invoices)s could not be made (see each invoice's chatter); "
                                "use Send on the invoices once the cause is fixed.", invoices=names))
        return left

    def _subscription_generate_and_send(self, email, budget_end=None):
        """Odoo's invoice sending for these invoices (PDF, then the e-mail when ``email``); a failing
        group is tried again one invoice at a time (until ``budget_end``, a ``time.monotonic()``
        value, if given), and a failing invoice gets the error in its chatter.

        :return: ``(failed, left)``: the invoices that failed, and those not tried for lack of time
        """
        # E-mailed the way the customer asked for invoices (Odoo's default: by e-mail).
        settings = {} if email else {"sending_methods": set()}
        try:
            with self.env.cr.savepoint():
                self.env["account.move.send"]._generate_and_send_invoices(self, allow_raising=False, **settings)
        except Exception as error:  # one invoice's PDF must not stop the others
            if is_transient_db_error(error):
                raise  # not the invoice's fault: the batch is redone (never told on it as raw SQL)
            if len(self) > 1:
                _logger.warning("Sending %s invoices at once failed (%s); sending them one by one", len(self), error,
                                exc_info=True)
                failed = left = self.browse()
                for move in self:
                    if budget_end is not None and time.monotonic() > budget_end:
                        left |= move
                        continue
                    failed |= move._subscription_generate_and_send(email)[0]
                return failed, left
            _logger.exception("Invoice %s: its PDF or e-mail could not be made", self.name)
            self.message_post(body=self.env._(
                "The invoice's PDF could not be made or sent: %(error)s. Use Send to try again.",
                error=error.args[0] if error.args else error))
            return self, self.browse()
        return self.browse(), self.browse()

    def _subscription_mail_header(self):
        """Header of the customer e-mails about this invoice (see ``mail_layout_customer``)."""
        self.ensure_one()
        return {"caption": self.env._("Your invoice"), "title": self.name}

    def _get_mail_template(self):
        """Subscription invoices are e-mailed with the subscription's template (Odoo's invoice sending
        takes it from here)."""
        if len(self) == 1 and self.subscription_id and self.move_type == "out_invoice":
            template = self.env.ref("subscription_billing.mail_template_subscription_invoice",
                                    raise_if_not_found=False)
            if template:
                return template
        return super()._get_mail_template()


class AccountPartialReconcile(models.Model):
    _inherit = "account.partial.reconcile"

    def unlink(self):
        """Undoing a reconciliation (a payment reset or cancelled, lines unreconciled) may reopen a
        paid subscription invoice: it goes back into collection."""
        moves = (self.debit_move_id | self.credit_move_id).move_id
        paid = moves.filtered(lambda m: m.subscription_id and m.move_type == "out_invoice"
                              and m.payment_state in ("paid", "in_payment"))
        res = super().unlink()
        if paid:
            paid._subscription_payment_undone()
        return res


class AccountPaymentRegister(models.TransientModel):
    _inherit = "account.payment.register"

    def _create_payments(self):
        """An invoice whose autopay charge is in flight or pending at the provider cannot be paid by
        hand meanwhile: it would be collected twice."""
        invoices = self.line_ids.move_id.sudo().filtered("subscription_id")
        pending = invoices.subscription_charge_ids.filtered(lambda c: c.state == "pending")
        if pending:
            raise UserError(self.env._(
                "%(invoices)s is being collected by autopay (%(provider)s has not answered yet). Wait for the "
                "outcome, or mark the charge failed in Subscriptions → Payments to review, before registering "
                "a payment.",
                invoices=", ".join(pending.invoice_id.mapped("name")),
                provider=", ".join(pending.transaction_id.provider_id.mapped("name"))))
        return super()._create_payments()
