#!/usr/bin/env python3
"""Benchmark of the Overview: its one server call on N subscriptions with a year of history.

Run it through ``./dev bench-overview`` (which sets up Odoo and passes the configuration):

    ./dev bench-overview               # N = 10,000 and 50,000
    ./dev bench-overview 2000          # a quick look

For each N it copies the benchmark template database, then builds (not timed) a
Trendhouse-like year: N customers who subscribed on days spread over the last
twelve months (60 % monthly 12.00, 25 % quarterly 32.00, 15 % yearly 120.00),
and, on the day they happened, 15 % closed (customer request or non-payment),
6 % upgraded by one copy, 2 % downgraded, 4 % suspended for non-payment of whom
half reactivated. Every change goes through the addon's own methods, so the MRR
log holds what a real year would (one row per change). Then 2 % of the
subscriptions, on autopay with demo tokens (80 % paid, 10 % declined and retried,
5 % pending, 5 % cancelled), are billed today and charged, so the dunning figures
and the invoice-based counts have rows to read.

Then, in a fresh process, it times ``subscription.subscription.get_overview_data``
(the only call the Overview screen makes): the first call (cold caches) and the
median of five more, with the number of SQL queries of one call; and the two
analysis views' first screens (MRR breakdown pivot by month and event type,
retention cohorts by start month and months). Prints one line per N.
"""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import billing_day as bd

# Share of the subscriptions, per 1,000, going through each event during the year.
CLOSED, UPGRADED, DOWNGRADED, SUSPENDED = 150, 60, 20, 40
BILLED_TODAY = 20  # on autopay, billed and charged today


def populate(conf, db, n):
    """N customers and subscriptions with a year of back-dated history (see the module docstring)."""
    import random

    from dateutil.relativedelta import relativedelta

    from odoo.fields import Command

    t0 = time.perf_counter()
    env, cr = bd.odoo_env(conf, db)
    rng = random.Random(2026)
    Subscription = env["subscription.subscription"].with_context(tracking_disable=True)
    today = env.company._subscription_today()
    plans, product = bd.trendhouse_catalog(env)
    provider = env.ref("payment.payment_provider_demo")
    provider.mapped("journal_id")
    method = env.ref("payment_demo.payment_method_demo")
    reasons = [env.ref("subscription_billing.close_reason_too_expensive"),
               env.ref("subscription_billing.close_reason_customer_request"),
               env.ref("subscription_billing.close_reason_payment_failure")]
    countries = env["res.country"].search([("code", "in", ("US", "BE", "FR", "DE", "NL", "ES"))]).ids
    chunk = 1000
    events = []  # (day, kind, subscription id)
    for offset in range(0, n, chunk):
        size = min(chunk, n - offset)
        partners = env["res.partner"].with_context(tracking_disable=True).create([{
            "name": f"Reader {offset + i:06d}", "email": f"reader{offset + i}@example.com",
            "country_id": rng.choice(countries),
        } for i in range(size)])
        vals = []
        for i, partner in enumerate(partners):
            k = (offset + i) % 20
            plan = plans[0] if k < 12 else plans[1] if k < 17 else plans[2]
            per_mille = (offset + i) % 1000
            if per_mille < BILLED_TODAY:
                # Billed today, first period: started today, on autopay.
                token = env["payment.token"].create({
                    "provider_id": provider.id, "payment_method_id": method.id, "partner_id": partner.id,
                    "provider_ref": f"bench-{partner.id}", "payment_details": "4242",
                    "demo_simulated_state": bd.AUTOPAY_MIX[(offset + i) % len(bd.AUTOPAY_MIX)],
                })
                vals.append({"partner_id": partner.id, "plan_id": plan.id, "date_start": today, "state": "active",
                             "payment_token_id": token.id,
                             "line_ids": [Command.create({"product_id": product.id, "quantity": 1})]})
                continue
            start = today - relativedelta(days=rng.randint(1, 365))
            vals.append({"partner_id": partner.id, "plan_id": plan.id, "date_start": start, "state": "active",
                         "line_ids": [Command.create({"product_id": product.id, "quantity": 1})]})
        subs = Subscription.create(vals)
        events += _year_of_events(subs.filtered(lambda s: not s.payment_token_id), rng, today)
        # Migrated from the previous system: billed up to the current period.
        ids, dates = [], []
        for sub in subs.filtered(lambda s: s.date_start < today):
            months = sub.plan_id.billing_period_value * (12 if sub.plan_id.billing_period_unit == "year" else 1)
            elapsed = relativedelta(today, sub.date_start)
            periods = (elapsed.years * 12 + elapsed.months) // months + 1
            ids.append(sub.id)
            dates.append(sub.date_start + relativedelta(months=months * periods))
        env.flush_all()  # the ORM's pending writes would otherwise overwrite the dates at commit
        cr.execute("""
            UPDATE subscription_subscription s SET next_invoice_date = v.day
              FROM unnest(%s::int[], %s::date[]) AS v(id, day) WHERE s.id = v.id
        """, [ids, dates])
        cr.commit()
        env.invalidate_all()
    _apply_events(env, Subscription, events, reasons)
    cr.commit()
    env.invalidate_all()
    # Today's billing day and autopay run for the 2 % on autopay.
    print(f"history built in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    env["subscription.subscription"]._cron_generate_invoices()
    cr.commit()
    env["subscription.charge"]._cron_charge_autopay()
    cr.commit()
    cr.close()


def _year_of_events(subs, rng, today):
    """``[(day, kind, subscription id)]``: what happens to these subscriptions during their year."""
    from dateutil.relativedelta import relativedelta

    events = []
    for sub in subs:
        per_mille = rng.randrange(1000)
        day = sub.date_start + relativedelta(days=rng.randint(1, max(1, (today - sub.date_start).days)))
        if day >= today:
            continue
        if per_mille < CLOSED:
            events.append((day, "close", sub.id))
        elif per_mille < CLOSED + UPGRADED:
            events.append((day, "upgrade", sub.id))
        elif per_mille < CLOSED + UPGRADED + DOWNGRADED:
            events.append((day, "upgrade", sub.id))
            later = day + relativedelta(days=rng.randint(1, 60))
            if later < today:
                events.append((later, "downgrade", sub.id))
        elif per_mille < CLOSED + UPGRADED + DOWNGRADED + SUSPENDED:
            events.append((day, "suspend", sub.id))
            back = day + relativedelta(days=rng.randint(5, 40))
            if per_mille % 2 and back < today:
                events.append((back, "reactivate", sub.id))
    return events


def _apply_events(env, Subscription, events, reasons):
    """The year's changes, day by day, each day's changes set-based where the addon allows it."""
    by_day = {}
    for day, kind, sub_id in events:
        by_day.setdefault((day, kind), []).append(sub_id)
    for (day, kind), ids in sorted(by_day.items()):
        subs = Subscription.browse(ids).with_context(subscription_event_date=day)
        if kind == "close":
            for reason in reasons:
                part = subs.filtered(lambda s, reason=reason: s.id % 3 == reasons.index(reason))
                part._action_close("cancelled", reason, date_closed=day)
        elif kind in ("upgrade", "downgrade"):
            for sub in subs:
                sub.line_ids[:1].quantity += 1 if kind == "upgrade" else -1
        elif kind == "suspend":
            subs._update_state("suspended", vals={"suspension_cause": "overdue"})
            subs.with_context(subscription_term_write=True).write({"date_suspended": day})
        elif kind == "reactivate":
            subs._update_state("active")
        if len(by_day) > 200 and day.day == 1:
            env.cr.commit()
            env.invalidate_all()


def measure(conf, db):
    """Time the Overview's call and the analysis views' first screens; prints one JSON line."""
    import json

    env, cr = bd.odoo_env(conf, db)
    admin = env.ref("base.user_admin")
    env = env(user=admin, context={"allowed_company_ids": admin.company_ids.ids, "lang": "en_US"})
    Subscription = env["subscription.subscription"]

    def timed(func):
        start = time.perf_counter()
        func()
        return time.perf_counter() - start

    first = timed(Subscription.get_overview_data)
    env.invalidate_all()
    queries_before = cr.sql_log_count
    Subscription.get_overview_data()
    queries = cr.sql_log_count - queries_before
    warm = []
    for _ in range(5):
        env.invalidate_all()
        warm.append(timed(Subscription.get_overview_data))
    log_pivot = timed(lambda: env["subscription.mrr.log"].formatted_read_group(
        [], ["event_date:month", "event_type"], ["mrr_change:sum", "__count"]))
    cohort_pivot = timed(lambda: env["subscription.cohort"].formatted_read_group(
        [], ["date_start:month", "months"], ["retained:avg", "__count"]))
    counts = {
        "subscriptions": Subscription.sudo().search_count([]),
        "log_rows": env["subscription.mrr.log"].sudo().search_count([]),
        "invoices": env["account.move"].sudo().search_count([("subscription_id", "!=", False)]),
        "charges": env["subscription.charge"].sudo().search_count([]),
    }
    data = Subscription.get_overview_data()
    mrr = next(k["value"] for k in data["kpis"] if k["key"] == "mrr")
    print(json.dumps({"first_s": first, "warm_s": statistics.median(warm), "queries": queries,
                      "log_pivot_s": log_pivot, "cohort_pivot_s": cohort_pivot, "mrr": mrr, **counts}))
    cr.close()


def run_one(conf, n):
    import json

    db = f"subscription_billing_bench_overview_{n}"
    subprocess.run(["dropdb", "--if-exists", db], check=True)
    subprocess.run(["createdb", "-T", bd.DB_TEMPLATE, db], check=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--populate", str(n), "--db", db, "--conf", conf], check=True,
                   stdout=subprocess.DEVNULL)
    populate_s = time.perf_counter() - t0
    subprocess.run(["psql", "-d", db, "-qc", "VACUUM ANALYZE"], check=True)
    out = subprocess.run([sys.executable, __file__, "--measure", "--db", db, "--conf", conf], check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result.update(n=n, populate_s=populate_s)
    if not os.environ.get("SB_BENCH_KEEP_DB"):
        subprocess.run(["dropdb", "--if-exists", db], check=True)
    return result


def main():
    args = bd.arguments(__doc__, "bench-overview", [("--measure", {"action": "store_true"})])
    if args.populate:
        return populate(args.conf, args.db, args.populate)
    if args.measure:
        return measure(args.conf, args.db)
    if args.sizes == [1000, 10000]:
        args.sizes = [10000, 50000]
    bd.make_template(args.conf, os.environ["SB_ODOO_DIR"])
    print(f"{'N':>7} {'log rows':>8} {'invoices':>8} {'charges':>7} {'first s':>7} {'warm s':>6} {'queries':>7} "
          f"{'MRR pivot s':>11} {'cohort s':>8} {'build s':>7}", flush=True)
    for n in args.sizes:
        r = run_one(args.conf, n)
        print(f"{r['n']:>7} {r['log_rows']:>8} {r['invoices']:>8} {r['charges']:>7} {r['first_s']:>7.3f} "
              f"{r['warm_s']:>6.3f} {r['queries']:>7} {r['log_pivot_s']:>11.3f} {r['cohort_pivot_s']:>8.3f} "
              f"{r['populate_s']:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
