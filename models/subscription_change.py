from odoo import api, models
from odoo.exceptions import UserError
from odoo.fields import Command, Domain
from odoo.tools import float_round, format_amount, format_date

from .. import const
from ..utils import period_end
from .subscription import _PLAN_CHANGE


class SubscriptionSubscription(models.Model):
    """Plan and quantity changes of a running subscription, at the next period or now with
    proration: the rest of the current, already invoiced period is credited at the old lines and
    charged at the new ones, per day of the period's real length, taxes computed as invoices do."""

    _inherit = "subscription.subscription"

    # === ACTION METHODS === #

    def action_open_change_wizard(self):
        """*Change plan or quantities*: the new lines and plan, when, and the amounts before confirming."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Change plan or quantities"),
            "res_model": "subscription.change.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"active_id": self.id, "active_model": self._name},
        }

    # === BUSINESS METHODS === #

    def _portal_change_plans(self):
        """Plans a customer may move to from the portal: the current one, and the active plans of
        the subscription's company that let customers change, with a price for each of its
        products (the plan's pricing in the subscription currency)."""
        self.ensure_one()
        Plan = self.env["subscription.plan"].sudo()
        Pricing = self.env["subscription.pricing"].sudo()
        plans = Plan.search([("customer_can_change", "=", True), ("company_id", "in", (False, self.company_id.id))])
        offered = plans.filtered(lambda plan: plan == self.plan_id or all(
            Pricing._get_price(line.product_id, plan, self.currency_id) is not None for line in self.line_ids))
        return (self.plan_id | offered).sorted(lambda plan: (plan.sequence, plan.id))

    def _portal_change_variants(self, line):
        """Variants of ``line``'s product a customer may switch to (itself included)."""
        return line.product_id.product_tmpl_id.product_variant_ids.filtered(
            lambda p: p.sale_ok and p.recurring_invoice) | line.product_id

    @api.model
    def _portal_max_quantity(self):
        return const.MAX_PORTAL_QUANTITY

    def _portal_can_change(self):
        """The customer may change plan or quantities from the portal now."""
        self.ensure_one()
        return bool(self.plan_id.customer_can_change and self.state == "active" and self.line_ids)

    def _portal_change_values(self, params):
        """Read a portal change form: ``plan_id``, ``timing``, and per current line
        ``quantity_<line id>`` and ``product_<line id>`` (strings, as posted).

        :return: ``(plan, lines_vals, timing)`` for ``_change_preview`` / ``_apply_change``; the
            prices are the new plan's (or the current ones on the same plan)
        :raise UserError: a value that is not offered or not a number (the form offers only what
            is allowed, so this is a tampered or stale form)
        """
        self.ensure_one()
        plans = self._portal_change_plans()
        try:
            plan = plans.filtered(lambda p: p.id == int(params.get("plan_id") or self.plan_id.id))
        except (TypeError, ValueError):
            plan = None
        if not plan:
            raise UserError(self.env._("This plan is not offered for your subscription."))
        timing = params.get("timing") or "now"
        if timing not in ("now", "next_period"):
            raise UserError(self.env._("Choose when the change applies."))
        lines_vals = []
        for line in self.line_ids:
            raw_quantity = str(params.get(f"quantity_{line.id}", line.quantity)).strip().replace(",", ".")
            if not raw_quantity:
                raise UserError(self.env._("Enter a quantity for each line."))
            try:
                quantity = float(raw_quantity)
            except ValueError:
                raise UserError(self.env._("%(value)s is not a quantity.", value=raw_quantity)) from None
            if not quantity.is_integer() or not 1 <= quantity <= const.MAX_PORTAL_QUANTITY:
                raise UserError(self.env._("Quantities are whole numbers from 1 to %(max)s.",
                                           max=const.MAX_PORTAL_QUANTITY))
            variant = self._portal_change_variants(line).filtered(
                lambda p, line=line: str(p.id) == str(params.get(f"product_{line.id}", line.product_id.id)))
            if not variant:
                raise UserError(self.env._("This option is not offered for your subscription."))
            vals = {"line_id": line.id, "product_id": variant.id, "quantity": quantity}
            if plan != self.plan_id or variant != line.product_id:
                price = self.env["subscription.pricing"].sudo()._get_price(variant, plan, self.currency_id)
                vals["price_unit"] = variant.lst_price if price is None else price
            lines_vals.append(vals)
        return plan, lines_vals, timing

    def _portal_plan_amount(self, plan):
        """Total per period (taxes included) of the current lines on ``plan``, at its prices."""
        self.ensure_one()
        _plan, lines_vals, _timing = self._portal_change_values({"plan_id": str(plan.id)})
        return self._lines_total([(line, None, 1) for line in self._new_lines(lines_vals, plan)])[1]

    def _proration_period(self, day):
        """``(start, end)`` of the invoiced period (a live invoice) that contains ``day``, or None."""
        self.ensure_one()
        Move = self.env["account.move"].sudo()
        invoice = Move.search(
            Domain("subscription_id", "=", self.id) & Move._subscription_live_domain()
            & Domain("subscription_period_start", "<=", day) & Domain("subscription_period_end", ">=", day),
            order="subscription_period_start desc", limit=1)
        return (invoice.subscription_period_start, invoice.subscription_period_end) if invoice else None

    def _change_preview(self, plan, new_lines, timing, day=None):
        """What a change of plan and lines means, without writing anything.

        :param plan: the ``subscription.plan`` after the change (may be the current one)
        :param new_lines: ``subscription.line`` records (new, not saved) after the change
        :param str timing: ``next_period`` (no money moves now) or ``now`` (prorated)
        :param day: the first day with the new lines (default: the company's today)
        :return: dict with ``period_start``, ``period_end``, ``days_left``, ``days_in_period``;
            ``credit`` (the unused time at the old lines) and ``charge`` (the same time at the new
            lines, or a plan change's new full period), both untaxed; ``tax`` and ``net`` (what
            the documents add up to: taxes, and the total to pay, negative for a credit), all in
            the subscription currency and exactly what the documents show; ``next`` (a full period
            after the change, taxes included); ``term_end`` (the end of a new plan's commitment term,
            else False); ``new_period`` (a plan change now bills a full new
            period from ``day``) and ``documents``, ``[(move_type, [(line, ratio, sign)])]``
        :raise UserError: see ``_check_change``
        """
        self.ensure_one()
        day = day or self.company_id._subscription_today()
        self._check_change(plan, new_lines, timing)
        result = {"period_start": False, "period_end": False, "days_left": 0, "days_in_period": 0,
                  "credit": 0.0, "charge": 0.0, "tax": 0.0, "net": 0.0, "documents": [], "new_period": False,
                  "next": self._lines_total([(line, None, 1) for line in new_lines])[1], "term_end": False}
        period = self._proration_period(day) if timing == "now" else None
        if plan != self.plan_id and plan.term_value and not self.is_end_scheduled:
            # a new plan's commitment term counts from the day it starts (today, or the next period)
            restart = day if period else (self.next_invoice_date or day)
            result["term_end"] = period_end(restart, plan.term_value, plan.term_unit, anchor_day=restart.day)
        if not period:
            return result
        start, end = period
        days_in_period = (end - start).days + 1
        days_left = (end - day).days + 1
        ratio = days_left / days_in_period
        credit_lines = [(line, ratio, -1) for line in self.line_ids]
        credit_untaxed, credit_total = self._lines_total([(line, ratio, 1) for line in self.line_ids])
        result.update(period_start=start, period_end=end, days_left=days_left, days_in_period=days_in_period,
                      credit=credit_untaxed)
        currency = self.currency_id
        if plan == self.plan_id:
            charge_lines = [(line, ratio, 1) for line in new_lines]
            result["charge"] = self._lines_total(charge_lines)[0]
            # One document for the difference, its taxes computed (and rounded) on it.
            net_untaxed, net = self._lines_total(charge_lines + credit_lines)
            result["tax"] = currency.round(net - net_untaxed)
            if currency.compare_amounts(net, 0) >= 0:
                result["documents"] = [("out_invoice", charge_lines + credit_lines)]
            else:
                flipped = [(line, r, -sign) for line, r, sign in charge_lines + credit_lines]
                result["documents"] = [("out_refund", flipped)]
            result["net"] = net
        else:
            # A new plan starts today with a full period; what is left of the old one is credited.
            result["new_period"] = True
            charge_untaxed, charge_total = self._lines_total([(line, None, 1) for line in new_lines])
            result["charge"] = charge_untaxed
            result["tax"] = currency.round((charge_total - charge_untaxed) - (credit_total - credit_untaxed))
            result["net"] = currency.round(charge_total - credit_total)
            result["documents"] = [("out_refund", [(line, ratio, 1) for line in self.line_ids])]
        return result

    def _check_change(self, plan, new_lines, timing):
        """:param str timing: ``now``, ``next_period`` or ``renewal`` (new terms from a new term:
            an expired subscription may be renewed so, and lowering the revenue is allowed)
        :raise UserError: the subscription is not running (or not billed, for a change now),
        no line is left, a quantity or price is negative, the plan belongs to another company, or
        the change lowers the recurring revenue during a commitment term of a plan that does not
        allow downgrades"""
        self.ensure_one()
        if timing == "renewal" and self.state not in (*const.RUNNING_STATES, "expired"):
            raise UserError(self.env._("%(sub)s is %(state)s: it cannot be renewed. Start a new subscription.",
                                       sub=self.display_name, state=self._state_label()))
        if timing != "renewal" and self.state not in const.RUNNING_STATES:
            raise UserError(self.env._("%(sub)s is %(state)s: it cannot be changed.", sub=self.display_name,
                                       state=self._state_label()))
        if timing == "now" and self.state not in const.BILLABLE_STATES:
            raise UserError(self.env._("%(sub)s is %(state)s: change it at the next period, or reactivate it first.",
                                       sub=self.display_name, state=self._state_label()))
        if not new_lines:
            raise UserError(self.env._("Keep at least one line: to stop the subscription, close it."))
        if timing != "renewal" and plan == self.plan_id and not self._lines_differ(new_lines):
            raise UserError(self.env._("Nothing would change: choose another plan, quantity or option."))
        if any(line.quantity > const.MAX_QUANTITY for line in new_lines):
            raise UserError(self.env._("Quantities are at most %(max)s.", max=f"{const.MAX_QUANTITY:,.0f}"))
        if any(line.quantity <= 0 or line.price_unit < 0 for line in new_lines):
            raise UserError(self.env._("Quantities must be above 0 and prices not negative."))
        if plan.company_id and plan.company_id != self.company_id:
            raise UserError(self.env._("Plan %(plan)s belongs to another company.", plan=plan.name))
        in_term = timing != "renewal" and self.plan_id.term_value and self.date_end \
            and self.date_end >= self.company_id._subscription_today()
        if in_term and not self.plan_id.allow_downgrade and self._is_downgrade(plan, new_lines):
            message = self.env._(
                "%(sub)s is committed until %(date)s: plan %(plan)s does not allow lowering its quantities, prices or "
                "plan before then. Make the change at the renewal.",
                sub=self.display_name, date=format_date(self.env, self.date_end), plan=self.plan_id.name)
            if self.env.user._is_internal():
                message += " " + self.env._("A manager can allow downgrades on the plan.")
            raise UserError(message)

    def _is_downgrade(self, plan, new_lines):
        """A line removed or its quantity lowered; or less recurring revenue (MRR) on the same plan
        or on a plan billed as often or more often (a longer billing period, e.g. monthly to
        yearly, is a bigger commitment even when cheaper per month)."""
        self.ensure_one()
        for line in self.line_ids:
            # the same product, or another variant of it (its price decides below)
            same = next((new for new in new_lines if new.product_id == line.product_id), None) or next(
                (new for new in new_lines if new.product_id.product_tmpl_id == line.product_id.product_tmpl_id), None)
            if not same or same.quantity < line.quantity:
                return True
        old_mrr = self.amount_untaxed * self.plan_id._monthly_factor()
        new_mrr = sum(line.price_subtotal for line in new_lines) * plan._monthly_factor()
        longer = plan != self.plan_id and plan._monthly_factor() < self.plan_id._monthly_factor()
        return not longer and self.currency_id.compare_amounts(new_mrr, old_mrr) < 0

    def _lines_differ(self, new_lines):
        """The lines ``new_lines`` (in memory) differ from the current ones (product, quantity,
        price or discount)."""
        self.ensure_one()
        key = lambda l: (l.product_id.id, l.quantity, l.price_unit, l.discount)
        return sorted(map(key, self.line_ids)) != sorted(map(key, new_lines))

    def _lines_total(self, lines):
        """``(untaxed, total)`` of one invoice of ``[(line, ratio, sign)]`` (taxes computed and
        rounded as the invoice does): each line's unit price times ``ratio`` (rounded to the price
        precision, as a prorated invoice line), its quantity times ``sign``."""
        self.ensure_one()
        if not lines:
            return 0.0, 0.0
        AccountTax = self.env["account.tax"]
        base_lines = [line._prepare_base_line_for_taxes_computation(
            price_unit=self._prorated_price(line.price_unit, ratio), quantity=line.quantity * sign)
            for line, ratio, sign in lines]
        AccountTax._add_tax_details_in_base_lines(base_lines, self.company_id)
        AccountTax._round_base_lines_tax_details(base_lines, self.company_id)
        currency = self.currency_id or self.company_id.currency_id
        totals = AccountTax._get_tax_totals_summary(base_lines=base_lines, currency=currency, company=self.company_id)
        return currency.round(totals["base_amount_currency"]), currency.round(totals["total_amount_currency"])

    def _prorated_price(self, price_unit, ratio):
        if ratio is None:
            return price_unit
        return float_round(price_unit * ratio, precision_digits=self.env["decimal.precision"].precision_get(
            "Product Price"))

    def _apply_change(self, plan, lines_vals, timing, author=None):
        """Change this subscription's plan and lines, and bill the proration (see ``_change_preview``).

        :param plan: the new ``subscription.plan`` (may be the current one)
        :param list lines_vals: the lines after the change, ``[{"line_id": id or False, "product_id",
            "quantity", "price_unit", "discount"}]``; current lines not listed are removed
        :param str timing: ``next_period``, ``now``, or ``renewal`` (no proration, the first day
            of a new term: see ``subscription.renewal.change``)
        :param author: the ``res.partner`` the change is attributed to (default: the current user)
        :return: the documents created (``account.move``: a prorated invoice or credit note, and
            for a plan change now the first invoice of the new plan), posted
        :raise UserError: see ``_check_change``
        """
        self.ensure_one()
        self.check_access("write")
        day = self.company_id._subscription_today()
        new_lines = self._new_lines(lines_vals, plan)
        preview = self._change_preview(plan, new_lines, timing, day)
        documents = self._create_change_documents(preview, day)
        old_plan = self.plan_id
        transfer_from = self.env["subscription.mrr.log"]._transfer_snapshot(
            self, self.env.context.get("subscription_event_date") or day)
        kept = {vals["line_id"] for vals in lines_vals if vals.get("line_id")}
        commands = [Command.unlink(line.id) for line in self.line_ids if line.id not in kept]
        for vals, line in zip(lines_vals, new_lines, strict=True):
            values = {"product_id": line.product_id.id, "quantity": line.quantity, "price_unit": line.price_unit,
                      "discount": line.discount}
            commands.append(Command.update(vals["line_id"], values) if vals.get("line_id") else Command.create(values))
        write_vals = {"line_ids": commands}
        if plan != old_plan:
            restart = day if preview["new_period"] else (self.next_invoice_date or day)
            # The plan first (its prices are computed on the lines), then the lines with the prices
            # agreed; the MRR is logged once, for the whole change.
            Deferred = self.with_context(subscription_plan_change=_PLAN_CHANGE, subscription_mrr_defer=True)
            Deferred.write({"plan_id": plan.id})
            Deferred.write(write_vals)
            self.env["subscription.mrr.log"]._sync(self)
            # Periods and the new commitment term count from the restart day.
            Restart = self.with_context(subscription_term_write=True, subscription_plan_change=_PLAN_CHANGE)
            Restart.write({"date_anchor": restart, "next_invoice_date": restart})
            if not self.is_end_scheduled:
                # the new plan's commitment term (none for an open-ended plan)
                Restart.write({"date_end": self._term_end(restart) if plan.term_value else False})
            if preview["new_period"]:
                documents |= self.sudo()._bill(until=day, raise_on_error=True)
        else:
            self.write(write_vals)
        self.env["subscription.mrr.log"]._transfer(self, transfer_from)
        documents._subscription_apply_credits()
        documents.filtered(lambda m: m.move_type == "out_invoice")._subscription_notify_billed()
        author = author or self.env.user.partner_id
        self.message_post(body=self._change_message(old_plan, preview, documents, timing, author),
                          author_id=author.id)
        return documents

    def _new_lines(self, lines_vals, plan):
        """``subscription.line`` records in memory for ``lines_vals`` (taxes from the products and
        the fiscal position, as saved lines would have)."""
        Line = self.env["subscription.line"]
        lines = Line
        current = self.line_ids
        for vals in lines_vals:
            current = Line.browse(vals["line_id"]) if vals.get("line_id") else Line
            line = Line.new({
                "subscription_id": self.id,
                "product_id": vals.get("product_id", current.product_id.id),
                "quantity": vals.get("quantity", current.quantity),
                "discount": vals.get("discount", current.discount),
                "sequence": current.sequence or 100,
            })
            if current and line.product_id == current.product_id:
                line.tax_ids = current.tax_ids  # taxes set on the line (e.g. tax included) stay
            if "price_unit" in vals:
                line.price_unit = vals["price_unit"]
            elif current and plan == self.plan_id and line.product_id == current.product_id:
                line.price_unit = current.price_unit  # a price set by hand stays
            else:  # the product's price on the new plan
                price = self.env["subscription.pricing"]._get_price(line.product_id, plan, self.currency_id)
                line.price_unit = line.product_id.lst_price if price is None else price
            line._compute_amount()
            lines |= line
        if self.line_ids != current:
            # In a dialog (onchange), lines in memory join the subscription's cached lines: they
            # must not count as its own (its amounts, the credit of its unused time).
            self.invalidate_recordset(["line_ids", "amount_untaxed", "amount_tax", "amount_total"])
        return lines

    def _create_change_documents(self, preview, day):
        """Post the proration documents of ``preview`` (see ``_change_preview``)."""
        Move = self.env["account.move"].sudo().with_context(mail_create_nosubscribe=True)
        journal = self._get_sale_journal()
        label = self.env._("%(start)s to %(end)s (change on %(day)s: %(days)s of %(total)s days)",
                           start=format_date(self.env, day), end=format_date(self.env, preview["period_end"] or day),
                           day=format_date(self.env, day), days=preview["days_left"], total=preview["days_in_period"])
        documents = Move
        for move_type, lines in preview["documents"]:
            line_vals = []
            for line, ratio, sign in lines:
                vals = line._prepare_invoice_line_vals(label, ratio=ratio)
                vals["quantity"] = line.quantity * sign
                vals["name"] = (self.env._("Unused time: %(name)s", name=vals["name"]) if sign * (
                    1 if move_type == "out_invoice" else -1) < 0 else self.env._("Remaining time: %(name)s",
                                                                                  name=vals["name"]))
                line_vals.append(Command.create(vals))
            documents |= Move.create({
                **self._invoice_header_vals(move_type, journal, day),
                "subscription_send": "email" if self.partner_id.email and not self.payment_token_id else "pdf",
                "subscription_charge_date": day if self.payment_token_id and move_type == "out_invoice" else False,
                "invoice_line_ids": line_vals,
            })
        documents.action_post()
        return documents

    def _change_message(self, old_plan, preview, documents, timing, author):
        currency = self.currency_id
        parts = []
        if old_plan != self.plan_id:
            parts.append(self.env._("plan %(old)s → %(new)s", old=old_plan.name, new=self.plan_id.name))
        parts.append(self.env._("lines: %(lines)s", lines=", ".join(
            f"{line.product_id.display_name} × {line.quantity:g}" for line in self.line_ids)))
        if timing == "now" and documents:
            parts.append(self.env._("prorated now: credit %(credit)s, charge %(charge)s, net %(net)s (%(docs)s)",
                                    credit=format_amount(self.env, preview["credit"], currency),
                                    charge=format_amount(self.env, preview["charge"], currency),
                                    net=format_amount(self.env, preview["net"], currency),
                                    docs=", ".join(documents.mapped("name"))))
        elif timing == "renewal":
            parts.append(self.env._("from the new term"))
        else:
            parts.append(self.env._("from the next period"))
        return self.env._("Changed by %(user)s: %(parts)s.", user=author.name, parts="; ".join(parts))


class AccountMove(models.Model):
    _inherit = "account.move"

    def _subscription_apply_credits(self):
        """Credit notes of a subscription pay its open invoices (the oldest first): a downgrade's
        credit is used on the invoice of the period it credits if still unpaid, else on the next
        invoices as they are posted (Odoo's outstanding credits, never refunded silently)."""
        subs = self.sudo().subscription_id
        if not subs:
            return
        Move = self.env["account.move"].sudo()
        open_domain = Domain("subscription_id", "in", subs.ids) & Domain("state", "=", "posted") \
            & Domain("payment_state", "in", ("not_paid", "partial"))
        credits = Move.search(open_domain & Domain("move_type", "=", "out_refund"))
        if not credits:
            return
        invoices = Move.search(open_domain & Domain("move_type", "=", "out_invoice"), order="invoice_date, id")
        for credit in credits:
            for invoice in invoices.filtered(lambda m, c=credit: m.subscription_id == c.subscription_id):
                if credit.payment_state not in ("not_paid", "partial"):
                    break
                if invoice.payment_state not in ("not_paid", "partial"):
                    continue
                lines = (credit | invoice).line_ids.filtered(
                    lambda l: l.account_id.account_type == "asset_receivable" and not l.reconciled)
                lines.reconcile()

