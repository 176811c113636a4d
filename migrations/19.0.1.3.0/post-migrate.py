"""Lifecycle: the close reasons customers may pick when they stop the renewal, and the CRM lost
reason mapped to "Too expensive" (their data records are not updated on upgrade)."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    for xmlid in ("close_reason_customer_request", "close_reason_too_expensive", "close_reason_other"):
        reason = env.ref(f"subscription_billing.{xmlid}", raise_if_not_found=False)
        if reason:
            reason.customer_selectable = True
    too_expensive = env.ref("subscription_billing.close_reason_too_expensive", raise_if_not_found=False)
    lost = env.ref("crm.lost_reason_1", raise_if_not_found=False)
    if too_expensive and lost and not too_expensive.lost_reason_id:
        too_expensive.lost_reason_id = lost
