import { Component, onWillStart, onMounted, onWillUnmount, useRef, useState } from "@odoo/owl";
import { loadBundle } from "@web/core/assets";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { ControlPanel } from "@web/search/control_panel/control_panel";
import { formatFloat, formatInteger, formatMonetary } from "@web/views/fields/formatters";
import { standardActionServiceProps } from "@web/webclient/actions/action_service";

/**
 * Subscriptions → Overview: counters with drill-downs, the revenue figures of this month beside
 * last month's, MRR at risk, dunning recovery and twelve months of MRR, all from one server call
 * (subscription.subscription.get_overview_data).
 */
export class SubscriptionOverview extends Component {
    static template = "subscription_billing.SubscriptionOverview";
    static components = { ControlPanel };
    static props = { ...standardActionServiceProps };

    setup() {
        this.orm = useService("orm");
        this.actionService = useService("action");
        this.state = useState({ data: null });
        this.mrrCanvas = useRef("mrrChart");
        this.movesCanvas = useRef("movesChart");
        this.charts = [];
        onWillStart(async () => {
            await loadBundle("web.chartjs_lib");
            await this.load();
        });
        onMounted(() => this.renderCharts());
        onWillUnmount(() => this.destroyCharts());
    }

    async load() {
        this.state.data = await this.orm.call("subscription.subscription", "get_overview_data", []);
    }

    async refresh() {
        await this.load();
        this.destroyCharts();
        this.renderCharts();
    }

    // Formatting ------------------------------------------------------------

    money(value) {
        return formatMonetary(value, { currencyId: this.state.data.currency.id });
    }

    format(kpi, value) {
        if (kpi.kind === "money") {
            return this.money(value);
        }
        if (kpi.kind === "percent") {
            return `${formatFloat(value, { digits: [false, 1] })} %`;
        }
        return formatInteger(value);
    }

    formatRate(value) {
        return `${formatFloat(value, { digits: [false, 1] })} %`;
    }

    changeText(kpi) {
        const sign = kpi.change > 0 ? "+" : kpi.change < 0 ? "−" : "±";
        const magnitude = this.format(kpi, Math.abs(kpi.change));
        return kpi.kind === "percent" ? `${sign}${magnitude.replace(" %", "")} pt` : `${sign}${magnitude}`;
    }

    changeClass(kpi) {
        if (!kpi.change || !kpi.better) {
            return "text-muted";
        }
        const good = kpi.better === "up" ? kpi.change > 0 : kpi.change < 0;
        return good ? "text-success" : "text-danger";
    }

    // Drill-downs -----------------------------------------------------------

    open(item) {
        if (!item.res_model) {
            return;
        }
        const views = item.res_model === "subscription.subscription"
            ? [[false, "list"], [false, "kanban"], [false, "form"]]
            : [[false, "list"], [false, "form"]];
        this.actionService.doAction({
            type: "ir.actions.act_window",
            name: item.label,
            res_model: item.res_model,
            domain: item.domain,
            views,
            target: "current",
        });
    }

    // Charts ----------------------------------------------------------------

    renderCharts() {
        const data = this.state.data;
        if (!data || !this.mrrCanvas.el) {
            return;
        }
        const Chart = window.Chart;
        const colors = {
            new: "#28a745", expansion: "#20c997", reactivation: "#17a2b8",
            contraction: "#fd7e14", churn: "#dc3545", transfer: "#6c757d",
        };
        const money = (value) => this.money(value);
        this.charts.push(new Chart(this.mrrCanvas.el, {
            type: "line",
            data: {
                labels: data.chart.labels,
                datasets: [{
                    label: _t("MRR"), data: data.chart.mrr, borderColor: "#714B67",
                    backgroundColor: "rgba(113, 75, 103, 0.15)", fill: true, tension: 0.2,
                }],
            },
            options: {
                maintainAspectRatio: false, animation: false,
                plugins: { legend: { display: false }, tooltip: { callbacks: { label: (ctx) => money(ctx.parsed.y) } } },
                scales: { y: { beginAtZero: true, ticks: { callback: money } } },
            },
        }));
        this.charts.push(new Chart(this.movesCanvas.el, {
            type: "bar",
            data: {
                labels: data.chart.labels,
                datasets: data.chart.movements.map((move) => ({
                    label: move.label, data: move.values, backgroundColor: colors[move.type],
                })),
            },
            options: {
                maintainAspectRatio: false, animation: false,
                plugins: { tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${money(ctx.parsed.y)}` } } },
                scales: { x: { stacked: true }, y: { stacked: true, ticks: { callback: money } } },
            },
        }));
    }

    destroyCharts() {
        for (const chart of this.charts) {
            chart.destroy();
        }
        this.charts = [];
    }
}

registry.category("actions").add("subscription_overview", SubscriptionOverview);
