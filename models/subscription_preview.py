"""The next billing run, previewed: what the billing day and the autopay run would do on a chosen
day, and which subscriptions would fail or bounce, with a reason a person can fix. Computed from
the same domains and period arithmetic as the scheduled actions, without writing anything."""

from collections import defaultdict
from datetime import timedelta

from odoo import api, models
from odoo.fields import Domain

from .. import const

PREVIEW_PROBLEM_LIMIT = 2000


class SubscriptionSubscription(models.Model):
    _inherit = "subscription.subscription"

    @api.model
    def _billing_preview(self, day):
        """What the billing day and the autopay run would do on ``day`` if nothing changed until
        then. Reads only: nothing is written, queued or locked.

        :param day: a ``date`` (the run's "today", for every company)
        :return: dict with ``invoice_count`` (periods the billing day would invoice),
            ``subscription_count``, ``charge_count`` (autopay charges: open invoices whose retry
            date has come, plus the new invoices of autopay subscriptions), ``invoiced`` and
            ``charged`` (``{currency: amount}``, taxes included), ``closing`` (subscriptions that
            would close at their end), and ``problems``: ``{subscription: [reason, ...]}`` for the
            subscriptions that would fail to invoice, bounce at the charge or not receive their
            invoice (at most ``PREVIEW_PROBLEM_LIMIT`` subscriptions)
        """
        Move = self.env["account.move"]
        billable = self.search(self._billable_domain(today=day), order="next_invoice_date, id")
        plans = billable._plan_billing(until=day, max_periods=const.MAX_PERIODS_PER_REQUEST)
        invoiced = defaultdict(float)
        charged = defaultdict(float)
        invoice_count = charge_count = 0
        new_by_sub = {}
        for sub, plan in plans.items():
            periods = plan["periods"]
            if not periods:
                continue
            amount = sum(sub.amount_total * (ratio if ratio is not None else 1.0) for __, __, ratio in periods)
            amount = sub.currency_id.round(amount)
            invoiced[sub.currency_id] += amount
            invoice_count += len(periods)
            new_by_sub[sub] = amount
            if sub.payment_token_id:
                charged[sub.currency_id] += amount
                charge_count += len(periods)
        due_invoices = Move.search(Move._autopay_due_domain(today=day))
        for currency, total, count in Move._read_group(
                Domain("id", "in", due_invoices.ids), ["currency_id"], ["amount_residual:sum", "__count"]):
            charged[currency] += total
            charge_count += count
        closing = self.search(self._ended_domain(today=day))
        charged_subs = due_invoices.subscription_id | billable.filtered(
            lambda s: s.payment_token_id and s in new_by_sub)
        problems = (billable | charged_subs)._billing_problems(day, new_by_sub, charged_subs)
        return {
            "invoice_count": invoice_count, "subscription_count": len(new_by_sub), "charge_count": charge_count,
            "invoiced": dict(invoiced), "charged": dict(charged), "closing": closing,
            "problems": dict(list(problems.items())[:PREVIEW_PROBLEM_LIMIT]),
        }

    def _billing_problems(self, day, billed, charged):
        """Why each of these subscriptions would fail to invoice, bounce at the charge, or not get
        its invoice on ``day``.

        :param billed: ``{subscription: amount}`` of those the billing day would invoice
        :param charged: subscriptions autopay would charge
        :return: ``{subscription: [reason, ...]}`` for those with a problem, in words a person can
            act on
        """
        problems = defaultdict(list)
        Journal = self.env["account.journal"].sudo()
        journals = {company: Journal.search([*Journal._check_company_domain(company), ("type", "=", "sale")],
                                            limit=1) for company in self.company_id}
        no_journal = {company for company, journal in journals.items() if not journal}
        for sub in self:
            company = sub.company_id
            if sub in billed:
                if not sub.payment_token_id and not sub.partner_id.email:
                    problems[sub].append(self.env._(
                        "The customer %(partner)s has no e-mail address: the invoice cannot be e-mailed.",
                        partner=sub.partner_id.display_name))
                if not sub.line_ids:
                    problems[sub].append(self.env._("No line to invoice."))
                if sub.plan_id.company_id and sub.plan_id.company_id != company:
                    problems[sub].append(self.env._(
                        "The plan %(plan)s belongs to %(other)s, not %(company)s.", plan=sub.plan_id.name,
                        other=sub.plan_id.company_id.name, company=company.name))
                for line in sub.line_ids:
                    product = line.product_id.sudo()
                    if not product.active or not product.product_tmpl_id.active:
                        problems[sub].append(self.env._("The product %(product)s is archived.",
                                                        product=product.display_name))
                    elif not product.sale_ok:
                        problems[sub].append(self.env._("The product %(product)s cannot be sold.",
                                                        product=product.display_name))
                    accounts = product.product_tmpl_id.with_company(company)._get_product_accounts()
                    if not accounts.get("income") and not journals[company].default_account_id:
                        problems[sub].append(self.env._(
                            "The product %(product)s has no income account in %(company)s.",
                            product=product.display_name, company=company.name))
                    parents = company.parent_ids
                    foreign = line.tax_ids.filtered(lambda tax, parents=parents: tax.company_id not in parents)
                    if foreign:
                        problems[sub].append(self.env._(
                            "The taxes %(taxes)s of %(product)s belong to another company: set the taxes of "
                            "%(company)s.", taxes=", ".join(foreign.mapped("name")), product=product.display_name,
                            company=company.name))
                if company in no_journal:
                    problems[sub].append(self.env._("%(company)s has no sales journal.", company=company.name))
            if sub in charged:
                token = sub.payment_token_id.sudo()
                problem = token and sub._autopay_problem(token, sub.currency_id)
                if problem:
                    problems[sub].append(self.env._("Autopay will fail: %(why)s", why=problem[1]))
                elif token.card_exp_year and token.card_exp_month:
                    expiry_end = (day.replace(year=token.card_exp_year, month=token.card_exp_month, day=1)
                                  + timedelta(days=32)).replace(day=1)
                    if expiry_end <= day:
                        problems[sub].append(self.env._(
                            "The card %(card)s expired before the charge date: ask the customer for a new one.",
                            card=token._subscription_label()))
        return problems
