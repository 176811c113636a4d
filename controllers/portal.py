import math

from werkzeug.exceptions import BadRequest, Forbidden, NotFound

from odoo import http
from odoo.exceptions import AccessError, MissingError, UserError, ValidationError
from odoo.http import request

from odoo.addons.payment import utils as payment_utils
from odoo.addons.payment.controllers.portal import PaymentPortal
from odoo.addons.portal.controllers.portal import pager as portal_pager


class SubscriptionPortal(PaymentPortal):
    """``/my/subscriptions``: a customer's subscriptions, autopay enrollment and renewal.

    Who sees a subscription is decided by access rights and record rules (the portal rule
    gives portal users their commercial entity's subscriptions), or by the subscription's
    access token (e-mail links), through Odoo's ``_document_check_access``; anything else is
    a 404 that changes nothing. Who may *act* on it: the customer (a portal user of its
    commercial entity, or whoever holds its access token) and internal users within their
    own back-office rights. Every change is attributed to who made it.
    """

    # === HELPERS === #

    def _subscription_sortings(self):
        return {
            "date": {"label": request.env._("Newest"), "order": "date_start desc, id desc"},
            "name": {"label": request.env._("Reference"), "order": "name"},
            "next": {"label": request.env._("Next invoice"), "order": "next_invoice_date, id"},
            "state": {"label": request.env._("Status"), "order": "state, id desc"},
        }

    def _subscription_filters(self):
        return {
            "all": {"label": request.env._("All"), "domain": []},
            "active": {"label": request.env._("Active"), "domain": [("state", "=", "active")]},
            "attention": {"label": request.env._("Needs attention"),
                          "domain": [("state", "in", ("past_due", "suspended"))]},
            "past_due": {"label": request.env._("Past due"), "domain": [("state", "=", "past_due")]},
            "suspended": {"label": request.env._("Suspended"), "domain": [("state", "=", "suspended")]},
            "paused": {"label": request.env._("Paused"), "domain": [("state", "=", "paused")]},
            "closed": {"label": request.env._("Ended"), "domain": [("state", "in", ("expired", "cancelled"))]},
        }

    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if "subscription_count" in counters:
            Subscription = request.env["subscription.subscription"]
            values["subscription_count"] = (
                Subscription.search_count(self._subscription_domain()) if Subscription.has_access("read") else 0
            )
        return values

    def _subscription_domain(self):
        """The visitor's own subscriptions in their list (the record rules decide what exists)."""
        partner = request.env.user.partner_id
        return [
            ("commercial_partner_id", "=", partner.commercial_partner_id.id),
            "|", ("state", "!=", "draft"), ("autopay_requested", "=", True),
        ]

    def _subscription_get(self, sub_id, access_token=None, act=False):
        """The subscription (sudo) this visitor may see, or NotFound.

        :param bool act: the visitor also means to change it: an internal user needs write
            access to it in the back office, a customer (portal user of its entity or holder
            of its access token) needs nothing more
        :raise NotFound: the subscription does not exist or is not the visitor's to see
        :raise Forbidden: an internal user who may see it but not change it
        """
        try:
            sub_sudo = self._document_check_access("subscription.subscription", sub_id, access_token)
        except (AccessError, MissingError) as error:
            raise NotFound() from error
        user = request.env.user
        if act and not user.share and not sub_sudo.with_user(user).has_access("write"):
            raise Forbidden()
        return sub_sudo

    def _subscription_actor(self, sub_sudo):
        """The partner a change made from the portal is attributed to, and whether it is the customer."""
        user = request.env.user
        if user._is_public():
            return sub_sudo.partner_id, True  # the holder of the e-mail link
        return user.partner_id, user.share

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
        # Only what enrolling would accept (never another company's provider, nor one that
        # cannot charge saved methods), and not the method already in use.
        tokens_sudo = request.env["payment.token"].sudo()._get_available_tokens(
            providers_sudo.ids, partner.id, is_validation=True,
        ) & sub._autopay_usable_tokens()
        # The method autopay already uses is shown above, not offered again.
        tokens_sudo -= sub.sudo().payment_token_id
        return {
            "mode": "validation",
            "allow_token_selection": True,
            # Saved methods can be removed (Odoo's form asks first and names what uses them).
            "allow_token_deletion": True,
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

    def _subscription_change_documents(self, sub, documents):
        """The documents a change just created, from the page's query (only this subscription's)."""
        ids = [int(doc_id) for doc_id in (documents or "").split(",") if doc_id.strip().isdigit()][:5]
        if not ids:
            return request.env["account.move"]
        return request.env["account.move"].sudo().browse(ids).exists().filtered(
            lambda m: m.subscription_id == sub and m.state == "posted")

    # === PAGES === #

    @http.route(["/my/subscriptions", "/my/subscriptions/page/<int:page>"], type="http", auth="user", website=True)
    def portal_my_subscriptions(self, page=1, sortby="date", filterby="all", **kw):
        Subscription = request.env["subscription.subscription"]
        if not Subscription.has_access("read"):
            raise NotFound()
        sortings, filters = self._subscription_sortings(), self._subscription_filters()
        sortby = sortby if sortby in sortings else "date"
        filterby = filterby if filterby in filters else "all"
        domain = self._subscription_domain() + filters[filterby]["domain"]
        count = Subscription.search_count(domain)
        pager = portal_pager(
            url="/my/subscriptions", url_args={"sortby": sortby, "filterby": filterby},
            total=count, page=page, step=self._items_per_page,
        )
        subscriptions = Subscription.search(
            domain, order=sortings[sortby]["order"], limit=self._items_per_page, offset=pager["offset"],
        )
        request.session["my_subscriptions_history"] = subscriptions.ids[:100]
        values = self._prepare_portal_layout_values()
        values.update({
            # Found with the visitor's rights; shown with the plan and lines they cannot read alone.
            "subscriptions": subscriptions.sudo(),
            "page_name": "subscription",
            "pager": pager,
            "default_url": "/my/subscriptions",
            "searchbar_sortings": sortings,
            "sortby": sortby,
            "searchbar_filters": filters,
            "filterby": filterby,
        })
        return request.render("subscription_billing.portal_my_subscriptions", values)

    @http.route("/my/subscriptions/<int:sub_id>", type="http", auth="public", website=True)
    def portal_my_subscription(self, sub_id, access_token=None, **kw):
        sub = self._subscription_get(sub_id, access_token)
        close_reasons = request.env["subscription.close.reason"].sudo().search([("customer_selectable", "=", True)])
        # Invoices, and the credit notes of changes (a downgrade, the unused days of a plan change).
        invoices = sub.invoice_ids.filtered(lambda m: m.move_type in ("out_invoice", "out_refund")
                                            and m.state == "posted")
        Move = request.env["account.move"]
        open_invoices = invoices.filtered_domain(Move._subscription_open_domain())
        values = {
            "subscription": sub,
            "page_name": "subscription",
            "invoices": invoices.sorted("invoice_date", reverse=True),
            "open_invoices": open_invoices,
            "overdue_invoices": invoices.filtered_domain(
                Move._subscription_overdue_domain(sub.company_id._subscription_today())),
            "paid_dates": invoices._subscription_paid_dates(),
            "standing": sub._customer_standing(),
            "charges": sub.charge_ids[:20],
            "message": kw.get("message"),
            "close_reasons": close_reasons,
            "change_documents": self._subscription_change_documents(sub, kw.get("documents")),
            **self._subscription_payment_form_values(sub),
        }
        values = self._get_page_view_values(
            sub, sub.access_token, values, "my_subscriptions_history", False, **kw,
        )
        return request.render("subscription_billing.portal_subscription_page", values)

    # === AUTOPAY ROUTES === #

    @http.route("/my/subscriptions/<int:sub_id>/autopay/transaction", type="jsonrpc", auth="public")
    def portal_subscription_autopay_transaction(self, sub_id, access_token=None, flow=None, provider_id=None,
                                                payment_method_id=None, **kwargs):
        """Save a new payment method (validation transaction) that becomes the autopay method."""
        sub = self._subscription_get(sub_id, access_token, act=True)
        if flow not in ("redirect", "direct"):
            raise ValidationError(request.env._("Choose a new payment method to save."))
        self._validate_transaction_kwargs(kwargs)
        for forced in ("token_id", "tokenization_requested", "is_validation", "amount", "landing_route"):
            kwargs.pop(forced, None)
        provider = request.env["payment.provider"].sudo().browse(
            int(provider_id) if str(provider_id or "").isdigit() else 0).exists()
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
        sub = self._subscription_get(sub_id, access_token, act=True)
        # Another customer's method, one that cannot be used and one that does not exist get
        # the same answer, which names none of them.
        token = sub._autopay_usable_tokens().filtered(lambda t: str(t.id) == str(token_id))
        if not token:
            raise ValidationError(request.env._("This payment method cannot be used for this subscription."))
        author, by_customer = self._subscription_actor(sub)
        try:
            sub._enroll_autopay(token, author=author, by_customer=by_customer)  # refuses another customer's
        except (UserError, ValidationError) as error:
            raise ValidationError(error.args[0]) from error
        return True

    @http.route("/my/subscriptions/<int:sub_id>/autopay/disable", type="http", auth="public", methods=["POST"],
                website=True)
    def portal_subscription_autopay_disable(self, sub_id, access_token=None, **kwargs):
        sub = self._subscription_get(sub_id, access_token, act=True)
        if sub.payment_token_id:
            author, by_customer = self._subscription_actor(sub)
            sub._disable_autopay(author=author, by_customer=by_customer)
        return request.redirect(sub.get_portal_url(query_string="&message=autopay_off"))

    # === PAUSE ROUTES === #

    @http.route("/my/subscriptions/<int:sub_id>/pause", type="http", auth="public", methods=["POST"],
                website=True)
    def portal_subscription_pause(self, sub_id, access_token=None, date_resume=None, **kwargs):
        """Pause the subscription from today until ``date_resume`` (empty: until resumed, or the plan's
        longest pause), where its plan lets customers pause. A date the plan refuses brings the page
        back with the reason; nothing changes."""
        sub = self._subscription_get(sub_id, access_token, act=True)
        if not sub.plan_id.customer_can_pause or sub.state != "active" or sub.is_trial:
            raise Forbidden()
        author, _by_customer = self._subscription_actor(sub)
        try:
            sub._pause(date_resume or None, author=author)
        except (UserError, ValidationError):
            request.env.cr.rollback()
            return request.redirect(sub.get_portal_url(query_string="&message=pause_refused", anchor="pause"))
        return request.redirect(sub.get_portal_url(query_string="&message=paused"))

    @http.route("/my/subscriptions/<int:sub_id>/resume", type="http", auth="public", methods=["POST"],
                website=True)
    def portal_subscription_resume(self, sub_id, access_token=None, **kwargs):
        """Resume the paused subscription today, where its plan lets customers pause."""
        sub = self._subscription_get(sub_id, access_token, act=True)
        if not sub.plan_id.customer_can_pause or sub.state != "paused":
            raise Forbidden()
        author, _by_customer = self._subscription_actor(sub)
        sub._resume_by_customer(author)
        return request.redirect(sub.get_portal_url(query_string="&message=resumed"))

    # === CHANGE ROUTES === #

    def _subscription_change_render(self, sub, params, preview=None, error=None, status=200):
        """The change page: the form (plan, quantities, variants, when), and once previewed the
        exact amounts with the confirm button."""
        plans = sub._portal_change_plans()
        values = {
            "subscription": sub,
            "page_name": "subscription_change",
            "plans": plans,
            "plan_prices": {plan.id: sub._portal_plan_amount(plan) for plan in plans},
            "variants": {line.id: sub._portal_change_variants(line) for line in sub.line_ids},
            "params": params,
            "preview": preview,
            "error": error,
        }
        return request.render("subscription_billing.portal_subscription_change", values, status=status)

    def _subscription_change_get(self, sub_id, access_token):
        sub = self._subscription_get(sub_id, access_token, act=True)
        if not sub._portal_can_change():
            raise Forbidden()
        return sub

    @http.route("/my/subscriptions/<int:sub_id>/change", type="http", auth="public", methods=["GET"], website=True)
    def portal_subscription_change(self, sub_id, access_token=None, **kwargs):
        """The change form, filled with the subscription as it is."""
        sub = self._subscription_change_get(sub_id, access_token)
        params = {"plan_id": str(sub.plan_id.id), "timing": "now"}
        for line in sub.line_ids:
            params[f"quantity_{line.id}"] = f"{line.quantity:g}"
            params[f"product_{line.id}"] = str(line.product_id.id)
        return self._subscription_change_render(sub, params)

    @http.route("/my/subscriptions/<int:sub_id>/change/preview", type="http", auth="public", methods=["POST"],
                website=True)
    def portal_subscription_change_preview(self, sub_id, access_token=None, **params):
        """The exact amounts of the change chosen (nothing is written); a change that is not
        allowed shows why (400)."""
        sub = self._subscription_change_get(sub_id, access_token)
        params.pop("csrf_token", None)
        try:
            plan, lines_vals, timing = sub._portal_change_values(params)
            preview = sub._change_preview(plan, sub._new_lines(lines_vals, plan), timing)
        except (UserError, ValidationError) as error:
            return self._subscription_change_render(sub, params, error=error.args[0], status=400)
        return self._subscription_change_render(sub, params, preview=dict(preview, plan=plan, timing=timing))

    @http.route("/my/subscriptions/<int:sub_id>/change/confirm", type="http", auth="public", methods=["POST"],
                website=True)
    def portal_subscription_change_confirm(self, sub_id, access_token=None, expected_net=None, **params):
        """Apply the change previewed. When the amounts are no longer those shown (the day
        changed, a price changed meanwhile), the new ones are shown to confirm again."""
        sub = self._subscription_change_get(sub_id, access_token)
        params.pop("csrf_token", None)
        author, _by_customer = self._subscription_actor(sub)
        try:
            plan, lines_vals, timing = sub._portal_change_values(params)
            preview = sub._change_preview(plan, sub._new_lines(lines_vals, plan), timing)
            shown = float(expected_net) if expected_net not in (None, "") else None
        except (UserError, ValidationError) as error:
            return self._subscription_change_render(sub, params, error=error.args[0], status=400)
        except ValueError:
            raise BadRequest() from None
        if shown is not None and not math.isfinite(shown):
            raise BadRequest()
        if shown is None or sub.currency_id.compare_amounts(shown, preview["net"]):
            return self._subscription_change_render(
                sub, params, preview=dict(preview, plan=plan, timing=timing),
                error=request.env._("The amounts have changed since they were shown: check them and confirm again."),
                status=409)
        try:
            documents = sub._apply_change(plan, lines_vals, timing, author=author)
        except (UserError, ValidationError) as error:
            request.env.cr.rollback()
            return self._subscription_change_render(sub, params, error=error.args[0], status=400)
        query = "&message=changed"
        if documents:
            query += f"&documents={','.join(str(doc_id) for doc_id in documents.ids)}"
        return request.redirect(sub.get_portal_url(query_string=query))

    # === TRIAL ROUTES === #

    @http.route("/my/subscriptions/<int:sub_id>/trial/cancel", type="http", auth="public", methods=["POST"],
                website=True)
    def portal_subscription_cancel_trial(self, sub_id, access_token=None, **kwargs):
        """Cancel during the free trial: the subscription is cancelled today, nothing is invoiced."""
        sub = self._subscription_get(sub_id, access_token, act=True)
        if not sub.is_trial or sub.state != "active":
            raise Forbidden()
        author, _by_customer = self._subscription_actor(sub)
        sub._cancel_trial_by_customer(author)
        return request.redirect(sub.get_portal_url(query_string="&message=trial_cancelled"))

    # === RENEWAL ROUTES === #

    @http.route("/my/subscriptions/<int:sub_id>/renewal/stop", type="http", auth="public", methods=["POST"],
                website=True)
    def portal_subscription_stop_renewal(self, sub_id, access_token=None, close_reason_id=None, **kwargs):
        """Turn the renewal off, with the reason the customer picked among those offered to them."""
        sub = self._subscription_get(sub_id, access_token, act=True)
        author, by_customer = self._subscription_actor(sub)
        reason = request.env["subscription.close.reason"]
        if close_reason_id:
            try:
                reason = reason.sudo().browse(int(close_reason_id)).exists()
            except (TypeError, ValueError) as error:
                raise Forbidden() from error
            if not reason:
                raise Forbidden()
        try:
            sub._stop_renewal_by_customer(author=author, by_customer=by_customer, reason=reason or None)
        except UserError as error:
            raise Forbidden() from error
        return request.redirect(sub.get_portal_url(query_string="&message=renewal_off"))
