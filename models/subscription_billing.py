import logging
import uuid
from collections import defaultdict
from datetime import timedelta

import psycopg2

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Command, Domain
from odoo.tools import format_date

from .. import const
from ..tools import is_transient_db_error, process_in_locked_batches
from ..utils import add_period

_logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 200


class SubscriptionSubscription(models.Model):
    """The billing day: which subscriptions are due, their periods, their invoices, their failures."""

    _inherit = "subscription.subscription"

    # === FIELDS === #

    billing_failed_on = fields.Date(
        copy=False, readonly=True,
        help="Day the billing day last failed for this subscription; it is retried the next day.",
        groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    billing_error = fields.Text(
        copy=False, readonly=True, groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )

    # === ACTION METHODS === #

    def action_generate_invoice(self):
        """Invoice now: every period due up to today, or else the next period in advance.

        Never invoices a period twice (the database refuses a second invoice for the same
        subscription and period). A catch-up of more than ``const.MAX_PERIODS_PER_REQUEST``
        periods is not done inside the request: the user confirms, and the billing day invoices
        them in its committed batches (woken up at once).

        :return: an action opening the invoices created, a confirmation dialog for a long
            catch-up, or True when nothing was created
        :raise UserError: a subscription is not active or past due, or is invoiced up to the
            end of a term that does not renew, or its invoice cannot be created
        :raise AccessError: the user may not edit these subscriptions
        """
        self.check_access("write")
        for sub in self:
            if sub.state not in const.BILLABLE_STATES:
                raise UserError(self.env._("%(sub)s is %(state)s: only active or past due subscriptions are invoiced.",
                                           sub=sub.display_name, state=sub._state_label()))
            if sub.date_end and sub.next_invoice_date > sub.date_end and not sub._renews():
                raise UserError(self.env._("%(sub)s has been invoiced up to its end (%(date)s); renew it first.",
                                           sub=sub.display_name, date=format_date(self.env, sub.date_end)))
            if sub.is_trial:
                raise UserError(self.env._(
                    "%(sub)s is in its free trial until %(date)s: nothing is invoiced before. To bill it now, end "
                    "the trial first (End the trial now).", sub=sub.display_name,
                    date=format_date(self.env, sub.date_trial_end)))
        plans = {sub: sub._plan_billing(sub._billing_until())[sub] for sub in self}
        long_ones = self.filtered(lambda sub: len(plans[sub]["periods"]) > const.MAX_PERIODS_PER_REQUEST)
        if long_ones and not self.env.context.get("subscription_confirm_catch_up"):
            return self._action_confirm_catch_up(long_ones, plans)
        invoices = self.env["account.move"]
        for sub in self - long_ones:
            invoices |= sub._bill(sub._billing_until(), raise_on_error=True)
        invoices._subscription_notify_billed()
        if long_ones:
            self.env.ref("subscription_billing.ir_cron_generate_invoices")._trigger()
        action = self.action_view_invoices(invoices) if invoices else None
        return self._warn_no_email(action) or action or True

    def action_open_reinvoice_wizard(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Invoice a period again"),
            "res_model": "subscription.reinvoice.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_subscription_id": self.id},
        }

    # === BUSINESS METHODS === #

    def _reinvoiceable_periods(self):
        """Past periods of this subscription without a live invoice (their invoice was cancelled or
        fully credited, or they were never invoiced), oldest first, as ``[(start, end, ratio), ...]``.

        Only whole days already behind the next invoice date, not after an end that does not
        renew, and overlapping no live invoice; ``ratio`` prorates a last period cut at the end
        as the billing day did.
        """
        self.ensure_one()
        Move = self.env["account.move"].sudo()
        # Searched (not filtered in memory): the search flushes the states the period index reads.
        mine = Domain([("subscription_id", "=", self.id), ("move_type", "=", "out_invoice"),
                       ("subscription_period_start", "!=", False)])
        live = Move.search(mine & Move._subscription_live_domain())
        dead = Move.search(mine & ~Move._subscription_live_domain())
        live_spans = [(m.subscription_period_start, m.subscription_period_end or m.subscription_period_start)
                      for m in live]
        candidates = {m.subscription_period_start: m.subscription_period_end or m.subscription_period_start
                      for m in dead}
        # Periods of the current schedule never invoiced (e.g. skipped by hand) before the next invoice date.
        plan, start = self.plan_id, self.date_anchor or self.date_start
        while self.next_invoice_date and start < self.next_invoice_date:
            nxt = add_period(start, plan.billing_period_value, plan.billing_period_unit, anchor_day=self._anchor_day())
            candidates.setdefault(start, nxt - timedelta(days=1))
            start = nxt
        final_end = self.date_end if (self.date_end and not self._renews()) else None
        periods = []
        for start, end in sorted(candidates.items()):
            if final_end:
                if start > final_end:
                    continue
                end = min(end, final_end)
            if not self.next_invoice_date or end >= self.next_invoice_date:
                continue  # the billing day's to invoice
            if any(start <= live_end and live_start <= end for live_start, live_end in live_spans):
                continue  # never two live invoices for the same days
            periods.append((start, end, self._period_ratio(start, end)))
        return periods

    def _period_ratio(self, start, end):
        """Share of a full period billed for ``start``..``end``: None for a whole period (or when the
        plan bills a cut last period in full), else the days served over the period's days."""
        self.ensure_one()
        plan = self.plan_id
        full_end = add_period(start, plan.billing_period_value, plan.billing_period_unit,
                              anchor_day=self._anchor_day()) - timedelta(days=1)
        if end >= full_end or not plan.prorate_last_period:
            return None
        return ((end - start).days + 1) / ((full_end - start).days + 1)

    def _invoice_period(self, period_start):
        """Invoice one past period again, with the subscription's current lines and prices; the
        next invoice date does not move.

        :param period_start: first day of a period whose invoice was cancelled or fully credited
            (or that was never invoiced), before the next invoice date
        :return: the posted invoice (``account.move``), e-mailed as the billing day does
        :raise UserError: the day does not start a period to invoice again, or the subscription
            is not running
        """
        self.ensure_one()
        self.check_access("write")
        try:
            period_start = fields.Date.to_date(period_start)
        except (TypeError, ValueError) as error:
            raise UserError(self.env._("%(value)s is not a date.", value=period_start)) from error
        if self.state not in (*const.RUNNING_STATES, *const.CLOSED_STATES):
            raise UserError(self.env._("%(sub)s has not started.", sub=self.display_name))
        period = next((p for p in self._reinvoiceable_periods() if p[0] == period_start), None)
        if not period:
            raise UserError(self.env._(
                "%(sub)s has no period starting %(date)s to invoice again: a period with a live invoice is "
                "invoiced once (cancel it or credit it in full first), and periods from the next invoice date "
                "on are invoiced by the billing day.",
                sub=self.display_name, date=format_date(self.env, period_start)))
        start, end, ratio = period
        self._refresh_fiscal_position()
        vals = self._prepare_invoice_vals(start, end, self._get_sale_journal(), ratio=ratio)
        invoice = self.env["account.move"].sudo().with_context(
            default_move_type="out_invoice", mail_create_nosubscribe=True).create(vals)
        invoice.action_post()
        invoice._subscription_notify_billed()
        self.message_post(body=self.env._(
            "The period %(start)s to %(end)s was invoiced again: %(invoice)s.", start=format_date(self.env, start),
            end=format_date(self.env, end), invoice=invoice.name))
        return invoice.sudo(False)

    def _renews(self):
        """True when reaching the end of the term starts another one."""
        self.ensure_one()
        return bool(self.auto_renew and not self.is_end_scheduled and self.plan_id.term_value)

    def _billing_until(self):
        """The last period start *Generate invoice now* bills: today, or the next period in advance."""
        self.ensure_one()
        return max(self.company_id._subscription_today(), self.next_invoice_date)

    def _action_confirm_catch_up(self, long_ones, plans):
        """Ask before a catch-up too long for one request (it then runs in the billing day's batches)."""
        summary = "\n".join(self.env._(
            "%(sub)s: %(count)s periods, from %(start)s", sub=sub.display_name, count=len(plans[sub]["periods"]),
            start=format_date(self.env, plans[sub]["periods"][0][0]),
        ) for sub in long_ones)
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Invoice many periods?"),
            "res_model": "subscription.catch.up.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_subscription_ids": [Command.set(self.ids)], "default_summary": summary},
        }

    @api.model
    def _billable_domain(self, today=None):
        """Subscriptions the billing day must process: a period starts on or before their
        company's today (``today`` forces one day for every company)."""
        def due(_company, company_today):
            day = today or company_today
            return Domain("next_invoice_date", "<=", day) & (
                Domain("billing_failed_on", "=", False) | Domain("billing_failed_on", "<", day))

        # A trial is billed once converted (the billing day converts the trials that are over first).
        return Domain("state", "in", const.BILLABLE_STATES) & Domain("is_trial", "=", False) \
            & self.env["res.company"]._subscription_per_company(due)

    @api.model
    def _ended_domain(self, today=None):
        """Running subscriptions past an end that does not renew: they close (after the billing
        day invoiced their periods up to the end; one whose billing failed today waits).
        ``today`` forces one day for every company."""
        not_renewing = (Domain("is_end_scheduled", "=", True) | Domain("auto_renew", "=", False)
                        | Domain("plan_id.term_value", "=", 0))
        return (
            Domain("state", "in", const.RUNNING_STATES) & Domain("date_end", "!=", False) & not_renewing
            & self.env["res.company"]._subscription_per_company(
                lambda _c, company_today: Domain("date_end", "<", today or company_today))
            & (Domain("state", "=", "suspended") | Domain("billing_failed_on", "=", False))
            # a paused term's end moves on resume: only a scheduled end closes it while paused
            & (Domain("state", "!=", "paused") | Domain("is_end_scheduled", "=", True))
        )

    @api.model
    def _cron_generate_invoices(self, batch_size=None):
        """Billing day: resume the paused subscriptions whose resume date has come, convert the
        trials that are over, apply the price
        changes and renewal terms whose day has come, invoice every due period of every running subscription, then
        close the subscriptions that reached an end that does not renew.

        Works in locked batches committed through ``ir.cron._commit_progress`` (a crash loses
        at most one batch; a rerun resumes where it stopped) and stops when the worker's time
        is up, reporting what remains so the scheduler runs it again. Safe to run twice or on
        two workers at once. "Today" is each company's, in its subscriptions time zone.
        """
        batch_size = batch_size or int(
            self.env["ir.config_parameter"].sudo().get_param("subscription_billing.batch_size", DEFAULT_BATCH_SIZE)
        )
        if self._cron_resume_paused(batch_size) and self._cron_convert_trials(batch_size) \
                and self.env["subscription.price.change"]._cron_apply(batch_size) \
                and self.env["subscription.renewal.change"]._cron_apply(batch_size) \
                and process_in_locked_batches(self, self._billable_domain(), "_bill_due_batch", batch_size,
                                              order="next_invoice_date, id", queue_domain="_billable_domain"):
            process_in_locked_batches(self, self._ended_domain(), "_close_at_end", batch_size)

    def _bill_due_batch(self):
        """Bill this locked batch up to each company's today; a subscription that did not move is
        parked for the day (it is retried tomorrow)."""
        before = {sub: sub.next_invoice_date for sub in self}
        invoices = self._bill(max_periods=const.MAX_PERIODS_PER_REQUEST)
        invoices._subscription_notify_billed()
        stuck = self.filtered(lambda s: s.next_invoice_date == before[s]).filtered_domain(self._billable_domain())
        for sub in stuck:
            sub.write({"billing_failed_on": sub.company_id._subscription_today(),
                       "billing_error": self.env._("Still due after billing.")})
        return stuck

    @api.model
    def _generate_due_invoices(self):
        """Resume the paused subscriptions whose day has come, apply the price changes and renewal
        terms whose day has come, bill every due subscription up to
        today in the current transaction, and close the ended.

        For small bases, imports and demo data; the scheduled action does the same in committed
        batches. Returns the invoices created.
        """
        for sub in self.search(self._resume_due_domain()):
            sub._resume(sub.date_resume, self.env._("Resumed on the planned day."))
        self.search(self._trial_over_domain())._convert_trials_batch()
        PriceChange = self.env["subscription.price.change"]
        PriceChange.search(PriceChange._apply_due_domain())._apply()
        RenewalChange = self.env["subscription.renewal.change"]
        RenewalChange.search(RenewalChange._apply_due_domain())._apply()
        invoices = self.search(self._billable_domain())._bill()
        invoices._subscription_notify_billed()
        self.search(self._ended_domain())._close_at_end()
        return invoices

    def _close_at_end(self):
        """Close subscriptions that reached their end, on their end date: a scheduled end (or the
        end of an open-ended plan) with its close reason, a term that does not renew as expired.

        :return: the subscriptions left open because a period before their end is still to invoice
        """
        waiting = self.browse()
        for sub in self:
            if sub.date_end and sub.next_invoice_date and sub.next_invoice_date <= sub.date_end \
                    and sub.state not in ("suspended", "paused"):
                waiting |= sub  # the billing day comes first
                continue
            if sub.is_end_scheduled or not sub.plan_id.term_value:
                reason = sub.close_reason_id or self.env.ref("subscription_billing.close_reason_customer_request")
                sub._action_close("cancelled", reason, sub.close_note, date_closed=sub.date_end)
            else:
                # The reason the customer gave when turning the renewal off, if any.
                sub._action_close("expired", sub.close_reason_id or self.env.ref(
                    "subscription_billing.close_reason_expired"), date_closed=sub.date_end)
        return waiting

    def _plan_billing(self, until=None, max_periods=None):
        """Compute, without writing, what billing these subscriptions up to ``until`` means.

        :param until: last period start to invoice (default: each company's today)
        :param int max_periods: at most this many periods per subscription
        :return: ``{sub: {'periods': [(start, end, ratio), ...], 'vals': {...}, 'messages': [...],
            'close': bool}}``: ``ratio`` is None for a whole period, else the share of the period
            served (a last period cut at an end that does not renew, prorated per day when the plan
            says so); ``vals`` are the subscription's new dates; ``close`` tells it reached its end
        """
        plans = {}
        for sub in self:
            plan = sub.plan_id
            last_start = until or sub.company_id._subscription_today()
            anchor = sub._anchor_day()
            start = sub.next_invoice_date or sub.date_start
            date_end = sub.date_end
            renews = sub._renews()
            periods, messages, vals, close = [], [], {}, False
            while start <= last_start and not (max_periods and len(periods) >= max_periods):
                if date_end and start > date_end:
                    if renews:
                        date_end = sub._term_end(date_end + timedelta(days=1))
                        vals["date_end"] = date_end
                        messages.append(self.env._("Renewed until %(date)s.", date=format_date(self.env, date_end)))
                        continue
                    close = True
                    break
                nxt = add_period(start, plan.billing_period_value, plan.billing_period_unit, anchor_day=anchor)
                end, ratio = nxt - timedelta(days=1), None
                if date_end and end > date_end and not renews:
                    # The end falls inside this period: it is the last one, cut at the end.
                    if plan.prorate_last_period:
                        ratio = ((date_end - start).days + 1) / ((end - start).days + 1)
                    end, nxt = date_end, date_end + timedelta(days=1)
                periods.append((start, end, ratio))
                start = nxt
            vals["next_invoice_date"] = start
            plans[sub] = {"periods": periods, "vals": vals, "messages": messages, "close": close}
        return plans

    def _bill(self, until=None, raise_on_error=False, max_periods=None):
        """Create and post one invoice per due period up to ``until`` and move the dates.

        Each subscription's invoices, posting and date move are atomic: first the
        whole batch is tried at once (fast path); if anything fails, each
        subscription is retried alone in its own savepoint and a failing one is
        logged on it and parked until tomorrow. Returns the posted invoices.
        """
        self._refresh_fiscal_position()  # the taxes checked are those the invoices will have
        problems = self._billing_misconfigurations()
        if problems:
            if raise_on_error:
                raise UserError(next(iter(problems.values())))
            # Known misconfigurations fail alone, before the batch is tried (it stays fast).
            for sub, message in problems.items():
                sub._log_billing_error(UserError(message), sub.company_id._subscription_today())
            self -= self.browse([sub.id for sub in problems])
        plans = self._plan_billing(until, max_periods=max_periods)
        failing = self.filtered("billing_failed_on")  # their failure activity closes once billed
        try:
            with self.env.cr.savepoint():
                invoices = self._bill_apply(plans)
        except Exception as error:  # any failure falls back to per-subscription isolation
            if is_transient_db_error(error):
                raise  # the database's doing, not a subscription's: the run stops, the next goes on
            if raise_on_error and len(self) == 1:
                raise
            _logger.info("Billing batch failed; retrying %s subscriptions one by one", len(self), exc_info=True)
        else:
            failing._close_billing_failures()
            return invoices
        invoices = self.env["account.move"]
        billed = self.browse()
        for sub in self:
            try:
                with self.env.cr.savepoint():
                    invoices |= sub._bill_apply({sub: plans[sub]})
            except Exception as e:  # one subscription must not stop the batch
                if raise_on_error or is_transient_db_error(e):
                    raise
                sub._log_billing_error(e, sub.company_id._subscription_today())
            else:
                billed |= sub
        (billed & failing)._close_billing_failures()
        return invoices

    def _billing_misconfigurations(self):
        """The misconfigurations that would make these subscriptions' invoices wrong or refused,
        checked before the batch is billed so that each fails alone with a reason staff can act on
        (instead of an accounting error, or an invoice at a rate the company withdrew).

        - a line's product is archived (discontinued: someone decides to replace or end it);
        - a line's tax is archived (e.g. a former VAT rate), belongs to another company, or is
          not a sales tax;
        - the customer's receivable account (for the subscription's company) is archived or is
          not a receivable account: Odoo refuses to post on it.

        :return: ``{subscription: message}`` for the subscriptions that cannot be billed
        """
        problems = {}
        for sub in self:
            company = sub.company_id
            reasons = []
            # Archived taxes are read too (a many2many hides them, and the invoice would lose them).
            for line in sub.line_ids.with_context(active_test=False):
                if not line.product_id.active:
                    reasons.append(self.env._(
                        "%(product)s is archived: replace it on the subscription's lines, or end the "
                        "subscription.", product=line.product_id.display_name))
                for tax in line.tax_ids:
                    if not tax.active:
                        problem = self.env._("is archived")
                    elif tax.company_id and tax.company_id not in company.parent_ids:
                        problem = self.env._("belongs to another company (%(company)s)", company=tax.company_id.name)
                    elif tax.type_tax_use != "sale":
                        problem = self.env._("is not a sales tax")
                    else:
                        continue
                    reasons.append(self.env._(
                        "The tax %(tax)s on %(product)s %(problem)s: correct the taxes of the subscription's lines "
                        "(or of the product).", tax=tax.name, product=line.product_id.display_name, problem=problem))
            customer = sub.partner_id.commercial_partner_id.with_company(company)
            account = customer.property_account_receivable_id
            if account and (not account.active or account.account_type != "asset_receivable"):
                reasons.append(self.env._(
                    "The receivable account of %(customer)s, %(account)s, %(problem)s: set a receivable account on "
                    "the customer (Accounting tab).", customer=customer.display_name, account=account.display_name,
                    problem=self.env._("is archived") if not account.active else self.env._(
                        "is not a receivable account")))
            if reasons:
                problems[sub] = " ".join(dict.fromkeys(reasons))
        return problems

    def _bill_apply(self, plans):
        """Write what ``_plan_billing`` computed: invoices posted, dates moved, ended ones closed."""
        self._refresh_fiscal_position()
        vals_list = []
        journals = {}
        for sub, plan in plans.items():
            for start, end, ratio in plan["periods"]:
                if sub.company_id not in journals:
                    journals[sub.company_id] = sub._get_sale_journal()
                vals_list.append(sub._prepare_invoice_vals(start, end, journals[sub.company_id], ratio=ratio))
        context = {"default_move_type": "out_invoice", "mail_create_nosubscribe": True}
        if not any(company.restrictive_audit_trail for company in journals):
            # The creation message and field tracking are skipped only where they are not the
            # legal audit trail: with the company's restrictive audit trail on, they are kept.
            context.update(mail_create_nolog=True, mail_notrack=True)
        Move = self.env["account.move"].sudo().with_context(**context)
        invoices = Move.create(vals_list) if vals_list else Move
        if invoices:
            invoices.action_post()
            invoices._subscription_apply_credits()  # a downgrade's credit left over pays the next invoice
        ended = self.env["subscription.subscription"]
        by_vals = defaultdict(lambda: self.env["subscription.subscription"])  # one write per set of new dates
        for sub, plan in plans.items():
            by_vals[tuple(sorted(plan["vals"].items()))] |= sub
            for message in plan["messages"]:
                sub.message_post(body=message)
            if plan["close"]:
                ended |= sub
        for vals, subs in by_vals.items():
            subs.with_context(subscription_term_write=True).write(
                dict(vals, billing_failed_on=False, billing_error=False))
        ended._close_at_end()
        return invoices.sudo(False)

    def _refresh_fiscal_position(self):
        """Invoices follow the customer's current fiscal position (e.g. they became tax exempt),
        unless staff fixed one on the subscription by hand: the subscription and its lines' taxes
        are brought up to date before billing, and the change is told in the chatter."""
        auto_apply = {}  # company: whether it has fiscal positions applied by country, VAT ...
        for sub in self.filtered(lambda s: not s.is_fiscal_position_manual):
            company = sub.company_id
            if company not in auto_apply:
                auto_apply[company] = bool(self.env["account.fiscal.position"].sudo().search_count(
                    [*self.env["account.fiscal.position"]._check_company_domain(company), ("auto_apply", "=", True)],
                    limit=1))
            # Without automatic ones, the customer's own fiscal position is the answer (as Odoo finds it).
            current = sub._customer_fiscal_position() if auto_apply[company] else (
                sub.partner_id.with_company(company).property_account_position_id)
            if current != sub.fiscal_position_id:
                old = sub.fiscal_position_id
                # The lines' taxes follow (they are computed from the subscription's fiscal position).
                sub.with_context(subscription_fiscal_position_auto=True).fiscal_position_id = current
                sub.message_post(body=self.env._(
                    "The customer's fiscal position changed (%(old)s to %(new)s): taxes updated for the next "
                    "invoices.", old=old.name or self.env._("none"), new=current.name or self.env._("none")))

    def _log_billing_error(self, error, today):
        """Record a billing failure on the subscription, visible to its salesperson.

        One failure episode (from the first failure to the next successful billing) gets one
        activity: a failure on a later day updates its note, it does not add another.
        """
        self.ensure_one()
        if isinstance(error, psycopg2.IntegrityError):
            # Never a raw database error for people: the exactly-once index said no.
            message = self.env._(
                "The period starting %(date)s is already invoiced: correct the next invoice date.",
                date=format_date(self.env, self.next_invoice_date))
        else:
            message = str(error.args[0] if getattr(error, "args", None) else error)
        _logger.warning("Billing failed for %s: %s", self.display_name, message)
        self.write({"billing_failed_on": today, "billing_error": message})
        self.message_post(body=self.env._("The invoice could not be created: %(error)s", error=message))
        activity = self.activity_search([const.ACTIVITY_BILLING_FAILED])
        if activity:
            activity.note = message
        else:
            self._schedule_salesperson_activity(
                self.env._("Billing failed"), note=message, activity_xmlid=const.ACTIVITY_BILLING_FAILED,
            )

    def _send_invoices_mail(self, invoices):
        """E-mail the customer these invoices of this subscription in one message (a catch-up of
        several periods), their official PDFs attached (those made: one that failed is listed with
        its link all the same); posted in the subscription's chatter and told on each invoice.

        :param invoices: posted, unpaid ``account.move`` of this subscription
        """
        self.ensure_one()
        template = self.env.ref("subscription_billing.mail_template_subscription_invoices", raise_if_not_found=False)
        if not template or not invoices or not self.partner_id.email:
            return
        sub = self.sudo()
        lang = template._render_lang(sub.ids)[sub.id]
        template = template.with_context(lang=lang)
        context = {"invoices": invoices.sudo().sorted("subscription_period_start")}
        subject = template._render_field("subject", sub.ids, add_context=context)[sub.id]
        body = template._render_field("body_html", sub.ids, add_context=context, compute_lang=False)[sub.id]
        author, email_from = sub._message_compute_author(
            email_from=template._render_field("email_from", sub.ids)[sub.id] or False)
        pdfs = context["invoices"].invoice_pdf_report_id
        message = sub.with_context(lang=lang).message_post(
            body=body, subject=subject, author_id=author, email_from=email_from,
            partner_ids=sub.partner_id.ids, message_type="comment", subtype_xmlid="mail.mt_comment",
            attachments=[(pdf.name, pdf.raw) for pdf in pdfs],
            email_layout_xmlid="subscription_billing.mail_layout_customer", mail_auto_delete=template.auto_delete,
        )
        for invoice in invoices:
            invoice.message_post(body=self.env._("E-mailed to the customer with the other invoices of %(sub)s.",
                                                 sub=self.name))
        return message

    def _close_billing_failures(self):
        """The subscriptions billed again: their billing-failure activity is done."""
        self.activity_feedback(
            [const.ACTIVITY_BILLING_FAILED], feedback=self.env._("Billed again: the failure is resolved."),
        )

    def _get_sale_journal(self):
        self.ensure_one()
        journal = self.env["account.journal"].sudo().search([
            *self.env["account.journal"]._check_company_domain(self.company_id),
            ("type", "=", "sale"),
        ], limit=1)
        if not journal:
            raise UserError(self.env._("Company %(company)s has no sales journal to invoice subscriptions in.",
                                       company=self.company_id.name))
        return journal

    def _invoice_header_vals(self, move_type, journal, day):
        """The values every document of this subscription shares (customer, journal, salesperson,
        fiscal position, payment terms), dated ``day``."""
        self.ensure_one()
        return {
            "move_type": move_type,
            "partner_id": self.partner_id.id,
            "company_id": self.company_id.id,
            "journal_id": journal.id,
            "currency_id": self.currency_id.id,
            "invoice_date": day,
            "invoice_origin": self.name,
            "invoice_user_id": self.user_id.id,
            "team_id": self.team_id.id,
            "fiscal_position_id": self.fiscal_position_id.id,
            "invoice_payment_term_id": self.plan_id.payment_term_id.id,
            "subscription_id": self.id,
        }

    def _prepare_invoice_vals(self, period_start, period_end_, journal, ratio=None):
        """Values of the customer invoice for one period, complete (lines included).

        :param ratio: share of a full period billed (a last period cut at the end and prorated
            per day), None for a whole period
        """
        self.ensure_one()
        label = self.env._("%(start)s to %(end)s",
                           start=format_date(self.env, period_start), end=format_date(self.env, period_end_))
        if ratio is not None:
            label = self.env._("%(period)s (last period, prorated: %(days)s days of service)",
                               period=label, days=(period_end_ - period_start).days + 1)
        return {
            **self._invoice_header_vals("out_invoice", journal, period_start),
            "subscription_period_start": period_start,
            "subscription_period_end": period_end_,
            # Portal token set at creation: writing it afterwards would run the whole invoice
            # write machinery once per invoice.
            "access_token": str(uuid.uuid4()),
            # The sending job makes every invoice's official PDF and e-mails manual payers;
            # autopay invoices are charged first (the customer gets a receipt or a failure notice).
            "subscription_send": "email" if self.partner_id.email and not self.payment_token_id else "pdf",
            "subscription_charge_date": self.company_id._subscription_today() if self.payment_token_id else False,
            "invoice_line_ids": [
                Command.create(line._prepare_invoice_line_vals(label, ratio=ratio)) for line in self.line_ids
            ],
        }
