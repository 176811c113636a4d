"""Upgrading to the revenue event log: no MRR while suspended, and the log seeded from today's
subscriptions."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    env["subscription.mrr.log"]._upgrade()
