from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from .. import const


class SubscriptionSubscription(models.Model):
    """Autopay enrollment: the saved payment method, its checks, the setup link."""

    _inherit = "subscription.subscription"

    # === FIELDS === #

    payment_token_id = fields.Many2one(
        "payment.token", string="Autopay payment method", tracking=True, copy=False,
        domain="[('partner_id', 'child_of', commercial_partner_id)]", check_company=True,
        help="Saved payment method charged automatically for each invoice.",
        groups=const.SUBSCRIPTION_DETAIL_GROUPS,
    )
    autopay_requested = fields.Boolean(
        string="Awaiting payment method", copy=False, tracking=True,
        help="An autopay setup link was sent; the customer has not saved a payment method yet.",
    )

    # === CONSTRAINT METHODS === #

    @api.constrains("payment_token_id", "partner_id", "currency_id")
    def _check_payment_token(self):
        """Autopay only with an active saved method of the customer's own commercial entity."""
        for sub in self.filtered("payment_token_id"):
            token = sub.payment_token_id.sudo()
            if token.partner_id.commercial_partner_id != sub.commercial_partner_id:
                raise ValidationError(self.env._(
                    "%(sub)s: the payment method %(token)s belongs to another customer.",
                    sub=sub.display_name, token=token.display_name,
                ))
            problem = sub._autopay_problem(token, sub.currency_id)
            if problem:
                raise ValidationError(self.env._("%(sub)s: %(problem)s", sub=sub.display_name, problem=problem[1]))

    # === ACTION METHODS === #

    def action_send_autopay_link(self):
        """E-mail the customer a link to save a payment method for this subscription.

        :return: True
        :raise UserError: a subscription is closed, or its customer has no e-mail address
        """
        for sub in self:
            if sub.state in const.CLOSED_STATES:
                raise UserError(self.env._("%(sub)s is closed.", sub=sub.display_name))
            if not sub.partner_id.email:
                raise UserError(self.env._("%(customer)s has no e-mail address.", customer=sub.partner_id.name))
        self.write({"autopay_requested": True})
        for sub in self:
            sub.message_post_with_source(
                "subscription_billing.mail_template_autopay_setup", subtype_xmlid="mail.mt_comment",
            )
        return True

    # === BUSINESS METHODS === #

    def _autopay_problem(self, token, currency):
        """``(code, message)`` when ``token`` cannot be charged in ``currency``, else None."""
        token = token.sudo()
        if not token.active:
            return const.CODE_TOKEN_INACTIVE, self.env._(
                "the payment method %(token)s was removed or deactivated.", token=token.display_name)
        return self._autopay_provider_problem(token.provider_id, currency)

    def _autopay_provider_problem(self, provider, currency):
        """``(code, message)`` when ``provider`` cannot charge this subscription's saved methods."""
        provider = provider.sudo()
        if provider.company_id and self.company_id and provider.company_id != self.company_id:
            return "provider_other_company", self.env._(
                "the payment provider %(provider)s belongs to another company.", provider=provider.name)
        if not provider.allow_tokenization:
            return "provider_no_tokenization", self.env._(
                "%(provider)s does not allow charging saved payment methods.", provider=provider.name)
        if provider.state == "disabled":
            return "provider_disabled", self.env._(
                "the payment provider %(provider)s is disabled.", provider=provider.name)
        if provider.available_currency_ids and currency not in provider.available_currency_ids:
            return "currency_not_supported", self.env._(
                "%(provider)s cannot charge in %(currency)s.", provider=provider.name, currency=currency.name)
        return None

    def _autopay_usable_tokens(self):
        """The saved payment methods autopay can charge for this subscription.

        :return: ``payment.token`` records (sudo): active, of the customer's commercial entity,
            of a provider of the subscription's company that can charge saved methods in its
            currency (what ``_check_payment_token`` accepts)
        """
        self.ensure_one()
        tokens = self.env["payment.token"].sudo().search([
            ("partner_id", "child_of", self.commercial_partner_id.id),
        ])
        return tokens.filtered(lambda token: not self._autopay_problem(token, self.currency_id))

    def _enroll_autopay(self, token, author=None, by_customer=True):
        """Make ``token`` the subscription's autopay method (from the portal or a setup link).

        A draft subscription starts; open invoices of a past due or suspended one are
        charged on the next autopay run, which is woken up now. A subscription suspended by
        staff stays suspended (only staff lift it): its method is saved for when it is reactivated.

        :param token: a ``payment.token`` of the customer's commercial entity
        :param author: the ``res.partner`` the change is attributed to (default: the customer)
        :param bool by_customer: the customer made the change (else staff, from the portal)
        :raise UserError: the subscription is closed
        :raise ValidationError: the method is another customer's or cannot be charged
        """
        self.ensure_one()
        if self.state in const.CLOSED_STATES:
            raise UserError(self.env._("%(sub)s is closed.", sub=self.display_name))
        previous = self.payment_token_id
        self.write({"payment_token_id": token.id, "autopay_requested": False})
        author = author or self.partner_id
        if by_customer:
            body = self.env._(
                "Autopay set up by the customer with %(method)s.", method=token.display_name,
            ) if not previous else self.env._(
                "The customer replaced the autopay method %(old)s with %(new)s.",
                old=previous.display_name, new=token.display_name,
            )
        else:
            body = self.env._("%(who)s set the autopay method to %(method)s.", who=author.name,
                              method=token.display_name)
        self.message_post(body=body, author_id=author.id)
        if self.state == "draft":
            self.action_start()
        if self.state == "suspended" and self.suspension_cause == "staff":
            return True
        open_invoices = self.invoice_ids.sudo().filtered_domain(self.env["account.move"]._subscription_open_domain())
        if open_invoices:
            if self.state == "suspended":
                self._update_state("past_due")
            open_invoices.write({"subscription_charge_date": self.company_id._subscription_today()})
            self.env.ref("subscription_billing.ir_cron_charge_autopay")._trigger()
        return True

    def _autopay_method_removed(self):
        """These subscriptions' autopay method was removed: autopay is off, retries stop, and their
        unpaid invoices are e-mailed to be paid by hand (told in the chatter)."""
        for sub in self:
            method = sub.payment_token_id
            sub.write({"payment_token_id": False})
            self.env["subscription.charge"]._stop_retries(sub)
            unpaid = sub.invoice_ids.filtered_domain(self.env["account.move"]._subscription_open_domain())
            if unpaid:
                unpaid._subscription_queue_sending(email=True)
            sub.message_post(body=self.env._(
                "The payment method %(method)s was removed: autopay is off and invoices are e-mailed to be paid by "
                "hand.", method=method.display_name))

    def _disable_autopay(self, author=None, by_customer=True):
        """Autopay is turned off (from the portal): invoices must then be paid by hand.

        :param author: the ``res.partner`` the change is attributed to (default: the customer)
        :param bool by_customer: the customer made the change (else staff, from the portal)
        :raise UserError: the subscription is not on autopay
        """
        self.ensure_one()
        if not self.payment_token_id:
            raise UserError(self.env._("%(sub)s is not on autopay.", sub=self.display_name))
        self.write({"payment_token_id": False})
        self.env["subscription.charge"]._stop_retries(self)
        author = author or self.partner_id
        body = self.env._(
            "The customer turned autopay off: invoices are now e-mailed to be paid by hand.",
        ) if by_customer else self.env._(
            "%(who)s turned autopay off: invoices are now e-mailed to be paid by hand.", who=author.name)
        self.message_post(body=body, author_id=author.id)
        return True
