import { registry } from "@web/core/registry";

/**
 * A past-due customer opens the subscription from the e-mail link, pays the overdue
 * invoice with the demo provider while saving the card, uses that card for autopay and
 * sees the subscription back to active.
 */
registry.category("web_tour.tours").add("subscription_portal_pay_and_enroll", {
    steps: () => [
        {
            content: "The subscription is past due",
            trigger: ".o_subscription_state[data-state='past_due']",
        },
        {
            content: "The overdue invoice is shown",
            trigger: ".o_subscription_invoices .o_invoice_overdue",
        },
        {
            content: "Pay now",
            trigger: ".o_subscription_attention .o_subscription_pay_now",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "Use a new card rather than the saved ones",
            trigger: "#pay_with button[name='o_payment_expand_button']:visible",
            run: "click",
        },
        {
            content: "Choose the demo provider in the payment dialog",
            trigger: "#pay_with input[name='o_payment_radio'][data-payment-option-type='payment_method'][data-provider-code='demo']:visible",
            run: "click",
        },
        {
            content: "Enter the card",
            trigger: "#pay_with input[name='customer_input']:visible",
            run: "edit 5555555555554444",
        },
        {
            content: "Save the card",
            trigger: "#pay_with input[name='o_payment_tokenize_checkbox']:visible",
            run: "click",
        },
        {
            content: "Pay",
            trigger: "#pay_with button[name='o_payment_submit_button']:visible:not(:disabled)",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "Back on the invoice, paid",
            trigger: ".o_portal_sidebar, .o_portal_wrap",
            expectUnloadPage: false,
        },
        {
            content: "Go to my subscriptions",
            trigger: "body",
            run() {
                window.location.href = "/my/subscriptions";
            },
            expectUnloadPage: true,
        },
        {
            content: "Open the subscription",
            trigger: ".o_portal_subscription_row a",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "It is active again",
            trigger: ".o_subscription_state[data-state='active']",
        },
        {
            content: "Pick the card saved while paying",
            trigger: ".o_subscription_autopay li[name='o_payment_option']:contains('4444') input[name='o_payment_radio']",
            run: "click",
        },
        {
            content: "Use it for autopay",
            trigger: ".o_subscription_autopay button[name='o_payment_submit_button']:not(:disabled)",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "Autopay is on with that card",
            trigger: ".o_subscription_autopay_status:contains('paid automatically'):contains('4444')",
        },
    ],
});

/**
 * A customer on autopay turns it off (after the warning), then turns it on again with a
 * new card saved through the payment form.
 */
registry.category("web_tour.tours").add("subscription_portal_autopay_off_on", {
    steps: () => [
        {
            content: "Autopay is on",
            trigger: ".o_subscription_autopay_status:contains('paid automatically')",
        },
        {
            content: "Ask to turn it off",
            trigger: ".o_subscription_autopay_off_toggle",
            run: "click",
        },
        {
            content: "Confirm after the warning",
            trigger: "#autopay_off.show .o_subscription_autopay_off",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "Autopay is off",
            trigger: ".alert:contains('Automatic payment is off')",
        },
        {
            content: "Show the other payment methods",
            trigger: ".o_subscription_autopay button[name='o_payment_expand_button']",
            run: "click",
        },
        {
            content: "Choose a new card with the demo provider",
            trigger: ".o_subscription_autopay input[name='o_payment_radio'][data-payment-option-type='payment_method'][data-provider-code='demo']",
            run: "click",
        },
        {
            content: "Enter the new card",
            trigger: ".o_subscription_autopay input[name='customer_input']",
            run: "edit 4111111111111111",
        },
        {
            content: "Save it for autopay",
            trigger: ".o_subscription_autopay button[name='o_payment_submit_button']:not(:disabled)",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "Autopay is on again with the new card",
            trigger: ".o_subscription_autopay_status:contains('paid automatically'):contains('1111')",
        },
    ],
});

/** Nothing on the page is wider than the screen (tables stack or scroll inside their box). */
function assertFitsTheScreen() {
    const overflow = document.documentElement.scrollWidth - window.innerWidth;
    if (overflow > 1) {
        throw new Error(`The page is ${overflow}px wider than the ${window.innerWidth}px screen`);
    }
}

/**
 * On a phone (390 px): the customer finds the past-due subscription in the list (status visible),
 * opens it, pays the overdue invoice with a new card from the "Pay now" button, and comes back to
 * the invoice history that shows it paid, with its PDF to download.
 */
registry.category("web_tour.tours").add("subscription_portal_phone_pay", {
    steps: () => [
        {
            content: "The list fits a phone and shows the status",
            trigger: ".o_portal_subscription_row .o_subscription_state[data-state='past_due']:visible",
            run: assertFitsTheScreen,
        },
        {
            content: "Open the subscription",
            trigger: ".o_portal_subscription_row a:visible",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "The page fits the phone and says why it needs attention",
            trigger: ".o_subscription_attention:contains('Payment overdue'):visible",
            run: assertFitsTheScreen,
        },
        {
            content: "Pay now is on screen",
            trigger: ".o_subscription_attention .o_subscription_pay_now:visible",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "Use a new card",
            trigger: "#pay_with button[name='o_payment_expand_button']:visible",
            run: "click",
        },
        {
            content: "Choose the demo provider",
            trigger: "#pay_with input[name='o_payment_radio'][data-payment-option-type='payment_method'][data-provider-code='demo']:visible",
            run: "click",
        },
        {
            content: "Enter the card",
            trigger: "#pay_with input[name='customer_input']:visible",
            run: "edit 4242424242424242",
        },
        {
            content: "Pay",
            trigger: "#pay_with button[name='o_payment_submit_button']:visible:not(:disabled)",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "Back on the invoice",
            trigger: ".o_portal_sidebar, .o_portal_wrap",
            expectUnloadPage: false,
        },
        {
            content: "Back to the subscription",
            trigger: "body",
            run() {
                window.location.href = "/my/subscriptions";
            },
            expectUnloadPage: true,
        },
        {
            content: "Open it again",
            trigger: ".o_portal_subscription_row a:visible",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "The invoice shows paid, on its day, with its PDF to download",
            trigger: ".o_subscription_invoices tr:has(.badge:contains('Paid')) .o_invoice_download:visible",
            run: assertFitsTheScreen,
        },
    ],
});

/**
 * A monthly customer moves to the yearly plan now: the change page shows the proration (credit
 * for the unused days of the month, the first yearly period, the net to pay) before confirming,
 * and the subscription page then shows the invoice and credit note the change created.
 */
registry.category("web_tour.tours").add("subscription_portal_upgrade_to_yearly", {
    steps: () => [
        {
            content: "Open the change page",
            trigger: ".o_subscription_change_link",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "Choose the yearly plan",
            trigger: ".o_subscription_change_form label:contains('Yearly (test)')",
            run: "click",
        },
        {
            content: "Now, prorated",
            trigger: ".o_subscription_change_form #timing_now:checked",
        },
        {
            content: "See the amounts",
            trigger: ".o_subscription_change_preview_button",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "The unused days are credited",
            trigger: ".o_subscription_change_preview .o_change_credit:contains('−')",
        },
        {
            content: "The net to pay now is shown",
            trigger: ".o_subscription_change_preview tr.fw-bold:contains('To pay now') .o_change_net",
        },
        {
            content: "Then the yearly amount",
            trigger: ".o_subscription_change_preview .o_change_next:contains('132.00')",
        },
        {
            content: "Confirm",
            trigger: ".o_subscription_change_confirm",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "The change's invoice and credit note are shown",
            trigger: ".o_subscription_changed_message:contains('Invoice'):contains('Credit note')",
        },
        {
            content: "The plan is yearly now",
            trigger: ".o_portal_subscription .card-body strong:contains('Yearly (test)')",
        },
    ],
});
