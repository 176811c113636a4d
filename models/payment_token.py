from odoo import api, fields, models


class PaymentToken(models.Model):
    _inherit = "payment.token"

    # === FIELDS === #

    card_exp_month = fields.Integer(
        string="Card expiry month", readonly=True, help="Given by providers that tell it (Stripe cards).")
    card_exp_year = fields.Integer(
        string="Card expiry year", readonly=True, help="Given by providers that tell it (Stripe cards).")

    # === COMPUTE METHODS === #

    @api.depends("payment_method_id.name", "card_exp_month", "card_exp_year")
    def _compute_display_name(self):
        """A saved payment method reads as people know it wherever a record name shows (back office,
        chatter, tracking): brand, last four digits and expiry. Odoo's payment form keeps its own
        ``_build_display_name``."""
        res = super()._compute_display_name()
        for token in self.filtered("payment_details"):
            token.display_name = token._subscription_label()
        return res

    # === CRUD METHODS === #

    def write(self, vals):
        """A saved payment method removed (archived, e.g. from the portal's payment methods) is no
        longer charged: the subscriptions it paid leave autopay, and their unpaid invoices are
        e-mailed to be paid by hand, before any charge could fail on it."""
        res = super().write(vals)
        if "active" in vals and not vals["active"]:
            subs = self.env["subscription.subscription"].sudo().search([
                ("payment_token_id", "in", self.ids), ("state", "not in", ("expired", "cancelled")),
            ])
            subs._autopay_method_removed()
        return res

    # === BUSINESS METHODS === #

    @api.model
    def _subscription_stripe_method_updated(self, payment_method):
        """A Stripe ``payment_method.updated`` / ``payment_method.automatically_updated`` event
        (the customer or the card network updated the card, https://docs.stripe.com/api/events/types):
        the saved methods with that Stripe PaymentMethod id take its new expiry and last four
        digits, and the subscriptions they pay say so in their chatter. A new expiry clears the
        expiry reminder already sent (it was for the old one). Values that are not a real month
        and year, or an unknown method, change nothing.

        :param dict payment_method: the event's ``data.object`` (a Stripe PaymentMethod)
        :return: the tokens updated
        """
        method_id = payment_method.get("id")
        card = payment_method.get("card") if isinstance(payment_method.get("card"), dict) else {}
        if not isinstance(method_id, str) or not method_id:
            return self.browse()
        tokens = self.sudo().with_context(active_test=False).search(
            [("provider_code", "=", "stripe"), ("stripe_payment_method", "=", method_id)])
        vals = {}
        month, year = card.get("exp_month"), card.get("exp_year")
        if isinstance(month, int) and isinstance(year, int) and 1 <= month <= 12 and 2000 <= year <= 2200:
            vals.update(card_exp_month=month, card_exp_year=year)
        last4 = card.get("last4")
        if isinstance(last4, str) and len(last4) == 4 and last4.isdigit():
            vals["payment_details"] = last4
        changed = tokens.filtered(lambda t: any(t[name] != value for name, value in vals.items()))
        if not changed:
            return self.browse()
        changed.write(vals)
        subs = self.env["subscription.subscription"].sudo().search([("payment_token_id", "in", changed.ids)])
        for sub in subs:
            sub.message_post(body=self.env._("Stripe updated the card: %(card)s.",
                                             card=sub.payment_token_id._subscription_label()))
        return changed


    def _subscription_label(self):
        """The payment method as customers know it, e.g. ``"Visa •••• 4242, exp. 12/28"``.

        Brand (or method) name, last four characters of the details the provider gave (never more),
        and the expiry when the provider gives it. Returns ``""`` for an empty recordset.
        """
        if not self:
            return ""
        self.ensure_one()
        token = self.sudo()
        brand = token.payment_method_id.name or token.provider_id.name or ""
        details = (token.payment_details or "")[-4:]
        label = self.env._("%(brand)s •••• %(last4)s", brand=brand, last4=details) if details else brand
        if token.card_exp_month and token.card_exp_year:
            label = self.env._("%(label)s, exp. %(month)s/%(year)s", label=label,
                               month=f"{token.card_exp_month:02d}", year=f"{token.card_exp_year % 100:02d}")
        return label

    def get_linked_records_info(self):
        """Show the subscriptions charged with this payment method before it is archived."""
        res = super().get_linked_records_info()
        subs_sudo = self.env["subscription.subscription"].sudo().search([("payment_token_id", "in", self.ids)])
        # Only the subscriptions the caller may read (a customer's own, a salesperson's ...).
        for sub in subs_sudo.with_env(self.env)._filtered_access("read"):
            res.append({
                "description": self.env._("Subscription (autopay)"),
                "id": sub.id,
                "name": sub.name,
                "url": sub.access_url,
            })
        return res
