from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Command

from .. import const


class SubscriptionEnrollWizard(models.TransientModel):
    _name = "subscription.enroll.wizard"
    _description = "Enroll customers in a subscription plan"

    partner_ids = fields.Many2many(
        "res.partner", string="Customers",
        default=lambda self: self._default_partner_ids(),
    )
    plan_id = fields.Many2one("subscription.plan", required=True)
    product_id = fields.Many2one(
        "product.product", required=True, domain=[("recurring_invoice", "=", True), ("sale_ok", "=", True)],
    )
    quantity = fields.Float(default=1.0, required=True, digits="Product Unit")
    date_start = fields.Date(required=True, default=fields.Date.context_today)
    user_id = fields.Many2one("res.users", string="Salesperson", default=lambda self: self.env.user,
                              domain="[('share', '=', False)]")
    start_now = fields.Boolean(
        string="Start the subscriptions", default=True,
        help="Start them at once (they are billed from the start date); otherwise they stay draft.",
    )
    skip_enrolled = fields.Boolean(
        string="Skip customers already on this plan", default=True,
    )

    @api.model
    def _default_partner_ids(self):
        if self.env.context.get("active_model") == "res.partner":
            return [Command.set(self.env.context.get("active_ids") or [])]
        return []

    def action_enroll(self):
        """Create one subscription per customer (batch create), then say what was done and open them.

        :return: a notification ("2 enrolled, 1 skipped: already on this plan (Ada Reader)") that
            then opens the subscriptions created
        :raise UserError: no customer, a quantity not above 0, or every customer already enrolled
        """
        self.ensure_one()
        if not self.partner_ids:
            raise UserError(self.env._("Select at least one customer to enroll."))
        if self.quantity <= 0:
            raise UserError(self.env._("The quantity must be positive."))
        partners = self.partner_ids
        skipped = partners.browse()
        if self.skip_enrolled:
            enrolled = self.env["subscription.subscription"].search([
                ("plan_id", "=", self.plan_id.id),
                ("commercial_partner_id", "in", partners.commercial_partner_id.ids),
                ("state", "in", ("draft", *const.RUNNING_STATES)),
            ]).commercial_partner_id
            skipped = partners.filtered(lambda p: p.commercial_partner_id in enrolled)
            partners -= skipped
        if not partners:
            raise UserError(self.env._("All the selected customers are already enrolled in %(plan)s.",
                                       plan=self.plan_id.name))
        company = self.plan_id.company_id or self.env.company
        subs = self.env["subscription.subscription"].create([
            {
                "partner_id": partner.id,
                "plan_id": self.plan_id.id,
                "company_id": company.id,
                "date_start": self.date_start,
                "user_id": self.user_id.id,
                "line_ids": [Command.create({"product_id": self.product_id.id, "quantity": self.quantity})],
            }
            for partner in partners
        ])
        if self.start_now:
            subs.action_start()
        action = self.env["ir.actions.act_window"]._for_xml_id("subscription_billing.subscription_action")
        action["domain"] = [("id", "in", subs.ids)]
        message = self.env._("%(count)s enrolled in %(plan)s", count=len(subs), plan=self.plan_id.name)
        if skipped:
            message = self.env._("%(message)s, %(skipped)s skipped: already on this plan (%(names)s)",
                                 message=message, skipped=len(skipped), names=", ".join(skipped.mapped("name")))
        no_email = subs.partner_id.filtered(lambda p: not p.email)
        if no_email:
            message = self.env._("%(message)s. Without an e-mail address, invoices cannot be e-mailed to %(names)s",
                                 message=message, names=", ".join(no_email.mapped("name")))
        return {"type": "ir.actions.client", "tag": "display_notification", "params": {
            "type": "warning" if skipped or no_email else "success",
            "title": self.env._("Enrolled"),
            "message": message + ".",
            "sticky": bool(skipped or no_email),
            "next": action,
        }}
