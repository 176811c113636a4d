import random
from datetime import timedelta

from dateutil.relativedelta import relativedelta

from odoo import api, models

from ..utils import add_period


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
    def _pause(self, sub_ids, days):
        """The reader is away: paused from today for ``days`` days."""
        today = self.env.company._subscription_today()
        self.env["subscription.subscription"].browse(sub_ids).action_pause(date_resume=today + timedelta(days=days))

    @api.model
    def _renewal_opportunities(self):
        """What the daily status run does for terms ending soon: one renewal opportunity each."""
        Subscription = self.env["subscription.subscription"]
        Subscription.search(Subscription._renewal_lead_domain())._create_renewal_leads()

    @api.model
    def _close(self, sub_ids, reason_id, note=False):
        subs = self.env["subscription.subscription"].browse(sub_ids)
        subs._action_close("cancelled", self.env["subscription.close.reason"].browse(reason_id), note)

    @api.model
    def _history(self, partner_count=90, seed=2026):
        """A year of subscribers for the Overview: ``partner_count`` readers who subscribed over the
        last twelve months, migrated from the previous billing system (already billed up to this
        period: their next invoice is the next period). Their changes are logged on the day they
        happened (upgrades, downgrades, closures with reasons, suspensions for non-payment, some
        reactivated), so the MRR chart, movements, churn and cohorts tell a living story."""
        rng = random.Random(seed)
        Subscription = self.env["subscription.subscription"]
        today = self.env.company._subscription_today()
        plans = ([self.env.ref("subscription_billing.plan_monthly")] * 5
                 + [self.env.ref("subscription_billing.plan_quarterly")] * 2
                 + [self.env.ref("subscription_billing.plan_yearly")] * 3)
        product = self.env.ref("subscription_billing.product_trendhouse")
        reasons = [self.env.ref(xmlid) for xmlid in (
            "subscription_billing.close_reason_too_expensive", "subscription_billing.close_reason_customer_request",
            "subscription_billing.close_reason_other")]
        countries = [self.env.ref(f"base.{code}") for code in ("us", "be", "fr", "de", "nl", "es")]
        first_names = ["Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hal", "Ines", "Jon", "Kai", "Lena",
                       "Milo", "Nora", "Otto", "Pia", "Quin", "Rosa", "Sam", "Tess"]
        last_names = ["Archer", "Baker", "Costa", "Dumont", "Ekdahl", "Fischer", "Gallo", "Horvat", "Ivanova"]
        partners = self.env["res.partner"].create([{
            "name": f"{rng.choice(first_names)} {rng.choice(last_names)}",
            "email": f"reader{i:03d}@example.com",
            "country_id": rng.choice(countries).id,
        } for i in range(partner_count)])
        salespeople = self.env.ref("base.user_admin") | self.env.ref("base.user_demo", raise_if_not_found=False)
        for partner in partners:
            months_ago = rng.randint(1, 12)
            start = today - relativedelta(months=months_ago, days=rng.randint(0, 27))
            quantity = 2 if rng.random() < 0.15 else 1
            sub = Subscription.create({
                "partner_id": partner.id, "plan_id": rng.choice(plans).id, "user_id": rng.choice(salespeople).id,
                "date_start": start, "state": "active",
                "line_ids": [(0, 0, {"product_id": product.id, "quantity": quantity})],
            })
            plan = sub.plan_id
            next_period = start
            while next_period <= today:
                next_period = add_period(next_period, plan.billing_period_value, plan.billing_period_unit,
                                         anchor_day=start.day)
            sub.with_context(subscription_term_write=True).write({"next_invoice_date": next_period})
            day = start + relativedelta(days=rng.randint(20, max(21, (today - start).days - 1)))
            if day >= today:
                continue
            sub = sub.with_context(subscription_event_date=day)
            roll = rng.random()
            if roll < 0.15:  # the reader added a gift subscription
                sub.line_ids[:1].quantity += 1
            elif roll < 0.22 and quantity > 1:
                sub.line_ids[:1].quantity = 1
            elif roll < 0.38:
                sub._action_close("cancelled", rng.choice(reasons), date_closed=day)
            elif roll < 0.44:  # paused for the holidays, most of them back since
                resume = day + relativedelta(days=rng.randint(14, 60))
                sub._update_state("paused", vals={"date_paused": day, "date_resume": resume})
                if resume < today:
                    sub.with_context(subscription_event_date=resume)._resume(resume, "Resumed on the planned day.")
            elif roll < 0.52:
                sub._update_state("suspended", vals={"suspension_cause": "overdue"})
                sub.with_context(subscription_term_write=True).write({"date_suspended": day})
                back = day + relativedelta(days=rng.randint(5, 40))
                if rng.random() < 0.5 and back < today:
                    sub.with_context(subscription_event_date=back)._update_state("active")
                elif rng.random() < 0.5:
                    sub.with_context(subscription_event_date=min(today, back))._action_close(
                        "cancelled", self.env.ref("subscription_billing.close_reason_payment_failure"),
                        date_closed=min(today, back))
        return partners

    @api.model
    def _recovered(self, sub_ids):
        """Dunning that worked: these subscriptions' autopay card was declined on their unpaid invoice
        (retry scheduled), then the customer paid it and saved a working card."""
        self._autopay_fails(sub_ids, "error")
        subs = self.env["subscription.subscription"].browse(sub_ids)
        self._settle(sub_ids)
        subs.payment_token_id.write({"demo_simulated_state": "done"})
