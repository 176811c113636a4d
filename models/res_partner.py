from markupsafe import Markup

from odoo import api, fields, models
from odoo.exceptions import UserError

from .. import const

# Best standing first: a partner's status is the best one among its subscriptions.
STATUS_RANK = ["active", "past_due", "paused", "suspended", "expired"]
STATE_TO_STATUS = {
    "active": "active",
    "past_due": "past_due",
    "suspended": "suspended",
    "paused": "paused",
    "expired": "expired",
    "cancelled": "expired",
}


class ResPartner(models.Model):
    _inherit = "res.partner"

    # === FIELDS === #

    subscription_ids = fields.One2many(
        "subscription.subscription", compute="_compute_subscription_ids", string="Subscriptions",
    )
    subscription_count = fields.Integer(compute="_compute_subscription_ids", string="Subscription count")
    subscription_summary = fields.Html(
        compute="_compute_subscription_ids", sanitize=False, string="Subscriptions at a glance",
        help="Each subscription's state, plan and next invoice, for every employee (support), without amounts.",
    )
    subscription_status = fields.Selection(
        [("none", "No subscription"), ("active", "Active"), ("past_due", "Past due"),
         ("paused", "Paused"), ("suspended", "Suspended"), ("expired", "Expired")],
        compute="_compute_subscription_ids", search="_search_subscription_status",
        string="Subscription status",
        help="The best standing among the subscriptions of this customer's company: "
        "active customers are eligible for support.",
    )

    # === COMPUTE METHODS === #

    @api.model
    def _subscription_status_by_commercial(self, commercial_ids=None):
        """{commercial partner id: status} for partners that have subscriptions."""
        domain = [("state", "!=", "draft")]
        if commercial_ids is not None:
            domain.append(("commercial_partner_id", "in", list(commercial_ids)))
        groups = self.env["subscription.subscription"].sudo()._read_group(
            domain, ["commercial_partner_id", "state"], ["__count"],
        )
        result = {}
        for partner, state, _count in groups:
            status = STATE_TO_STATUS[state]
            current = result.get(partner.id)
            if current is None or STATUS_RANK.index(status) < STATUS_RANK.index(current):
                result[partner.id] = status
        return result

    @api.depends_context("uid")
    def _compute_subscription_ids(self):
        """The subscriptions of each contact's commercial entity: the records for who may read them,
        and for every employee the count, the best standing and a summary without amounts."""
        commercial = self.commercial_partner_id
        Subscription = self.env["subscription.subscription"]
        all_subs = Subscription.sudo().search([("commercial_partner_id", "in", commercial.ids)],
                                              order="state, next_invoice_date, id")
        readable = all_subs.with_env(self.env)._filtered_access("read") if Subscription.has_access("read") \
            else Subscription
        status = self._subscription_status_by_commercial(commercial.ids)
        states = dict(Subscription._fields["state"]._description_selection(self.env))
        # The standing of those in trouble: since when, why, what next (amounts for those who read them).
        troubled = all_subs.filtered(lambda s: s.state in const.RUNNING_STATES)
        collection = troubled._collection_data()
        with_amounts = Subscription.has_access("read") and self.env.user.has_groups(
            "subscription_billing.group_subscription_viewer,subscription_billing.group_subscription_user")
        health = {}
        for sub in troubled:
            summary, step = sub._health_texts(collection.get(sub) or {}, with_amounts=with_amounts)
            if summary:
                css = ("text-danger" if sub.state == "suspended" or (collection.get(sub) or {}).get("failed")
                       else "text-warning")
                health[sub] = Markup("<br/><span class='%s'>%s</span> <span class='text-muted'>— %s</span>") % (
                    css, summary, self.env._("next step: %(step)s", step=step[:1].lower() + step[1:]))
        for partner in self:
            mine = all_subs.filtered(lambda s, p=partner: s.commercial_partner_id == p.commercial_partner_id)
            partner.subscription_ids = [fields.Command.set((readable & mine).ids)]
            partner.subscription_count = len(mine)
            partner.subscription_status = status.get(partner.commercial_partner_id.id, "none")
            partner.subscription_summary = Markup("<ul class='list-unstyled mb-0'>%s</ul>") % Markup("").join(
                Markup("<li class='mb-1'><strong>%s</strong> — %s — %s%s%s</li>") % (
                    sub.name, sub.plan_id.name, states.get(sub.state, sub.state), sub._summary_next_step(),
                    health.get(sub, ""),
                ) for sub in mine
            ) if mine else False

    def _search_subscription_status(self, operator, value):
        if operator in ("=", "!="):
            values = {value}
        elif operator in ("in", "not in"):
            values = set(value)
        else:
            raise UserError(self.env._("Unsupported search on subscription status."))
        status = self._subscription_status_by_commercial()
        matching = [pid for pid, st in status.items() if st in values]
        if "none" in values:
            domain = ["|", ("commercial_partner_id", "in", matching),
                      ("commercial_partner_id", "not in", list(status))]
        else:
            domain = [("commercial_partner_id", "in", matching)]
        if operator in ("!=", "not in"):
            domain = ["!", *domain]
        return domain

    # === ACTION METHODS === #

    def action_view_subscriptions(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("subscription_billing.subscription_action")
        action["domain"] = [("commercial_partner_id", "=", self.commercial_partner_id.id)]
        action["context"] = {"default_partner_id": self.id}
        return action
