from werkzeug.exceptions import Forbidden, NotFound

from odoo import http
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.http import request
from odoo.tools import consteq

from odoo.addons.payment import utils as payment_utils
from odoo.addons.payment.controllers.portal import PaymentPortal
from odoo.addons.portal.controllers.portal import pager as portal_pager

SORTINGS = {
    "date": {"label": "Newest", "order": "date_start desc, id desc"},
    "name": {"label": "Reference", "order": "name"},
    "next": {"label": "Next invoice", "order": "next_invoice_date, id"},
    "state": {"label": "Status", "order": "state, id desc"},
}
FILTERS = {
    "all": {"label": "All", "domain": []},
    "active": {"label": "Active", "domain": [("state", "=", "active")]},
    "attention": {"label": "Needs attention", "domain": [("state", "in", ("past_due", "suspended"))]},
    "past_due": {"label": "Past due", "domain": [("state", "=", "past_due")]},
    "suspended": {"label": "Suspended", "domain": [("state", "=", "suspended")]},
    "closed": {"label": "Ended", "domain": [("state", "in", ("expired", "cancelled"))]},
}


class SubscriptionPortal(PaymentPortal):
    """``/my/subscriptions``: a customer's subscriptions, autopay enrollment and renewal.

    Every route finds the subscription through ``_subscription_check_access``: the
    customer's own commercial entity when logged in, or the subscription's access
    token (e-mail links). Anything else is a 404 that changes nothing.
    """

    # ------------------------------------------------------------------ helpers
    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if "subscription_count" in counters:
            values["subscription_count"] = request.env["subscription.subscription"].sudo().search_count(
                self._subscription_domain())
        return values

    def _subscription_domain(self):
        partner = request.env.user.partner_id
        return [
            ("commercial_partner_id", "=", partner.commercial_partner_id.id),
            "|", ("state", "!=", "draft"), ("autopay_requested", "=", True),
        ]

    def _subscription_check_access(self, sub_id, access_token=None):
        """The subscription as sudo if this visitor may see it, else NotFound."""
        sub = request.env["subscription.subscription"].sudo().browse(sub_id).exists()
        if not sub:
            raise NotFound()
        if access_token and sub.access_token and consteq(sub.access_token, str(access_token)):
            return sub
        user = request.env.user
        if not user._is_public():
            if sub.commercial_partner_id == user.partner_id.commercial_partner_id:
                return sub
            if not user.share and sub.with_user(user).has_access("read"):
                return sub
        raise NotFound()

    def _subscription_payment_form_values(self, sub):
        """Odoo's payment form in validation mode: save a method, or pick a saved one."""
        partner = sub.partner_id
        providers_sudo = request.env["payment.provider"].sudo()._get_compatible_providers(
            sub.company_id.id, partner.id, 0.0, currency_id=sub.currency_id.id,
            force_tokenization=True, is_validation=True,
        ).filtered(lambda p: not p.available_currency_ids or sub.currency_id in p.available_currency_ids)
        payment_methods_sudo = request.env["payment.method"].sudo()._get_compatible_payment_methods(
            providers_sudo.ids, partner.id, force_tokenization=True,
        )
        tokens_sudo = request.env["payment.token"].sudo()._get_available_tokens(
            providers_sudo.ids, partner.id, is_validation=True,
        ).filtered(lambda t: t.partner_id.commercial_partner_id == sub.commercial_partner_id)
        return {
            "mode": "validation",
            "allow_token_selection": True,
            "allow_token_deletion": False,
            "default_token_id": sub.payment_token_id.id,
            "submit_button_label": request.env._("Use for autopay"),
            "reference_prefix": payment_utils.singularize_reference_prefix(prefix="AUTOPAY"),
            "partner_id": partner.id,
            "providers_sudo": providers_sudo,
            "payment_methods_sudo": payment_methods_sudo,
            "tokens_sudo": tokens_sudo,
            "transaction_route": f"/my/subscriptions/{sub.id}/autopay/transaction",
            "assign_token_route": f"/my/subscriptions/{sub.id}/autopay/assign",
            # Not only an anchor: after picking a saved method the page must reload.
            "landing_route": sub.get_portal_url(query_string="&message=autopay_on", anchor="autopay"),
            # The payment form sends this back to our routes: the subscription's own token.
            "access_token": sub.access_token,
        }

    # ------------------------------------------------------------------ pages
    @http.route(["/my/subscriptions", "/my/subscriptions/page/<int:page>"], type="http", auth="user", website=True)
    def portal_my_subscriptions(self, page=1, sortby="date", filterby="all", **kw):
        Subscription = request.env["subscription.subscription"].sudo()
        sortby = sortby if sortby in SORTINGS else "date"
        filterby = filterby if filterby in FILTERS else "all"
        domain = self._subscription_domain() + FILTERS[filterby]["domain"]
        count = Subscription.search_count(domain)
        pager = portal_pager(
            url="/my/subscriptions", url_args={"sortby": sortby, "filterby": filterby},
            total=count, page=page, step=self._items_per_page,
        )
        subscriptions = Subscription.search(
            domain, order=SORTINGS[sortby]["order"], limit=self._items_per_page, offset=pager["offset"],
        )
        request.session["my_subscriptions_history"] = subscriptions.ids[:100]
        values = self._prepare_portal_layout_values()
        values.update({
            "subscriptions": subscriptions,
            "page_name": "subscription",
            "pager": pager,
            "default_url": "/my/subscriptions",
            "searchbar_sortings": SORTINGS,
            "sortby": sortby,
            "searchbar_filters": FILTERS,
            "filterby": filterby,
        })
        return request.render("subscription_billing.portal_my_subscriptions", values)

    @http.route("/my/subscriptions/<int:sub_id>", type="http", auth="public", website=True)
    def portal_my_subscription(self, sub_id, access_token=None, **kw):
        sub = self._subscription_check_access(sub_id, access_token)
        invoices = sub.invoice_ids.filtered(lambda m: m.move_type == "out_invoice" and m.state == "posted")
        open_invoices = invoices.filtered_domain(request.env["account.move"]._subscription_open_domain())
        last_failure = sub.charge_ids.filtered(lambda c: c.state == "failed")[:1]
        values = {
            "subscription": sub,
            "page_name": "subscription",
            "invoices": invoices.sorted("invoice_date", reverse=True),
            "open_invoices": open_invoices,
            "charges": sub.charge_ids[:20],
            "last_failure": last_failure,
            "message": kw.get("message"),
            **self._subscription_payment_form_values(sub),
        }
        values = self._get_page_view_values(
            sub, sub.access_token, values, "my_subscriptions_history", False, **kw,
        )
        return request.render("subscription_billing.portal_subscription_page", values)

    # ------------------------------------------------------------------ autopay routes
    @http.route("/my/subscriptions/<int:sub_id>/autopay/transaction", type="jsonrpc", auth="public")
    def portal_subscription_autopay_transaction(self, sub_id, access_token=None, flow=None, provider_id=None,
                                                payment_method_id=None, **kwargs):
        """Save a new payment method (validation transaction) that becomes the autopay method."""
        sub = self._subscription_check_access(sub_id, access_token)
        if flow not in ("redirect", "direct"):
            raise ValidationError(request.env._("Choose a new payment method to save."))
        self._validate_transaction_kwargs(kwargs)
        kwargs.pop("token_id", None)
        kwargs.pop("tokenization_requested", None)
        kwargs.pop("is_validation", None)
        kwargs.pop("amount", None)
        kwargs.pop("landing_route", None)
        provider = request.env["payment.provider"].sudo().browse(int(provider_id or 0)).exists()
        if not provider or sub._autopay_provider_problem(provider, sub.currency_id):
            raise ValidationError(request.env._("This payment provider cannot save a payment method here."))
        tx_sudo = self._create_transaction(
            provider_id=provider.id, payment_method_id=payment_method_id, token_id=None, amount=None,
            currency_id=None, partner_id=sub.partner_id.id, flow=flow, tokenization_requested=True,
            landing_route=sub.get_portal_url(query_string="&message=autopay_on", anchor="autopay"),
            reference_prefix=payment_utils.singularize_reference_prefix(prefix="AUTOPAY"),
            is_validation=True, custom_create_values={"subscription_autopay_id": sub.id}, **kwargs,
        )
        return tx_sudo._get_processing_values()

    @http.route("/my/subscriptions/<int:sub_id>/autopay/assign", type="jsonrpc", auth="public")
    def portal_subscription_autopay_assign(self, sub_id, token_id=None, access_token=None, **kwargs):
        """Use one of the customer's saved payment methods for autopay."""
        sub = self._subscription_check_access(sub_id, access_token)
        token = request.env["payment.token"].sudo().browse(int(token_id or 0)).exists()
        if not token:
            raise AccessError(request.env._("You do not have access to this payment method."))
        try:
            sub._enroll_autopay(token)  # refuses a method of another customer
        except (UserError, ValidationError) as error:
            raise ValidationError(error.args[0]) from error
        return True

    @http.route("/my/subscriptions/<int:sub_id>/autopay/disable", type="http", auth="public", methods=["POST"],
                website=True)
    def portal_subscription_autopay_disable(self, sub_id, access_token=None, **kwargs):
        sub = self._subscription_check_access(sub_id, access_token)
        if sub.payment_token_id:
            sub._disable_autopay()
        return request.redirect(sub.get_portal_url(query_string="&message=autopay_off"))

    @http.route("/my/subscriptions/<int:sub_id>/renewal/stop", type="http", auth="public", methods=["POST"],
                website=True)
    def portal_subscription_stop_renewal(self, sub_id, access_token=None, **kwargs):
        sub = self._subscription_check_access(sub_id, access_token)
        try:
            sub._stop_renewal_by_customer()
        except UserError as error:
            raise Forbidden() from error
        return request.redirect(sub.get_portal_url(query_string="&message=renewal_off"))
