from odoo import api, fields, models


class SubscriptionStripeEvent(models.Model):
    """Stripe webhook events already handled, so that a replayed event changes nothing."""

    _name = "subscription.stripe.event"
    _description = "Handled Stripe event"
    _log_access = False

    # === FIELDS === #

    event_id = fields.Char(required=True, readonly=True)
    event_type = fields.Char(readonly=True)
    received_at = fields.Datetime(default=fields.Datetime.now, readonly=True)

    _event_id_uniq = models.UniqueIndex("(event_id)", "This Stripe event was already handled.")

    # === BUSINESS METHODS === #

    @api.model
    def _record_event(self, event_id, event_type):
        """Record the event; False when it was recorded before (a replay)."""
        self.env.cr.execute(
            "INSERT INTO subscription_stripe_event (event_id, event_type, received_at)"
            " VALUES (%s, %s, NOW() AT TIME ZONE 'UTC') ON CONFLICT (event_id) DO NOTHING RETURNING id",
            [event_id, event_type],
        )
        return bool(self.env.cr.fetchone())

    @api.autovacuum
    def _gc_old_events(self):
        """Stripe stops resending an event after 3 days; keep a month of history."""
        self.env.cr.execute("DELETE FROM subscription_stripe_event WHERE received_at < NOW() - INTERVAL '30 days'")
