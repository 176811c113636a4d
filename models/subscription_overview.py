"""The Overview: every figure of the subscriptions' landing screen in one server call.

Kept apart from the subscription's own logic (as Odoo's journal dashboard is): grouped reads and a
few aggregate queries through the ORM's rule-aware ``_search``, never a loop over subscriptions,
so the screen answers in well under a second on 50,000 subscriptions (``bench/overview.py``).
"""

from collections import defaultdict
from datetime import datetime, time

from dateutil.relativedelta import relativedelta

from odoo import api, fields, models
from odoo.fields import Domain
from odoo.tools import SQL, format_date

from .. import const

CHART_MONTHS = 12
# Movement types in the order the screen lists them.
MOVEMENTS = ("new", "expansion", "reactivation", "contraction", "churn", "transfer")


class SubscriptionSubscription(models.Model):
    _inherit = "subscription.subscription"

    # === PUBLIC: THE OVERVIEW === #

    @api.model
    def get_overview_data(self):
        """Every figure of *Subscriptions → Overview*, for the companies selected in the company
        switcher, as the user's access rights and record rules allow.

        Amounts are in the current company's currency (``env.company``): each company's figures,
        kept in its own currency by the MRR log, are converted at today's rate. "This month" runs
        from the first of the current company's month to today; "last month" is the whole previous
        month. Formulas (also in the README, section *Overview*):

        - MRR: sum of the MRR log up to the day (= the running subscriptions' ``recurring_monthly``);
          ARR = 12 × MRR; paying customers: customers whose MRR is above 0; ARPU = MRR / paying
          customers.
        - Movements: sums of the log's ``mrr_change`` by event type over the month; net new MRR is
          their total (= MRR at the end − MRR at the start).
        - Revenue churn rate = (churned + contraction MRR) / MRR at the start of the month (gross MRR
          churn, as Chargebee defines it); logo churn rate = customers paying at the start and no
          longer at the end / customers paying at the start.
        - MRR at risk: MRR of past-due subscriptions plus the MRR suspended subscriptions brought.
        - Dunning recovery: invoices whose first failed autopay charge falls in the month (dunning
          episodes) and, of those, the ones paid since (any way): count, amount, rate.

        :return: dict with ``currency`` (id, symbol, position, digits), ``today``, ``month`` and
            ``last_month`` (labels), ``counts`` (list of {key, label, value, res_model, domain, help}),
            ``kpis`` (list of {key, label, value, previous, kind ('money', 'count', 'percent'),
            better ('up', 'down', None), help}), ``at_risk`` (past_due, suspended, total, count),
            ``recovery`` (this and last month: episodes, recovered, amount, rate) and ``chart``
            (labels, mrr, and movements by type, one value per month for the last 12 months)
        """
        company = self.env.company
        currency = company.currency_id
        today = company._subscription_today()
        month_start = today.replace(day=1)
        last_start = month_start - relativedelta(months=1)
        chart_start = month_start - relativedelta(months=CHART_MONTHS - 1)

        by_month = self._overview_log_by_month(today)
        mrr_at = self._overview_mrr_at(by_month)
        moves_now, moves_last = by_month["moves"].get(month_start, {}), by_month["moves"].get(last_start, {})
        customers = self._overview_paying_customers([last_start - relativedelta(days=1),
                                                     month_start - relativedelta(days=1), today])
        mrr_now, mrr_last, mrr_before = (mrr_at(today), mrr_at(month_start - relativedelta(days=1)),
                                         mrr_at(last_start - relativedelta(days=1)))

        def rate(part, whole):
            return round(100.0 * part / whole, 2) if whole else 0.0

        def churned(moves):
            return -(moves.get("churn", 0.0) + moves.get("contraction", 0.0))

        kpis = [
            self._kpi("mrr", self.env._("MRR"), mrr_now, mrr_last, "money", "up",
                      self.env._("Monthly recurring revenue of the running subscriptions, untaxed.")),
            self._kpi("arr", self.env._("ARR"), 12 * mrr_now, 12 * mrr_last, "money", "up",
                      self.env._("Annual run rate: 12 × MRR.")),
            self._kpi("customers", self.env._("Paying customers"), customers[2]["paying"],
                      customers[1]["paying"], "count", "up",
                      self.env._("Customers with recurring revenue above 0.")),
            self._kpi("arpu", self.env._("ARPU"), mrr_now / customers[2]["paying"] if customers[2]["paying"] else 0.0,
                      mrr_last / customers[1]["paying"] if customers[1]["paying"] else 0.0, "money", "up",
                      self.env._("Average revenue per paying customer: MRR / paying customers.")),
        ]
        labels = dict(self.env["subscription.mrr.log"]._fields["event_type"]._description_selection(self.env))
        movement_labels = {
            "new": self.env._("New MRR"), "expansion": self.env._("Expansion MRR"),
            "reactivation": self.env._("Reactivated MRR"), "contraction": self.env._("Contraction MRR"),
            "churn": self.env._("Churned MRR"), "transfer": self.env._("Transferred MRR"),
        }
        for move in MOVEMENTS:
            if move == "transfer" and not (moves_now.get(move) or moves_last.get(move)):
                continue
            # contraction and churn are shown as the losses they are (negative): up is better for all
            kpis.append(dict(self._kpi(
                move, movement_labels[move], moves_now.get(move, 0.0),
                moves_last.get(move, 0.0), "money", "up",
                self.env._("Sum of this month's '%(type)s' events of the MRR log.", type=labels[move]),
            ), res_model="subscription.mrr.log", domain=[
                ("event_type", "=", move), ("event_date", ">=", fields.Date.to_string(month_start)),
                ("event_date", "<=", fields.Date.to_string(today))]))
        kpis += [
            self._kpi("net_new", self.env._("Net new MRR"), sum(moves_now.values()), sum(moves_last.values()),
                      "money", "up", self.env._("All of the month's movements: MRR at the end − MRR at the start.")),
            self._kpi("revenue_churn", self.env._("Revenue churn rate"), rate(churned(moves_now), mrr_last),
                      rate(churned(moves_last), mrr_before), "percent", "down",
                      self.env._("(Churned + contraction MRR) / MRR at the start of the month.")),
            self._kpi("logo_churn", self.env._("Logo churn rate"),
                      rate(customers[2]["lost"], customers[1]["paying"]),
                      rate(customers[1]["lost"], customers[0]["paying"]), "percent", "down",
                      self.env._("Customers paying at the start of the month and no longer at its end / "
                                 "customers paying at the start.")),
        ]
        chart_months = [chart_start + relativedelta(months=i) for i in range(CHART_MONTHS)]
        return {
            "currency": {"id": currency.id, "symbol": currency.symbol, "position": currency.position,
                         "digits": currency.decimal_places},
            "companies": self.env.companies.mapped("name"),
            "today": fields.Date.to_string(today),
            "month": format_date(self.env, month_start, date_format="MMMM y"),
            "last_month": format_date(self.env, last_start, date_format="MMMM y"),
            "counts": self._overview_counts(today, month_start),
            "kpis": kpis,
            "at_risk": self._overview_at_risk(),
            "recovery": {"this_month": self._overview_recovery(month_start, today),
                         "last_month": self._overview_recovery(last_start, month_start - relativedelta(days=1))},
            "chart": {
                "labels": [format_date(self.env, month, date_format="MMM y") for month in chart_months],
                "mrr": [currency.round(mrr_at(min(month + relativedelta(months=1, days=-1), today)))
                        for month in chart_months],
                "movements": [
                    {"type": move, "label": labels[move],
                     "values": [currency.round(by_month["moves"].get(month, {}).get(move, 0.0))
                                for month in chart_months]}
                    for move in MOVEMENTS
                    if any(by_month["moves"].get(month, {}).get(move) for month in chart_months)
                ],
            },
        }

    # === OVERVIEW: HELPERS === #

    @api.model
    def _kpi(self, key, label, value, previous, kind, better, help_text):
        currency = self.env.company.currency_id
        if kind == "money":
            value, previous = currency.round(value), currency.round(previous)
        return {"key": key, "label": label, "value": value, "previous": previous,
                "change": (currency.round(value - previous) if kind == "money" else round(value - previous, 2)),
                "kind": kind, "better": better, "help": help_text}

    @api.model
    def _overview_convert(self, amount, company, day):
        """``amount`` in ``company``'s currency converted to the current company's currency."""
        target = self.env.company.currency_id
        source = company.currency_id
        if source == target or not amount:
            return amount
        return source._convert(amount, target, self.env.company, day, round=False)

    @api.model
    def _overview_log_by_month(self, today):
        """The MRR log summed by month and event type (converted to the current company's
        currency): ``{"moves": {first_of_month: {event_type: amount}}}``. One grouped read."""
        moves = defaultdict(lambda: defaultdict(float))
        for company, month, event_type, total in self.env["subscription.mrr.log"]._read_group(
                [("event_date", "<=", today)], ["company_id", "event_date:month", "event_type"], ["mrr_change:sum"]):
            moves[month][event_type] += self._overview_convert(total, company, today)
        return {"moves": moves}

    @api.model
    def _overview_mrr_at(self, by_month):
        """A function giving the MRR at the end of a day: the log summed up to that day's month
        (movements are summed by month, so a day inside the current month means today)."""
        months = sorted(by_month["moves"])
        cumulative, running = {}, 0.0
        for month in months:
            running += sum(by_month["moves"][month].values())
            cumulative[month] = running

        def mrr_at(day):
            eligible = [month for month in months if month <= day]
            return cumulative[eligible[-1]] if eligible else 0.0
        return mrr_at

    @api.model
    def _overview_paying_customers(self, days):
        """For each day of ``days`` (ascending): customers paying at its end (MRR above 0) and,
        from the second on, those paying at the previous day's end and no longer at this one.
        One aggregate query on the MRR log, as the record rules allow.

        :return: list of {"paying": int, "lost": int}, one per day
        """
        Log = self.env["subscription.mrr.log"]
        query = Log._search([("event_date", "<=", days[-1])])
        query.groupby = SQL("%s", Log._field_to_sql(Log._table, "partner_id", query))
        sums = [SQL("COALESCE(SUM(%s) FILTER (WHERE %s <= %s), 0) AS d%s",
                    Log._field_to_sql(Log._table, "mrr_change", query),
                    Log._field_to_sql(Log._table, "event_date", query), day, SQL(str(index)))
                for index, day in enumerate(days)]
        columns = [SQL("COUNT(*) FILTER (WHERE d%s > 0)", SQL(str(index))) for index in range(len(days))]
        columns += [SQL("COUNT(*) FILTER (WHERE d%s > 0 AND d%s <= 0)", SQL(str(index - 1)), SQL(str(index)))
                    for index in range(1, len(days))]
        self.env.cr.execute(SQL("SELECT %s FROM (%s) per_customer", SQL(", ").join(columns),
                                query.select(*sums)))
        row = self.env.cr.fetchone()
        count = len(days)
        return [{"paying": row[index], "lost": row[count + index - 1] if index else 0} for index in range(count)]

    @api.model
    def _overview_counts(self, today, month_start):
        """The screen's counters, each with the domain of its drill-down list."""
        Subscription = self.env["subscription.subscription"]
        Charge = self.env["subscription.charge"]
        counters = [
            ("active", self.env._("Active"), Subscription,
             [("state", "in", list(const.BILLABLE_STATES)), ("is_trial", "=", False)],
             self.env._("Active and past-due subscriptions: billed on their billing day.")),
            ("trial", self.env._("On trial"), Subscription, [("state", "=", "active"), ("is_trial", "=", True)],
             self.env._("In their free trial: not invoiced yet, not in MRR until they convert.")),
            ("expiring", self.env._("Expiring soon"), Subscription, [("is_expiring", "=", True)],
             self.env._("Running, not renewing by themselves, within their plan's reminder days of the term end.")),
            ("retrying", self.env._("Payment failed, retrying"), Subscription,
             [("state", "in", list(const.RUNNING_STATES)),
              ("charge_ids", "any", [("state", "=", "failed"), ("is_latest_attempt", "=", True),
                                     ("next_retry_date", "!=", False)])],
             self.env._("The last autopay charge of an invoice failed and a retry is scheduled.")),
            ("suspended", self.env._("Suspended"), Subscription, [("state", "=", "suspended")],
             self.env._("Not billed until paid or reactivated: after failed payments, "
                        "an unpaid invoice, or by staff.")),
            ("paused", self.env._("Paused"), Subscription, [("state", "=", "paused")],
             self.env._("Paused by staff or the customer: not billed, no MRR, until resumed.")),
            ("overdue_manual", self.env._("Overdue manual payers"), Subscription,
             [("has_overdue_invoice", "=", True), ("payment_token_id", "=", False)],
             self.env._("Subscriptions without autopay with an invoice past its due date.")),
            ("review", self.env._("Payments to review"), Charge, [("needs_review", "=", True)],
             self.env._("Autopay charges whose outcome is unknown: ask the provider or settle them by hand.")),
            ("closed", self.env._("Ended this month"), Subscription,
             [("state", "in", list(const.CLOSED_STATES)), ("date_closed", ">=", month_start)],
             self.env._("Expired or cancelled since the first of the month.")),
            ("new", self.env._("New this month"), Subscription,
             [("state", "!=", "draft"), ("date_start", ">=", month_start), ("date_start", "<=", today)],
             self.env._("Started since the first of the month.")),
        ]
        return [{"key": key, "label": label, "res_model": model._name, "domain": domain,
                 "value": model.search_count(domain), "help": help_text}
                for key, label, model, domain, help_text in counters]

    @api.model
    def _overview_at_risk(self):
        """MRR at risk: past-due subscriptions' MRR plus what suspended ones brought while running
        (their lines, normalized to a month), in the current company's currency."""
        today = self.env.company._subscription_today()
        past_due = suspended = 0.0
        past_due_count = suspended_count = 0
        for company, total, count in self._read_group(
                [("state", "=", "past_due")], ["company_id"], ["recurring_monthly:sum", "__count"]):
            past_due += self._overview_convert(total, company, today)
            past_due_count += count
        for company, plan, sub_currency, total, count in self._read_group(
                [("state", "=", "suspended")], ["company_id", "plan_id", "currency_id"],
                ["amount_untaxed:sum", "__count"]):
            suspended_count += count
            monthly = total * plan._monthly_factor() if plan else 0.0
            if sub_currency and sub_currency != company.currency_id:
                monthly = sub_currency._convert(monthly, company.currency_id, company, today, round=False)
            suspended += self._overview_convert(monthly, company, today)
        currency = self.env.company.currency_id
        return {"past_due": currency.round(past_due), "past_due_count": past_due_count,
                "suspended": currency.round(suspended), "suspended_count": suspended_count,
                "total": currency.round(past_due + suspended)}

    @api.model
    def _overview_recovery(self, start, end):
        """Dunning recovery of the invoices whose first failed autopay charge falls between
        ``start`` and ``end`` (dates, inclusive): how many, how many paid since, for how much
        (company currency converted to the current company's), and the rate in %."""
        Charge = self.env["subscription.charge"]
        low = datetime.combine(start, time.min)
        high = datetime.combine(end, time.max)
        first_failures = Charge._read_group(
            [("state", "=", "failed")], ["invoice_id"], ["date_attempt:min"],
            having=[("date_attempt:min", ">=", low), ("date_attempt:min", "<=", high)])
        invoice_ids = [invoice.id for invoice, __ in first_failures]
        recovered = amount = 0.0
        today = self.env.company._subscription_today()
        if invoice_ids:
            for company, total, count in self.env["account.move"]._read_group(
                    Domain("id", "in", invoice_ids) & Domain("payment_state", "in", ("paid", "in_payment")),
                    ["company_id"], ["amount_total_signed:sum", "__count"]):
                recovered += count
                amount += self._overview_convert(total, company, today)
        episodes = len(invoice_ids)
        return {"episodes": episodes, "recovered": int(recovered),
                "amount": self.env.company.currency_id.round(amount),
                "rate": round(100.0 * recovered / episodes, 1) if episodes else 0.0}
