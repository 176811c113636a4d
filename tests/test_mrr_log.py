import random

from odoo.exceptions import UserError
from odoo.fields import Command
from odoo.tests import freeze_time, tagged

from .autopay_common import AutopayCommon


@tagged("post_install", "-at_install")
class TestMrrLog(AutopayCommon):
    """One revenue event per change of a subscription's MRR, written where the change happens."""

    def _events(self, sub):
        return self.env["subscription.mrr.log"].search([("subscription_id", "=", sub.id)], order="id")

    def test_lifecycle_events_and_their_types(self):
        with freeze_time("2026-05-01"):
            sub = self._create_subscription(date_start="2026-05-01", start=False)
            self.assertFalse(self._events(sub), "a draft brings no revenue")
            sub.action_start()
            sub.line_ids.quantity = 2
            sub.line_ids.quantity = 1
            sub.action_suspend(reason="Paused by the customer")
            self.assertEqual(sub.recurring_monthly, 0.0, "suspended: no recurring revenue")
            sub.action_reactivate()
            sub.action_cancel()
        events = self._events(sub)
        self.assertEqual(events.mapped("event_type"),
                         ["new", "expansion", "contraction", "churn", "reactivation", "churn"])
        self.assertEqual(events.mapped("mrr_change"), [12.0, 12.0, -12.0, -12.0, 12.0, -12.0])
        self.assertEqual(events.filtered(lambda e: e.event_type == "churn").mapped("churn_kind"),
                         ["voluntary", "voluntary"])
        self.assertEqual(sum(events.mapped("mrr_change")), sub.recurring_monthly)
        self.assertEqual(events[0].partner_id, self.partner)
        self.assertEqual(events[0].plan_id, self.plan_monthly)

    def test_a_failed_autopay_suspension_is_involuntary_churn(self):
        sub = self._create_autopay_subscription("cancel", date_start="2026-05-01")
        self._bill_and_charge("2026-05-01")
        self.assertEqual(sub.state, "suspended")
        churn = self._events(sub).filtered(lambda e: e.event_type == "churn")
        self.assertEqual((churn.mrr_change, churn.churn_kind), (-12.0, "involuntary"))

    def test_reruns_of_the_scheduled_actions_add_nothing(self):
        sub = self._create_subscription(date_start="2026-05-01")
        with freeze_time("2026-05-01"):
            self._run_billing()
        count = len(self._events(sub))
        with freeze_time("2026-05-01"):
            self._run_billing()
            self._run_cron("subscription_billing.ir_cron_update_statuses")
            self.env["subscription.mrr.log"]._sync(sub)
        self.assertEqual(len(self._events(sub)), count)

    def test_the_log_adds_up_to_the_mrr_over_a_random_life(self):
        """Invariant over random sequences of lifecycle events: for every subscription, the sum of
        its log equals its current MRR."""
        rng = random.Random(20261129)
        subs = self._create_many_subscriptions(6, date_start="2026-05-01", start=False)
        quarterly = self.env["subscription.subscription"].create({
            "partner_id": self.partner.id, "plan_id": self.plan_quarterly.id, "date_start": "2026-05-01",
            "line_ids": [Command.create({"product_id": self.product.id, "quantity": 3.0})],
        })
        subs |= quarterly
        Log = self.env["subscription.mrr.log"]
        refused = 0
        for _step in range(60):
            sub = rng.choice(subs)
            action = rng.choice(["start", "qty", "add_line", "drop_line", "price", "suspend", "reactivate",
                                 "cancel", "renew", "pause", "resume"])
            try:
                with self.env.cr.savepoint():
                    if action == "start" and sub.state == "draft":
                        sub.action_start()
                    elif action == "qty" and sub.line_ids:
                        sub.line_ids[0].quantity = rng.randint(1, 5)
                    elif action == "add_line" and sub.state not in ("expired", "cancelled"):
                        sub.line_ids = [Command.create({"product_id": self.product.id, "quantity": 1.0})]
                    elif action == "drop_line" and len(sub.line_ids) > 1:
                        sub.line_ids[-1].unlink()
                    elif action == "price" and sub.line_ids:
                        sub.line_ids[0].price_unit = rng.choice([10.0, 12.0, 15.5])
                    elif action == "suspend" and sub.state in ("active", "past_due"):
                        sub.action_suspend(reason="random")
                    elif action == "reactivate" and sub.state in ("past_due", "suspended"):
                        sub.action_reactivate()
                    elif action == "pause" and sub.state == "active":
                        sub.action_pause()
                    elif action == "resume" and sub.state == "paused":
                        sub.action_resume()
                    elif action == "cancel" and sub.state not in ("expired", "cancelled"):
                        sub.action_cancel()
            except UserError:  # an action the lifecycle refuses (e.g. dropping the last line) changes nothing
                refused += 1
            self.assertFalse(Log._check_invariant(subs), f"after {action} on {sub.name}")
        self.assertTrue(Log.search_count([("subscription_id", "in", subs.ids)]))

    def test_existing_databases_are_seeded(self):
        running = self._create_subscription(date_start="2026-03-01")
        ended = self._create_subscription(partner=self.partner_b, date_start="2026-01-01")
        ended.action_cancel()
        Log = self.env["subscription.mrr.log"]
        Log.search([("subscription_id", "in", (running | ended).ids)]).unlink()
        Log._seed()
        self.assertEqual(self._events(running).mapped("event_type"), ["new"])
        self.assertEqual(self._events(running).event_date.isoformat(), "2026-03-01")
        self.assertEqual(self._events(ended).mapped("event_type"), ["new", "churn"])
        self.assertFalse(Log._check_invariant(running | ended))
        Log._seed()
        self.assertEqual(len(self._events(running) | self._events(ended)), 3, "seeding twice adds nothing")

    def test_upgrading_zeroes_the_mrr_of_suspended_subscriptions_then_seeds(self):
        sub = self._create_subscription(date_start="2026-03-01")
        sub.action_suspend(reason="pause")
        Log = self.env["subscription.mrr.log"]
        Log.search([("subscription_id", "=", sub.id)]).unlink()
        # As a database from before this version holds it: MRR counted while suspended.
        self.env.flush_all()
        self.env.cr.execute("UPDATE subscription_subscription SET recurring_monthly = 12 WHERE id = %s", [sub.id])
        self.env.invalidate_all()
        Log._upgrade()
        self.assertEqual(sub.recurring_monthly, 0.0)
        self.assertEqual(self._events(sub).mapped("event_type"), ["new", "churn"])
        self.assertEqual(self._events(sub).mapped("churn_kind"), [False, "voluntary"])
        self.assertFalse(Log._check_invariant(sub))
