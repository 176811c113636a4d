import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_utils";

/**
 * Sales: create a subscription for a customer, start it, and generate its first invoice.
 */
registry.category("web_tour.tours").add("subscription_sales_start_and_invoice", {
    steps: () => [
        {
            content: "New subscription",
            trigger: ".o_control_panel_main_buttons .o_list_button_add, .o_control_panel_main_buttons .o-kanban-button-new",
            run: "click",
        },
        {
            content: "Choose the customer",
            trigger: ".o_field_widget[name='partner_id'] input",
            run: "edit Tour Reader",
        },
        {
            content: "Pick it",
            trigger: ".ui-menu-item a:contains('Tour Reader')",
            run: "click",
        },
        {
            content: "Choose the plan",
            trigger: ".o_field_widget[name='plan_id'] input",
            run: "edit Monthly (test)",
        },
        {
            content: "Pick it",
            trigger: ".ui-menu-item a:contains('Monthly (test)')",
            run: "click",
        },
        {
            content: "Add a line",
            trigger: "div[name='line_ids'] .o_field_x2many_list_row_add a",
            run: "click",
        },
        {
            content: "Choose the magazine",
            trigger: "div[name='line_ids'] .o_selected_row .o_list_many2one[name='product_id'] input",
            run: "edit Trendhouse Weekly (test)",
        },
        {
            content: "Pick it",
            trigger: ".ui-menu-item-wrapper:contains('Trendhouse Weekly (test)')",
            run: "click",
        },
        ...stepUtils.saveForm(),
        {
            content: "Start it",
            trigger: ".o_form_statusbar button[name='action_start']",
            run: "click",
        },
        {
            content: "It is active",
            trigger: ".o_form_statusbar .o_arrow_button_current:contains('Active')",
        },
        {
            content: "Generate its invoice now",
            trigger: ".o_form_statusbar button[name='action_generate_invoice']",
            run: "click",
        },
        {
            content: "Confirm",
            trigger: ".modal-footer .btn-primary",
            run: "click",
        },
        {
            content: "The posted invoice opens",
            trigger: ".o_breadcrumb:contains('INV/')",
        },
    ],
});

/**
 * Support (an employee without the subscription rights): the contact's Subscriptions tab tells
 * why a customer is in trouble and what to do next.
 */
registry.category("web_tour.tours").add("subscription_support_reads_health", {
    steps: () => [
        {
            content: "Open the Subscriptions tab",
            trigger: ".o_notebook .nav-link:contains('Subscriptions')",
            run: "click",
        },
        {
            content: "The standing says why and what next",
            trigger: ".o_field_widget[name='subscription_summary']:contains('Payment failed since'):contains('next step')",
        },
    ],
});
