from odoo.exceptions import AccessError
from odoo.fields import Command
from odoo.tests import freeze_time, new_test_user, tagged

from .autopay_common import AutopayCommon


@tagged("post_install", "-at_install")
class TestOverview(AutopayCommon):
    """Every number of the Overview against a hand-computed fixture: seven customers through new,
    expansion, contraction, churn (voluntary and involuntary), suspension and reactivation over
    September-November 2026, one of them billed in a foreign currency, and a second company.

    MRR in company currency (monthly 12.00, quarterly 32.00 / 3 = 10.67, yearly 120.00 / 12 = 10.00):

    - Sep 1: A monthly 12, B monthly 12, C yearly 10, D quarterly 10.67, E monthly ×2 24; Sep 20: F 12
      → new 80.67, MRR end of September 80.67, 6 paying customers
    - Oct 5: A ×2 (+12 expansion); Oct 10: B cancelled (−12 voluntary churn); Oct 15: G in the other
      currency, 12.00 there = 6.00 here (+6 new); Oct 20: E ×1 (−12 contraction)
      → net −6, MRR end of October 74.67, customers A C D E F G = 6 (B lost)
    - Nov 3: F suspended unpaid (−12 involuntary churn); Nov 8: H, a second subscription of A's
      customer (+12 new); Nov 10: C closed for payment failure (−10 involuntary churn); Nov 14: F
      reactivated (+12) → net +2, MRR on Nov 15 76.67, customers A D E F G = 5 (C lost)
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_currency = cls.env["res.currency"].with_context(active_test=False).search(
            [("id", "!=", cls.currency.id), ("name", "in", ("EUR", "GBP", "CHF"))], limit=1)
        cls.other_currency.active = True
        cls.env["res.currency.rate"].create({"currency_id": cls.other_currency.id, "rate": 2.0,
                                             "name": "2020-01-01", "company_id": cls.company.id})
        cls.customers = cls.env["res.partner"].create([
            {"name": f"Customer {letter}", "email": f"{letter.lower()}@example.com"} for letter in "ABCDEFG"])
        A, B, C, D, E, F, G = cls.customers
        Sub = cls.env["subscription.subscription"]

        def start(partner, plan, day, quantity=1.0, **vals):
            with freeze_time(day):
                sub = Sub.create({
                    "partner_id": partner.id, "plan_id": plan.id, "date_start": day,
                    "line_ids": [Command.create({"product_id": cls.product.id, "quantity": quantity,
                                                 **vals.pop("line", {})})], **vals})
                sub.action_start()
            return sub

        cls.sub_a = start(A, cls.plan_monthly, "2026-09-01")
        cls.sub_b = start(B, cls.plan_monthly, "2026-09-01")
        cls.sub_c = start(C, cls.plan_yearly, "2026-09-01")
        cls.sub_d = start(D, cls.plan_quarterly, "2026-09-01")
        cls.sub_e = start(E, cls.plan_monthly, "2026-09-01", quantity=2.0)
        cls.sub_f = start(F, cls.plan_monthly, "2026-09-20")
        with freeze_time("2026-10-05"):
            cls.sub_a.line_ids.quantity = 2.0
        with freeze_time("2026-10-10"):
            cls.sub_b.with_context(close_reason_id=cls.env.ref(
                "subscription_billing.close_reason_customer_request").id).action_cancel()
        cls.sub_g = start(G, cls.plan_monthly, "2026-10-15", currency_id=cls.other_currency.id,
                          line={"price_unit": 12.0})
        with freeze_time("2026-10-20"):
            cls.sub_e.line_ids.quantity = 1.0
        with freeze_time("2026-11-03"):
            cls.sub_f._update_state("suspended", vals={"suspension_cause": "overdue"})
        cls.sub_h = start(A, cls.plan_monthly, "2026-11-08")
        with freeze_time("2026-11-10"):
            cls.sub_c.with_context(close_reason_id=cls.env.ref(
                "subscription_billing.close_reason_payment_failure").id).action_cancel()
        with freeze_time("2026-11-14"):
            cls.sub_f.action_reactivate()

    def _overview(self, env=None):
        with freeze_time("2026-11-15 12:00:00"):
            return (env or self.env)["subscription.subscription"].get_overview_data()

    def _kpis(self, data):
        return {kpi["key"]: kpi for kpi in data["kpis"]}

    def test_fixture_is_what_the_docstring_says(self):
        self.assertEqual(self.sub_g.recurring_monthly, 6.0, "12.00 in the other currency at 2 per unit")
        self.assertEqual(self.sub_d.recurring_monthly, 10.67)
        self.assertFalse(self.env["subscription.mrr.log"]._check_invariant())

    def test_revenue_figures_this_month_and_last(self):
        kpis = self._kpis(self._overview())
        expected = {
            # key: (this month to Nov 15, October)
            "mrr": (76.67, 74.67), "arr": (920.04, 896.04), "customers": (5, 6),
            "new": (12.0, 6.0), "expansion": (0.0, 12.0), "contraction": (0.0, -12.0),
            "churn": (-22.0, -12.0), "reactivation": (12.0, 0.0), "net_new": (2.0, -6.0),
        }
        for key, (value, previous) in expected.items():
            self.assertAlmostEqual(kpis[key]["value"], value, places=2, msg=key)
            self.assertAlmostEqual(kpis[key]["previous"], previous, places=2, msg=key)
        self.assertAlmostEqual(kpis["mrr"]["change"], 2.0, places=2)
        self.assertAlmostEqual(kpis["arpu"]["value"], 76.67 / 5, places=2)
        self.assertAlmostEqual(kpis["arpu"]["previous"], 74.67 / 6, places=1)
        # revenue churn: (churn + contraction) / MRR at the start of the month
        self.assertAlmostEqual(kpis["revenue_churn"]["value"], round(100 * 22 / 74.67, 2), places=2)
        self.assertAlmostEqual(kpis["revenue_churn"]["previous"], round(100 * 24 / 80.67, 2), places=2)
        # logo churn: one of the six customers paying on Oct 31 (C) no longer pays; F came back
        self.assertAlmostEqual(kpis["logo_churn"]["value"], round(100 / 6, 2), places=2)
        self.assertAlmostEqual(kpis["logo_churn"]["previous"], round(100 / 6, 2), places=2)
        self.assertNotIn("transfer", kpis, "no transfer happened: the row is left out")

    def test_counts_and_their_drill_downs(self):
        data = self._overview()
        counts = {count["key"]: count for count in data["counts"]}
        with freeze_time("2026-11-15 12:00:00"):
            for key, count in counts.items():
                found = self.env[count["res_model"]].search(count["domain"])
                self.assertEqual(len(found), count["value"], f"{key}: the drill-down lists what is counted")
        mine = self.customers | self.partner
        values = {key: len(self.env[c["res_model"]].search(c["domain"]).filtered(
            lambda r: r._name != "subscription.subscription" or r.partner_id in mine)) for key, c in counts.items()}
        self.assertEqual(values["active"], 6, "A D E F G H")
        self.assertEqual(values["new"], 1, "H started on November 8")
        self.assertEqual(values["closed"], 1, "C closed on November 10 (B in October)")
        self.assertEqual(values["suspended"], 0)

    def test_chart_is_the_log_month_by_month(self):
        chart = self._overview()["chart"]
        self.assertEqual(len(chart["labels"]), 12)
        self.assertEqual(chart["mrr"][-3:], [80.67, 74.67, 76.67])
        self.assertEqual(chart["mrr"][:-3], [0.0] * 9)
        moves = {move["type"]: move["values"][-3:] for move in chart["movements"]}
        self.assertEqual(moves["new"], [80.67, 6.0, 12.0])
        self.assertEqual(moves["churn"], [0.0, -12.0, -22.0])
        self.assertEqual(moves["reactivation"], [0.0, 0.0, 12.0])

    def test_mrr_at_risk_past_due_and_suspended(self):
        with freeze_time("2026-11-15"):
            self.sub_d._update_state("past_due")
            self.sub_f._update_state("suspended", vals={"suspension_cause": "payment"})
        risk = self._overview()["at_risk"]
        self.assertEqual((risk["past_due"], risk["past_due_count"]), (10.67, 1))
        self.assertEqual((risk["suspended"], risk["suspended_count"]), (12.0, 1),
                         "what F brought while running, although its MRR is 0 now")
        self.assertEqual(risk["total"], 22.67)

    def test_multi_company_and_the_company_currency(self):
        company_b = self.env["res.company"].create({"name": "Trendhouse Europe", "currency_id": self.other_currency.id})
        self.env.user.company_ids |= company_b
        with freeze_time("2026-11-02"):
            sub_b = self.env["subscription.subscription"].with_company(company_b).create({
                "partner_id": self.partner.id, "plan_id": self.plan_monthly.copy({"company_id": company_b.id}).id,
                "company_id": company_b.id,
                "date_start": "2026-11-02",
                "line_ids": [Command.create({"product_id": self.product.id, "quantity": 1.0, "price_unit": 20.0})],
            })
            sub_b.action_start()
        self.assertEqual(sub_b.recurring_monthly, 20.0, "in company B's own currency")
        manager = new_test_user(self.env, login="ov_manager", company_ids=[Command.set((self.company | company_b).ids)],
                                groups="base.group_user,subscription_billing.group_subscription_viewer")
        as_manager = self.env(user=manager)
        only_a = self._kpis(self._overview(as_manager(context={"allowed_company_ids": [self.company.id]})))
        self.assertAlmostEqual(only_a["mrr"]["value"], 76.67, places=2, msg="company B's subscription is left out")
        both = self._kpis(self._overview(as_manager(context={"allowed_company_ids": [self.company.id, company_b.id]})))
        self.assertAlmostEqual(both["mrr"]["value"], 76.67 + 10.0, places=2,
                               msg="B's 20.00 converted at 2 per unit into the current company's currency")
        self.assertAlmostEqual(both["new"]["value"], 12.0 + 10.0, places=2)
        self.assertEqual(both["customers"]["value"], 6, "Ada Reader pays company B")
        only_b = self._overview(as_manager(context={"allowed_company_ids": [company_b.id]}))
        self.assertEqual(only_b["currency"]["id"], self.other_currency.id)
        self.assertEqual(self._kpis(only_b)["mrr"]["value"], 20.0)
        self.assertEqual(self._kpis(only_b)["new"]["value"], 20.0)
        self.assertEqual({c["key"]: c["value"] for c in only_b["counts"]}["active"], 1)

    def test_dunning_recovery(self):
        sub = self._create_autopay_subscription("error", date_start="2026-11-01",
                                                partner=self.env["res.partner"].create({"name": "Dunned",
                                                                                        "email": "d@example.com"}))
        second = self._create_autopay_subscription("error", date_start="2026-11-01")
        self._bill_and_charge("2026-11-01")
        self.assertEqual(self.Charge.search([("subscription_id", "in", (sub | second).ids)]).mapped("state"),
                         ["failed", "failed"])
        counts = {c["key"]: c["value"] for c in self._overview()["counts"]}
        self.assertEqual(counts["retrying"], 2)
        with freeze_time("2026-11-03"):
            self._register_payment(sub.invoice_ids)
        recovery = self._overview()["recovery"]["this_month"]
        self.assertEqual((recovery["episodes"], recovery["recovered"]), (2, 1))
        self.assertEqual(recovery["amount"], sub.invoice_ids.amount_total)
        self.assertEqual(recovery["rate"], 50.0)
        self.assertEqual(self._overview()["recovery"]["last_month"]["episodes"], 0)

    def test_roles(self):
        viewer = new_test_user(self.env, login="ov_viewer",
                               groups="base.group_user,subscription_billing.group_subscription_viewer")
        data = self._overview(self.env(user=viewer))
        self.assertEqual(self._kpis(data)["mrr"]["value"], self._kpis(self._overview())["mrr"]["value"],
                         "the read-only role sees the whole company's figures")
        # a salesperson who sees only their own subscriptions gets their own figures
        own = new_test_user(self.env, login="ov_own",
                            groups="base.group_user,subscription_billing.group_subscription_user")
        self.sub_a.user_id = own
        mine = self._kpis(self._overview(self.env(user=own)))
        self.assertAlmostEqual(mine["mrr"]["value"], 24.0, places=2, msg="A (×2); every other has a salesperson")
        employee = new_test_user(self.env, login="ov_employee", groups="base.group_user")
        with self.assertRaises(AccessError):
            self._overview(self.env(user=employee))
