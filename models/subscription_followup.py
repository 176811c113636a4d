"""Working the lists: follow-up activities and the right reminder e-mail for selected subscriptions
(overdue, payment failed, expiring), from the subscriptions' list or the Overview's drill-downs."""

from odoo import fields, models

from ..tools.mail import has_email_address, queue_mails

FOLLOW_UP_ACTIVITY = "subscription_billing.mail_activity_type_follow_up"


class SubscriptionSubscription(models.Model):
    _inherit = "subscription.subscription"

    # === ACTION METHODS === #

    def action_schedule_follow_up(self):
        """Schedule a follow-up activity for each selected subscription's salesperson (the
        administrator when there is none), saying what to follow up (payment failed, overdue,
        suspended, expiring). Never a second one while one is open on the same subscription.

        :return: a notification: how many were scheduled and how many already had one open
        :raise AccessError: the user may not edit these subscriptions
        """
        self.check_access("write")
        subs = self.sudo()
        activity_type = self.env.ref(FOLLOW_UP_ACTIVITY)
        model = self.env["ir.model"]._get_id(self._name)
        already = {sub_id for [sub_id] in self.env["mail.activity"].sudo()._read_group(
            [("res_model", "=", self._name), ("res_id", "in", subs.ids),
             ("activity_type_id", "=", activity_type.id)], ["res_id"])}
        todo = subs.filtered(lambda s: s.id not in already)
        admin = self.env.ref("base.user_admin")
        collection = todo._collection_data()
        deadline = fields.Date.context_today(self)
        self.env["mail.activity"].sudo().create([{
            "res_model_id": model, "res_id": sub.id, "activity_type_id": activity_type.id,
            "summary": sub._follow_up_summary(collection.get(sub) or {}),
            "note": sub._health_texts(collection.get(sub) or {})[1] or False,
            "user_id": (sub.user_id or admin).id, "date_deadline": deadline,
        } for sub in todo])
        message = self.env._("%(count)s already had an open follow-up: %(subs)s.", count=len(subs - todo),
                             subs=", ".join((subs - todo).mapped("name"))) if subs - todo else ""
        return self._notification(self.env._("%(count)s follow-up(s) scheduled", count=len(todo)), message,
                                  "warning" if subs - todo else "success")

    def action_send_follow_up_reminder(self):
        """E-mail each selected subscription's customer the reminder its situation calls for, through
        the existing templates, one batch per template: a failed autopay payment (*payment failed*,
        per invoice), an overdue invoice (*payment reminder*), a term ending without renewal
        (*renewal reminder*). Each sending is noted in the chatter.

        :return: a notification: how many were e-mailed, and which were skipped and why (nothing to
            remind, no e-mail address)
        :raise AccessError: the user may not edit these subscriptions
        """
        self.check_access("write")
        subs = self.sudo()
        no_email = subs.filtered(lambda s: not has_email_address(s))
        failed_charges = self.env["subscription.charge"].sudo().search([
            ("subscription_id", "in", (subs - no_email).ids), ("state", "=", "failed"),
            ("is_latest_attempt", "=", True),
            ("invoice_id.payment_state", "not in", ("paid", "in_payment", "reversed")),
        ])
        failed = failed_charges.subscription_id
        overdue = (subs - no_email - failed).filtered(lambda s: s.overdue_invoice_ids)
        expiring = (subs - no_email - failed - overdue).filtered("is_expiring")
        nothing = subs - no_email - failed - overdue - expiring
        mailed = queue_mails(self.env.ref("subscription_billing.mail_template_payment_failed"),
                             failed_charges).subscription_id
        mailed |= overdue._send_template("subscription_billing.mail_template_payment_reminder")
        renewal = expiring._send_template("subscription_billing.mail_template_renewal_reminder")
        for sub in renewal:  # the term's reminder is sent: the scheduled one does not repeat it
            sub.renewal_reminded_for = sub.date_end
        mailed |= renewal
        kinds = {**dict.fromkeys(failed.ids, self.env._("payment failed")),
                 **dict.fromkeys(overdue.ids, self.env._("overdue invoice")),
                 **dict.fromkeys(expiring.ids, self.env._("renewal"))}
        for sub in mailed:
            sub.message_post(body=self.env._("Reminder e-mailed by %(user)s (%(kind)s).", user=self.env.user.name,
                                             kind=kinds[sub.id]))
        skipped = []
        if nothing:
            skipped.append(self.env._("nothing to remind: %(subs)s", subs=", ".join(nothing.mapped("name"))))
        if no_email:
            skipped.append(self.env._("no e-mail address: %(subs)s", subs=", ".join(no_email.mapped("name"))))
        if not_queued := (failed | overdue | expiring) - mailed:
            skipped.append(self.env._("e-mail could not be queued: %(subs)s",
                                      subs=", ".join(not_queued.mapped("name"))))
        return self._notification(
            self.env._("%(count)s reminder(s) e-mailed", count=len(mailed)),
            self.env._("Skipped — %(why)s", why="; ".join(skipped)) if skipped else "",
            "warning" if skipped else "success")

    # === BUSINESS METHODS === #

    def _follow_up_summary(self, values):
        """One line saying why this subscription needs following up."""
        self.ensure_one()
        if self.state == "suspended":
            return self.env._("Suspended: win the customer back")
        if values.get("failed"):
            return self.env._("Autopay payment failed: help the customer pay")
        if values.get("overdue_since") or self.state == "past_due":
            return self.env._("Overdue invoice: ask for payment")
        if self.is_expiring:
            return self.env._("Term ends soon: propose the renewal")
        return self.env._("Follow up the subscription")

    def _notification(self, title, message, kind):
        return {"type": "ir.actions.client", "tag": "display_notification",
                "params": {"type": kind, "title": title, "message": message, "sticky": False}}
