from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from .. import const
from .common import SubscriptionCommon

STATES = [state for state, _label in const.SUBSCRIPTION_STATES]

# The README's state diagram, written out again by hand: (from, to) pairs that are allowed.
ALLOWED = {
    ("draft", "active"), ("draft", "cancelled"),
    ("active", "past_due"), ("active", "suspended"), ("active", "expired"), ("active", "cancelled"),
    ("past_due", "active"), ("past_due", "suspended"), ("past_due", "expired"), ("past_due", "cancelled"),
    ("suspended", "active"), ("suspended", "past_due"), ("suspended", "expired"), ("suspended", "cancelled"),
    ("active", "paused"), ("paused", "active"), ("paused", "cancelled"),
    ("expired", "active"),
}


@tagged("post_install", "-at_install")
class TestStateTransitions(SubscriptionCommon):
    """One way to change a subscription's state, exactly as the state diagram says."""

    def _in_state(self, state):
        sub = self._create_subscription(start=state != "draft")
        if state not in ("draft", "active"):
            sub._update_state(state)  # every state is one move away from active
        self.assertEqual(sub.state, state)
        return sub

    def test_every_transition_is_allowed_or_refused_as_the_diagram_says(self):
        for source in STATES:
            for target in STATES:
                with self.subTest(source=source, target=target):
                    sub = self._in_state(source)
                    if source == target:
                        self.assertFalse(sub._update_state(target), "already there: nothing changes")
                    elif (source, target) in ALLOWED:
                        self.assertEqual(sub._update_state(target), sub)
                        self.assertEqual(sub.state, target)
                    else:
                        with self.assertRaisesRegex(UserError, "cannot become"):
                            sub._update_state(target)
                        self.assertEqual(sub.state, source, "a refused move changes nothing")

    def test_the_table_in_const_is_the_diagram(self):
        table = {(source, target) for target, sources in const.STATE_TRANSITIONS.items() for source in sources}
        self.assertEqual(table, ALLOWED)

    def test_a_move_is_tracked_and_explained_once(self):
        sub = self._in_state("active")
        sub.with_context(tracking_disable=False)._update_state("suspended", message="Customer asked for a break.")
        sub.with_context(tracking_disable=False)._update_state("suspended", message="Customer asked for a break.")
        bodies = [str(body) for body in sub.message_ids.mapped("body")]
        self.assertEqual(sum("Customer asked for a break." in body for body in bodies), 1,
                         "moving to the state it is already in posts nothing")

    def test_state_cannot_be_written_directly(self):
        sub = self._in_state("active")
        sub._action_close("cancelled", self.env.ref("subscription_billing.close_reason_cancelled"))
        for user in (self.env.user, self.sales_user):
            for context in ({}, {"subscription_state_change": True}):  # a context sent over RPC is JSON
                with self.subTest(user=user.login, context=context), \
                        self.assertRaisesRegex(UserError, "changes only through its actions"):
                    sub.with_user(user).with_context(**context).write({"state": "active"})
        self.assertEqual(sub.state, "cancelled")
        sub.write({"state": "cancelled", "close_note": "same state, other field"})  # not a change: accepted
        self.assertEqual(sub.close_note, "same state, other field")

    def test_public_actions_refuse_what_the_diagram_refuses(self):
        draft = self._create_subscription(start=False)
        with self.assertRaisesRegex(UserError, "Only active or past due"):
            draft.action_suspend()
        with self.assertRaisesRegex(UserError, "Only past due or suspended"):
            draft.action_reactivate()
        active = self._in_state("active")
        with self.assertRaisesRegex(UserError, "Only draft"):
            active.action_start()
        active.action_cancel()
        for action in ("action_suspend", "action_reactivate", "action_start", "action_cancel"):
            with self.subTest(action=action), self.assertRaises(UserError):
                getattr(active, action)()
        self.assertEqual(active.state, "cancelled")

    def test_staff_actions_say_who_did_it(self):
        sub = self._in_state("active")
        sub.with_user(self.sales_user).action_suspend()
        sub.with_user(self.sales_user).action_reactivate()
        bodies = " ".join(str(body) for body in sub.message_ids.mapped("body"))
        self.assertIn("Suspended by Sam Sales", bodies)
        self.assertIn("Reactivated by Sam Sales", bodies)

    def test_an_employee_without_subscription_rights_cannot_move_a_state(self):
        employee = new_test_user(self.env, login="sub_transition_employee", groups="base.group_user")
        sub = self._in_state("active")
        with self.assertRaises(AccessError):
            sub.with_user(employee).action_suspend()
        self.assertEqual(sub.state, "active")
