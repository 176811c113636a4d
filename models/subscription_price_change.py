from collections import defaultdict
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Domain
from odoo.tools import format_amount, format_date

from .. import const
from ..tools import log_notes, not_mailed_reason, process_in_locked_batches


class SubscriptionPriceChange(models.Model):
    """A new unit price for one line of a running subscription, from a day on (the start of its
    next period or of its next term): scheduled by the bulk re-pricing action, announced to the
    customer a number of days before if asked, and applied by the billing day before it bills
    the period that starts that day."""

    _name = "subscription.price.change"
    _description = "Scheduled subscription price change"
    _order = "date_effective, id"
    _check_company_auto = True

    # === FIELDS === #

    subscription_id = fields.Many2one("subscription.subscription", required=True, index=True, ondelete="cascade",
                                      readonly=True)
    line_id = fields.Many2one("subscription.line", required=True, index=True, ondelete="cascade", readonly=True)
    product_id = fields.Many2one(related="line_id.product_id")
    partner_id = fields.Many2one(related="subscription_id.partner_id", string="Customer")
    company_id = fields.Many2one(related="subscription_id.company_id", store=True, index=True)
    currency_id = fields.Many2one(related="subscription_id.currency_id")
    price_before = fields.Float(string="Price before", digits="Product Price", readonly=True)
    price_after = fields.Float(string="New price", digits="Product Price", readonly=True)
    date_effective = fields.Date(string="From", required=True, index=True, readonly=True,
                                 help="First day of the period billed at the new price.")
    notice_days = fields.Integer(
        string="Notice (days)", readonly=True,
        help="The customer is e-mailed this many days before the change; 0: no notice.")
    date_notice = fields.Date(compute="_compute_date_notice", store=True, index=True, string="Notice on")
    notice_sent = fields.Boolean(readonly=True, copy=False)
    state = fields.Selection(
        [("scheduled", "Scheduled"), ("applied", "Applied"), ("cancelled", "Cancelled")],
        default="scheduled", required=True, readonly=True, index=True)

    # === COMPUTE METHODS === #

    @api.depends("date_effective", "notice_days")
    def _compute_date_notice(self):
        for change in self:
            change.date_notice = (change.date_effective - timedelta(days=change.notice_days)
                                  if change.notice_days and change.date_effective else False)

    # === ACTION METHODS === #

    def action_cancel(self):
        """Cancel scheduled changes (the line keeps its price).

        :raise UserError: a change was already applied
        """
        if self.filtered(lambda c: c.state == "applied"):
            raise UserError(self.env._("An applied price change cannot be cancelled: change the price again."))
        self.write({"state": "cancelled"})
        return True

    # === BUSINESS METHODS === #

    @api.model
    def _apply_due_domain(self):
        return Domain("state", "=", "scheduled") & self.env["res.company"]._subscription_per_company(
            lambda _c, today: Domain("date_effective", "<=", today))

    @api.model
    def _notice_due_domain(self):
        due = self.env["res.company"]._subscription_per_company(lambda _c, today: Domain("date_notice", "<=", today))
        return (Domain("state", "=", "scheduled") & Domain("notice_sent", "=", False)
                & Domain("date_notice", "!=", False) & due)

    @api.model
    def _cron_apply(self, batch_size):
        """The billing day's step before billing: apply the changes whose day has come.

        :return: False when the worker's time is up"""
        return process_in_locked_batches(self, self._apply_due_domain(), "_apply", batch_size)

    def _apply(self):
        """Write the new prices on their lines (one write per price), say so in each subscription's
        chatter (internal notes logged in one create, ``tools.log_notes``), and log the MRR change."""
        live = self.filtered(lambda c: c.state == "scheduled" and c.subscription_id.state in const.RUNNING_STATES)
        (self - live).write({"state": "cancelled"})
        by_price = defaultdict(lambda: self.env["subscription.line"])
        for change in live:
            by_price[change.price_after] |= change.line_id
        for price, lines in by_price.items():
            lines.write({"price_unit": price})
        live.write({"state": "applied"})
        log_notes((sub, self.env._("New prices from %(date)s: %(changes)s.", date=format_date(
            self.env, changes[0].date_effective), changes=", ".join(change._label() for change in changes)))
            for sub, changes in live.grouped("subscription_id").items())

    def _send_notices(self):
        """One e-mail per subscription listing its changes (amounts per period before and after)."""
        todo = self.filtered(lambda c: c.state == "scheduled" and not c.notice_sent)
        todo.write({"notice_sent": True})
        subs = todo.subscription_id
        mailed = subs._send_template("subscription_billing.mail_template_price_change")
        notes = []
        for sub, changes in todo.grouped("subscription_id").items():
            labels = ", ".join(change._label() for change in changes)
            date = format_date(self.env, changes[0].date_effective)
            notes.append((sub, self.env._(
                "Price change notice e-mailed: %(changes)s from %(date)s.", changes=labels, date=date,
            ) if sub in mailed else self.env._(
                "No price change notice was e-mailed (%(why)s): %(changes)s from %(date)s.",
                why=not_mailed_reason(sub), changes=labels, date=date)))
        log_notes(notes)

    def _label(self):
        self.ensure_one()
        currency = self.currency_id
        return self.env._("%(product)s %(before)s → %(after)s", product=self.product_id.display_name,
                          before=format_amount(self.env, self.price_before, currency),
                          after=format_amount(self.env, self.price_after, currency))


class SubscriptionSubscription(models.Model):
    _inherit = "subscription.subscription"

    price_change_ids = fields.One2many("subscription.price.change", "subscription_id", string="Price changes",
                                       groups="subscription_billing.group_subscription_viewer,"
                                              "subscription_billing.group_subscription_user")

    @api.model
    def _price_notice_domain(self):
        """Subscriptions with a price change to announce today."""
        return Domain("price_change_ids", "any", self.env["subscription.price.change"]._notice_due_domain())

    def _send_price_change_notices(self):
        """Status run job: e-mail this batch's customers their price change notices."""
        changes = self.env["subscription.price.change"].search(
            Domain("subscription_id", "in", self.ids) & self.env["subscription.price.change"]._notice_due_domain())
        changes._send_notices()

    @api.model
    def _status_jobs(self):
        """Price change notices go out with the day's other customer e-mails."""
        return super()._status_jobs() + [("_price_notice_domain", "_send_price_change_notices", "id")]

    def _price_change_amounts(self, changes=None):
        """The amounts per period before and after the scheduled changes (default: all scheduled):
        ``{"untaxed_before", "untaxed_after", "total_before", "total_after"}`` in the subscription
        currency, taxes computed as invoices do."""
        self.ensure_one()
        changes = changes if changes is not None else self.price_change_ids.filtered(lambda c: c.state == "scheduled")
        new_price = {change.line_id: change.price_after for change in changes}
        AccountTax = self.env["account.tax"]
        company = self.company_id
        before, after = [], []
        for line in self.line_ids:
            before.append(line._prepare_base_line_for_taxes_computation())
            after.append(line._prepare_base_line_for_taxes_computation(price_unit=new_price.get(line, line.price_unit)))
        result = {}
        for key, base_lines in (("before", before), ("after", after)):
            AccountTax._add_tax_details_in_base_lines(base_lines, company)
            AccountTax._round_base_lines_tax_details(base_lines, company)
            totals = AccountTax._get_tax_totals_summary(
                base_lines=base_lines, currency=self.currency_id or company.currency_id, company=company)
            result[f"untaxed_{key}"] = totals["base_amount_currency"]
            result[f"total_{key}"] = totals["total_amount_currency"]
        return result

    def _price_change_notice_values(self):
        """For the notice e-mail: this subscription's scheduled changes, their first day and the
        amounts per period before and after (see ``_price_change_amounts``)."""
        self.ensure_one()
        changes = self.sudo().price_change_ids.filtered(lambda c: c.state == "scheduled")
        return {"changes": changes, "date": changes[:1].date_effective, **self._price_change_amounts(changes)}
