from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import format_date

from .. import const


class CrmLead(models.Model):
    """Renewal opportunities: one per subscription term that does not renew by itself. Won, the
    subscription renews; lost, it ends at its term end; both however the lead gets there (the
    buttons, the kanban, the lost-reason dialog)."""

    _inherit = "crm.lead"

    subscription_id = fields.Many2one(
        "subscription.subscription", string="Renewal of", index="btree_not_null", ondelete="set null",
        readonly=True, copy=False, help="The subscription this opportunity renews.")
    subscription_term_end = fields.Date(
        string="Term ending", readonly=True, copy=False,
        help="End of the subscription term this renewal is for: one opportunity per term.")

    _subscription_term_unique = models.UniqueIndex(
        "(subscription_id, subscription_term_end) WHERE subscription_id IS NOT NULL",
        "A subscription term has one renewal opportunity.",
    )

    # === CRUD METHODS === #

    def _handle_won_lost(self, old_status_by_lead, new_status_by_lead):
        """Renewal opportunities that are won renew their subscription; lost, it ends at the term
        end; a lost one restored takes that end back."""
        res = super()._handle_won_lost(old_status_by_lead, new_status_by_lead)
        if self.env.context.get("subscription_closing") or self.env.context.get("subscription_renewed"):
            return res
        renewals = self.filtered("subscription_id")
        for lead in renewals:
            old = old_status_by_lead.get(lead.id, {})
            new = new_status_by_lead.get(lead.id, {})
            if new.get("is_won") and not old.get("is_won"):
                lead._subscription_renewal_won()
            elif new.get("is_lost") and not old.get("is_lost"):
                lead._subscription_renewal_lost()
            elif old.get("is_lost") and not new.get("is_lost"):
                lead._subscription_renewal_restored()
        return res

    def write(self, vals):
        res = super().write(vals)
        if "lost_reason_id" in vals and not self.env.context.get("subscription_closing"):
            # The lead can be lost before its reason is written (archiving reaches "lost" when the
            # probability is already 0), and a reason can be edited afterwards: the close reason
            # follows it (``_subscription_renewal_lost`` does nothing when it already matches).
            for lead in self.filtered(lambda l: l.subscription_id and l.won_status == "lost"):
                lead._subscription_renewal_lost()
        return res

    # === ACTION METHODS === #

    def action_set_won_rainbowman(self):
        """*Won* on a renewal opportunity opens the renewal dialog (new plan, prices or quantities
        for the next term, or the current ones as they are); it is won when the dialog is confirmed."""
        if len(self) == 1 and self.subscription_id and self.won_status != "won" \
                and not self.env.context.get("subscription_renewed"):
            self._subscription_renewal_prepare(check_only=True)
            return self.subscription_id.with_context(
                subscription_renewal_lead_id=self.id).action_open_renew_wizard()
        return super().action_set_won_rainbowman()

    def action_view_subscription(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": "subscription.subscription",
            "res_id": self.subscription_id.id,
            "view_mode": "form",
            "views": [(False, "form")],
        }

    # === BUSINESS METHODS === #

    def _subscription_renewal_prepare(self, check_only=False, allow_renewed=False):
        """Before renewing from this opportunity: an end scheduled at its term end (when it was
        lost earlier) is lifted.

        :param bool check_only: only check, change nothing
        :param bool allow_renewed: a subscription already renewed past this term is fine (the
            opportunity is then only marked won)
        :raise UserError: the subscription was cancelled, or already renewed past this term
        """
        self.ensure_one()
        sub = self.subscription_id.sudo()
        if sub.state == "cancelled":
            raise UserError(self.env._(
                "%(sub)s is cancelled: it cannot be renewed from this opportunity. Start a new subscription.",
                sub=sub.display_name))
        if not allow_renewed and sub.state != "expired" and sub.date_end and self.subscription_term_end \
                and sub.date_end > self.subscription_term_end and not sub.is_end_scheduled:
            raise UserError(self.env._(
                "%(sub)s was already renewed until %(date)s: mark this opportunity won from its stage, or open the "
                "subscription to change its next term.",
                sub=sub.display_name, date=format_date(self.env, sub.date_end)))
        if check_only:
            return
        if sub.state in const.RUNNING_STATES and sub.is_end_scheduled and sub.date_end == self.subscription_term_end:
            sub.write({"date_end": False, "is_end_scheduled": False, "close_reason_id": False})

    def _subscription_renewal_won(self):
        """Won: the subscription renews with its current terms for the next term (an end scheduled
        when the opportunity was lost earlier is lifted first); an expired one restarts today.

        :raise UserError: the subscription was cancelled (start a new one instead)
        """
        self.ensure_one()
        sub = self.subscription_id.sudo()
        self._subscription_renewal_prepare(allow_renewed=True)
        if sub.state == "expired" or (sub.date_end and sub.date_end <= self.subscription_term_end):
            sub.action_renew()
        sub.message_post(body=self.env._("Renewal won (%(lead)s).", lead=self._get_html_link()))

    def _subscription_renewal_lost(self):
        """Lost: the subscription ends at the end of the term (it runs until then), with the close
        reason mapped to the lost reason (default: customer request)."""
        self.ensure_one()
        sub = self.subscription_id.sudo()
        if sub.state not in const.RUNNING_STATES or not self.subscription_term_end:
            return
        reason = sub.env["subscription.close.reason"].search(
            [("lost_reason_id", "=", self.lost_reason_id.id)], limit=1) if self.lost_reason_id else None
        reason = reason or self.env.ref("subscription_billing.close_reason_customer_request")
        if sub.is_end_scheduled and sub.date_end == self.subscription_term_end and sub.close_reason_id == reason:
            return
        note = self.env._("Renewal lost: %(reason)s", reason=self.lost_reason_id.name) if self.lost_reason_id \
            else self.env._("Renewal lost.")
        sub._schedule_end(min(sub.date_end or self.subscription_term_end, self.subscription_term_end), reason,
                          note=note)

    def _subscription_renewal_restored(self):
        """A lost renewal restored: the end it scheduled is lifted (the term end comes back)."""
        self.ensure_one()
        sub = self.subscription_id.sudo()
        if sub.state in const.RUNNING_STATES and sub.is_end_scheduled and sub.date_end == self.subscription_term_end:
            sub.write({"date_end": False, "is_end_scheduled": False, "close_reason_id": False, "close_note": False})
            sub.message_post(body=self.env._(
                "Renewal opportunity restored: the end on %(date)s is lifted.",
                date=format_date(self.env, self.subscription_term_end)))

    @api.model
    def _subscription_renewal_tag(self):
        return self.env.ref("subscription_billing.crm_tag_renewal", raise_if_not_found=False)
