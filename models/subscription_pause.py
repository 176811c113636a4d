from collections import defaultdict
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.fields import Domain
from odoo.tools import format_date

from ..tools import process_in_locked_batches
from .subscription import _STATE_CHANGE


class SubscriptionSubscription(models.Model):
    """Pause and resume: a running subscription stops being invoiced for a while, and the time it
    was paused is given back (its next invoice date and its term end move by it)."""

    _inherit = "subscription.subscription"

    # === FIELDS === #

    date_paused = fields.Date(
        string="Paused since", copy=False, readonly=True,
        help="First day without service of the current pause.",
    )
    date_resume = fields.Date(
        string="Resumes on", copy=False, tracking=True,
        help="Day the billing day resumes this paused subscription; empty: it stays paused until resumed by "
        "hand. On resume, the next invoice date and the end of the term move by the time paused.",
    )

    # === CONSTRAINT METHODS === #

    @api.constrains("date_resume", "date_paused", "state")
    def _check_date_resume(self):
        for sub in self.filtered(lambda s: s.state == "paused" and not s.date_resume and s.plan_id.max_pause_days):
            raise ValidationError(self.env._(
                "%(sub)s: plan %(plan)s allows pauses of at most %(days)s days: give the resume date.",
                sub=sub.display_name, plan=sub.plan_id.name, days=sub.plan_id.max_pause_days))
        for sub in self.filtered("date_resume"):
            if sub.state != "paused":
                raise ValidationError(self.env._(
                    "%(sub)s is not paused: only a paused subscription has a resume date.", sub=sub.display_name))
            if sub.date_paused and sub.date_resume <= sub.date_paused:
                raise ValidationError(self.env._(
                    "%(sub)s: the resume date must be after the first day of the pause (%(date)s).",
                    sub=sub.display_name, date=format_date(self.env, sub.date_paused)))
            sub._check_date_in_range(sub.date_resume)
            sub._check_pause_length(sub.date_paused, sub.date_resume)

    # === CRUD METHODS === #

    def write(self, vals):
        """The pause's first day is the pause's own; a resume date set by hand is after today."""
        if self.env.context.get("subscription_state_change") is not _STATE_CHANGE:
            if "date_paused" in vals:
                raise UserError(self.env._("The first day of a pause is set by Pause, not by editing it."))
            if vals.get("date_resume"):
                try:
                    day = fields.Date.to_date(vals["date_resume"])
                except (TypeError, ValueError) as error:
                    raise UserError(self.env._("%(value)s is not a date.", value=vals["date_resume"])) from error
                late = self.filtered(lambda s: day <= s.company_id._subscription_today())
                if late:
                    raise UserError(self.env._("%(subs)s: the resume date must be after today.",
                                               subs=", ".join(late.mapped("display_name"))))
        return super().write(vals)

    # === ACTION METHODS === #

    def action_pause(self, date_resume=None):
        """Pause active subscriptions from today (each company's): nothing is invoiced while paused,
        autopay charges nothing, the MRR is 0 (logged as a contraction), and on resume the next
        invoice date and the end of the term move by the time paused. Periods that started before
        today and are not invoiced yet are invoiced first.

        :param date_resume: day the subscriptions resume by themselves (date or ``YYYY-MM-DD``),
            after today; default: none (resumed by hand), or the plan's maximum pause length
        :return: True
        :raise AccessError: the user may not change these subscriptions
        :raise UserError: a subscription is not active (a past-due one settles its invoices first),
            or ``date_resume`` is not a date after today
        :raise ValidationError: ``date_resume`` exceeds the plan's maximum pause or is years away
        """
        self.check_access("write")
        return self._pause(date_resume)

    def _pause(self, date_resume=None, author=None):
        """Pause these subscriptions (see ``action_pause``, which checks the user's rights first).

        :param author: the ``res.partner`` the pause is attributed to in the chatter (the customer,
            from the portal); default: the user
        """
        wrong = self.filtered(lambda s: s.state != "active")
        if wrong:
            message = self.env._("Only active subscriptions can be paused (%(subs)s).",
                                 subs=", ".join(f"{s.display_name}: {s._state_label()}" for s in wrong))
            if "past_due" in wrong.mapped("state"):
                message += " " + self.env._("A past-due subscription can be paused once its invoices are paid.")
            raise UserError(message)
        trials = self.filtered("is_trial")
        if trials:
            raise UserError(self.env._(
                "%(subs)s is in its free trial: there is nothing to pause yet. End the trial or cancel it instead.",
                subs=", ".join(trials.mapped("display_name"))))
        if date_resume:
            try:
                date_resume = fields.Date.to_date(date_resume)
            except (TypeError, ValueError) as error:
                raise UserError(self.env._("%(value)s is not a date.", value=date_resume)) from error
        groups = defaultdict(lambda: self.browse())
        for sub in self:
            today = sub.company_id._subscription_today()
            resume = date_resume
            if resume and resume <= today:
                raise UserError(self.env._("%(sub)s: the resume date must be after today.", sub=sub.display_name))
            if not resume and sub.plan_id.max_pause_days:
                resume = today + timedelta(days=sub.plan_id.max_pause_days)
            if resume:
                sub._check_date_in_range(resume)
            sub._check_pause_length(today, resume)
            groups[today, resume] |= sub
        # What was due before the pause is invoiced as the billing day would have.
        for (today, _resume), subs in groups.items():
            lagging = subs.filtered(lambda s, day=today: s.next_invoice_date and s.next_invoice_date < day)
            if lagging:
                lagging.sudo()._bill(until=today - timedelta(days=1))._subscription_notify_billed()
        who = author.name if author else self.env.user.name
        for (today, resume), subs in groups.items():
            if resume:
                message = self.env._("Paused by %(who)s; resumes on %(date)s.", who=who,
                                     date=format_date(self.env, resume))
            else:
                message = self.env._("Paused by %(who)s, with no resume date: it resumes when resumed by hand.",
                                     who=who)
            subs._update_state("paused", vals={"date_paused": today, "date_resume": resume})
            for sub in subs:
                sub.message_post(body=message, author_id=author.id if author else None,
                                 partner_ids=sub.user_id.partner_id.ids if author else None)
        return True

    def action_open_pause_wizard(self):
        """The *Pause* dialog: asks until when."""
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Pause"),
            "res_model": "subscription.pause.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"active_ids": self.ids, "active_model": self._name},
        }

    def action_resume(self):
        """Resume paused subscriptions today (each company's): the next invoice date and the end of
        the term (unless an end was scheduled) move by the time paused, the MRR comes back (logged
        as a reactivation) and the billing day invoices them again.

        :return: True
        :raise AccessError: the user may not change these subscriptions
        :raise UserError: a subscription is not paused
        """
        self.check_access("write")
        wrong = self.filtered(lambda s: s.state != "paused")
        if wrong:
            raise UserError(self.env._("Only paused subscriptions can be resumed (%(subs)s).",
                                       subs=", ".join(wrong.mapped("display_name"))))
        for sub in self:
            sub._resume(sub.company_id._subscription_today(),
                        self.env._("Resumed by %(user)s.", user=self.env.user.name))
        return True

    # === BUSINESS METHODS === #

    def _resume_by_customer(self, author):
        """The customer resumes this paused subscription from the portal, today.

        :param author: the ``res.partner`` it is attributed to
        :raise UserError: it is not paused
        """
        self.ensure_one()
        if self.state != "paused":
            raise UserError(self.env._("Only paused subscriptions can be resumed (%(subs)s).", subs=self.display_name))
        self._resume(self.company_id._subscription_today(), self.env._("Resumed by %(who)s.", who=author.name),
                     author=author)

    def _check_pause_length(self, first_day, date_resume):
        """:raise ValidationError: the pause from ``first_day`` to ``date_resume`` (excluded) is longer
        than the plan allows (a plan without a maximum pause allows any length)."""
        self.ensure_one()
        maximum = self.plan_id.max_pause_days
        if maximum and first_day and (not date_resume or (date_resume - first_day).days > maximum):
            raise ValidationError(self.env._(
                "%(sub)s: plan %(plan)s allows pauses of at most %(days)s days (resume on %(date)s at the latest).",
                sub=self.display_name, plan=self.plan_id.name, days=maximum,
                date=format_date(self.env, first_day + timedelta(days=maximum))))

    def _resume(self, day, message, author=None):
        """Resume this paused subscription on ``day``: its next invoice date moves by the days paused
        and billing counts its periods from there; the end of the term moves with the periods it had
        left (a scheduled end stays where it is)."""
        self.ensure_one()
        paused_days = (day - self.date_paused).days if self.date_paused else 0
        vals = {}
        if paused_days > 0 and self.next_invoice_date:
            old_next = self.next_invoice_date
            new_next = old_next + timedelta(days=paused_days)
            vals.update(next_invoice_date=new_next, date_anchor=new_next)
            if self.plan_id.term_value and self.date_end and not self.is_end_scheduled:
                vals["date_end"] = (self._shifted_term_end(old_next, new_next) if self.date_end >= old_next
                                    else self.date_end + timedelta(days=paused_days))
        if vals:
            self.with_context(subscription_term_write=True).write(vals)
        self._update_state("active", vals={"date_paused": False, "date_resume": False})
        moved = self.env._(" The next invoice is on %(date)s.", date=format_date(self.env, self.next_invoice_date)) \
            if vals else ""
        self.message_post(body=message + moved, author_id=author.id if author else None,
                          partner_ids=self.user_id.partner_id.ids if author else None)

    @api.model
    def _resume_due_domain(self):
        """Paused subscriptions whose resume date has come in their company's time zone."""
        return Domain("state", "=", "paused") & self.env["res.company"]._subscription_per_company(
            lambda _c, today: Domain("date_resume", "<=", today))

    def _resume_due_batch(self):
        """Resume this locked batch on each subscription's resume date (a late run still gives back
        exactly the days paused). One that cannot resume (e.g. its shifted dates are out of range)
        stays paused with the reason in its chatter and an activity, and the others go on.

        :return: the subscriptions left paused (not taken again today)
        """
        failed = self.browse()
        for sub in self:
            try:
                with self.env.cr.savepoint():
                    sub._resume(sub.date_resume, self.env._("Resumed on the planned day."))
            except (UserError, ValidationError) as error:
                failed |= sub
                sub.message_post(body=self.env._("Could not resume on the planned day: %(error)s",
                                                 error=error.args[0]))
                sub._schedule_salesperson_activity(self.env._("Resume failed: %(error)s", error=error.args[0]))
        return failed

    @api.model
    def _cron_resume_paused(self, batch_size):
        """The billing day's first step: resume the paused subscriptions whose day has come, in
        committed batches. :return: False when the worker's time is up"""
        return process_in_locked_batches(self, self._resume_due_domain(), "_resume_due_batch", batch_size)

    # === TOOLING === #

    def _pause_limits(self):
        """For the portal's date picker: ``(first, last)`` resume dates this subscription accepts if
        paused today (``last`` None without a maximum)."""
        self.ensure_one()
        today = self.company_id._subscription_today()
        maximum = self.plan_id.max_pause_days
        return today + timedelta(days=1), (today + timedelta(days=maximum) if maximum else None)
