"""Upgrading to the revenue event log: seed it from today's subscriptions."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    env["subscription.mrr.log"]._seed()
