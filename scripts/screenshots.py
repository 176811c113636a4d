#!/usr/bin/env python3
"""Take the README screenshots from a running demo (``SB_HTTP_PORT=8070 ./dev run``).

Needs the ``playwright`` Python package (``pip install playwright`` in any virtualenv; no browser
download: it drives the system's Chromium) and Debian's ``chromium``.

    python scripts/screenshots.py http://127.0.0.1:8070 static/description/screenshots
"""

import sys

from playwright.sync_api import sync_playwright

PAGES = [
    ("overview", "/odoo/action-subscription_billing.subscription_overview_action"),
    ("cohort", "/odoo/action-subscription_billing.subscription_cohort_action"),
    ("churn", "/odoo/action-subscription_billing.subscription_mrr_log_action_churn"),
    ("billing_preview", "/odoo/action-subscription_billing.subscription_billing_preview_action"),
    ("kanban", "/odoo/action-subscription_billing.subscription_action"),
    ("list", "/odoo/action-subscription_billing.subscription_action?view_type=list"),
    ("pivot", "/odoo/action-subscription_billing.subscription_action?view_type=pivot"),
    ("collections", "/odoo/action-subscription_billing.subscription_collection_action"),
]
# The portal customer's monthly subscription (billed this month): the Change plan or quantities dialog.
CHANGED_SUBSCRIPTION = "SUB/00023"
# A yearly subscription that does not renew by itself (subscription_21, its term ends in a few weeks).
RENEWED_SUBSCRIPTION = "SUB/00022"
# The demo's subscription paused for 25 days (subscription_10).
PAUSED_SUBSCRIPTION = "SUB/00011"
# The demo's customer whose card was declined (retried tomorrow): the form's banner and the contact's tab.
FAILED_SUBSCRIPTION = "SUB/00016"
FAILED_CUSTOMER = "Mateo López"


def main(base, out):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{base}/web/login")
        page.fill("input[name=login]", "admin")
        page.fill("input[name=password]", "admin")
        page.click("button[type=submit]")
        page.wait_for_url("**/odoo**")
        for name, path in PAGES:
            # The Overview scrolls inside Odoo's action area: a taller window shows all of it.
            page.set_viewport_size({"width": 1440, "height": 1350 if name == "overview" else 900})
            page.goto(base + path)
            page.wait_for_timeout(2500)
            page.screenshot(path=f"{out}/{name}.png")
        page.set_viewport_size({"width": 1440, "height": 900})
        # The Overview on a phone.
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        phone.context.add_cookies(page.context.cookies())
        phone.goto(base + PAGES[0][1])
        phone.wait_for_timeout(3000)
        phone.screenshot(path=f"{out}/overview_phone.png")
        phone.close()
        # A subscription form: the one whose payment failed (banner: why, how much, what next).
        page.goto(base + "/odoo/action-subscription_billing.subscription_action?view_type=list")
        page.wait_for_timeout(2000)
        page.get_by_text(FAILED_SUBSCRIPTION).first.click()
        page.wait_for_timeout(2500)
        page.screenshot(path=f"{out}/form.png")
        # The same form on a phone.
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        phone.context.add_cookies(page.context.cookies())
        phone.goto(page.url)
        phone.wait_for_timeout(3000)
        phone.screenshot(path=f"{out}/form_phone.png")
        phone.close()
        # The paused subscription's form, and the Pause dialog of an active one.
        page.goto(base + "/odoo/action-subscription_billing.subscription_action?view_type=list")
        page.wait_for_timeout(2000)
        page.get_by_text(PAUSED_SUBSCRIPTION).first.click()
        page.wait_for_timeout(2500)
        page.screenshot(path=f"{out}/paused.png")
        page.goto(base + "/odoo/action-subscription_billing.subscription_action?view_type=list")
        page.wait_for_timeout(2000)
        page.locator(".o_data_row", has_text="Active").first.locator("td.o_data_cell").first.click()
        page.wait_for_timeout(2500)
        page.get_by_role("button", name="Pause").first.click()
        page.wait_for_timeout(1500)
        page.locator(".modal-title").click()  # close the date picker that opens by itself
        page.wait_for_timeout(500)
        page.screenshot(path=f"{out}/pause_dialog.png")
        page.keyboard.press("Escape")
        # Change plan or quantities on a monthly subscription billed this month: one more copy, now, prorated.
        page.goto(base + "/odoo/action-subscription_billing.subscription_action?view_type=list")
        page.wait_for_timeout(2000)
        page.get_by_text(CHANGED_SUBSCRIPTION).first.click()
        page.wait_for_timeout(2500)
        page.get_by_role("button", name="Change plan or quantities").click()
        page.wait_for_timeout(1500)
        page.locator(".modal .o_field_one2many .o_data_row td[name=quantity]").first.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("2")
        page.locator(".modal-title").click()
        page.wait_for_timeout(1500)
        page.screenshot(path=f"{out}/change.png")
        page.keyboard.press("Escape")
        # Renew a yearly subscription that does not renew by itself, into the monthly plan from its term end.
        page.goto(base + "/odoo/action-subscription_billing.subscription_action?view_type=list")
        page.wait_for_timeout(2000)
        page.get_by_text(RENEWED_SUBSCRIPTION).first.click()
        page.wait_for_timeout(2500)
        page.get_by_role("button", name="Renew", exact=True).first.click()
        page.wait_for_timeout(1500)
        page.locator(".modal div[name=plan_id] input").fill("Monthly, 1-year")
        page.wait_for_timeout(1000)
        page.locator(".o-autocomplete--dropdown-item").first.click()
        page.wait_for_timeout(1500)
        page.screenshot(path=f"{out}/renew.png")
        page.keyboard.press("Escape")
        # The contact's Subscriptions tab.
        page.goto(base + "/odoo/action-base.action_partner_form?view_type=list")
        page.wait_for_timeout(2000)
        page.get_by_text(FAILED_CUSTOMER).first.click(timeout=10000)
        page.wait_for_timeout(2000)
        page.get_by_role("tab", name="Subscriptions").click()
        page.wait_for_timeout(1500)
        page.screenshot(path=f"{out}/contact.png")
        # The customer portal, as the demo portal customer (login portal / portal).
        portal = browser.new_page(viewport={"width": 1280, "height": 900})
        portal.goto(f"{base}/web/login")
        portal.fill("input[name=login]", "portal")
        portal.fill("input[name=password]", "portal")
        portal.click("button[type=submit]")
        portal.wait_for_timeout(2000)
        portal.goto(f"{base}/my/subscriptions")
        portal.wait_for_timeout(2000)
        portal.screenshot(path=f"{out}/portal_list.png")
        portal.locator(".o_portal_subscription_row a").first.click()
        portal.wait_for_timeout(3000)
        portal.screenshot(path=f"{out}/portal_detail.png", full_page=True)
        # The monthly subscription, whose plan lets the customer pause it.
        portal.goto(f"{base}/my/subscriptions")
        portal.wait_for_timeout(1500)
        portal.locator(".o_portal_subscription_row", has_text="Monthly, 1-year").first.locator("a").first.click()
        portal.wait_for_timeout(3000)
        portal.screenshot(path=f"{out}/portal_pause.png")
        # Change it: to the yearly plan, now; the amounts before confirming.
        portal.locator(".o_subscription_change_link").click()
        portal.wait_for_timeout(2000)
        portal.locator(".o_subscription_change_form label", has_text="Yearly").click()
        portal.locator(".o_subscription_change_preview_button").click()
        portal.wait_for_timeout(2500)
        portal.screenshot(path=f"{out}/portal_change.png", full_page=True)
        change_url = portal.url
        # The subscription in its free trial.
        portal.goto(f"{base}/my/subscriptions")
        portal.wait_for_timeout(1500)
        portal.locator(".o_portal_subscription_row", has_text="free trial").first.locator("a").first.click()
        portal.wait_for_timeout(3000)
        portal.screenshot(path=f"{out}/portal_trial.png")
        # The portal on a phone.
        mobile = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        mobile.add_cookies(portal.context.cookies())
        phone = mobile.new_page()
        phone.goto(f"{base}/my/subscriptions")
        phone.wait_for_timeout(2000)
        phone.screenshot(path=f"{out}/portal_phone_list.png", full_page=True)
        phone.locator(".o_portal_subscription_row a").first.click()
        phone.wait_for_timeout(3000)
        phone.screenshot(path=f"{out}/portal_phone_detail.png", full_page=True)
        # The change page's amounts on a phone.
        phone.goto(change_url.rsplit("/preview", 1)[0])
        phone.wait_for_timeout(2000)
        phone.locator(".o_subscription_change_form label", has_text="Yearly").click()
        phone.locator(".o_subscription_change_preview_button").click()
        phone.wait_for_timeout(2500)
        phone.screenshot(path=f"{out}/portal_change_phone.png", full_page=True)
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
