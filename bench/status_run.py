#!/usr/bin/env python3
"""Benchmark of the daily status run: N manual-payer subscriptions billed, then one status run.

Run it through ``./dev bench-status`` (which sets up Odoo and passes the configuration):

    ./dev bench-status                   # N = 1,000 and 10,000, one worker
    ./dev bench-status 50000 --workers 2 # two workers at once on the same base

For each N it copies the benchmarks' template database, creates N customers and N running
subscriptions (Trendhouse mix, paying by hand), runs the billing day (not timed; two workers),
then sets the scene of a day in SQL, per 20 subscriptions (not timed):

- 1 has its invoice due 5 days ago: the run makes it past due and e-mails a payment reminder;
- 1 has its invoice due 20 days ago (past the 14-day grace period): past due, then suspended,
  e-mailed, and its salesperson gets an activity;
- 1 ends its one-year term in 10 days without automatic renewal: renewal reminder e-mailed and
  a renewal opportunity in the CRM pipeline;
- 17 are in good standing: the run only looks at them (every step's domain).

Then it times ``_cron_update_statuses`` (every step of the daily status run: reactivation,
dunning, renewal reminders and opportunities, suspension, card expiry, price-change notices,
trial ends) in fresh processes, prints the wall time (with Odoo's start-up) and the run's own
time, subscriptions looked at and moved per second of the run, peak memory, what was done, and
the time of a second run and what it added (nothing, when it is idempotent).
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import billing_day as bd

SCENE = """
UPDATE account_move m SET invoice_date_due = CURRENT_DATE - 5 FROM subscription_subscription s
 WHERE m.subscription_id = s.id AND s.id % 20 = 0;
UPDATE account_move_line l SET date_maturity = CURRENT_DATE - 5 FROM account_move m, subscription_subscription s
 WHERE l.move_id = m.id AND m.subscription_id = s.id AND s.id % 20 = 0 AND l.date_maturity IS NOT NULL;
UPDATE account_move m SET invoice_date_due = CURRENT_DATE - 20 FROM subscription_subscription s
 WHERE m.subscription_id = s.id AND s.id % 20 = 1;
UPDATE account_move_line l SET date_maturity = CURRENT_DATE - 20 FROM account_move m, subscription_subscription s
 WHERE l.move_id = m.id AND m.subscription_id = s.id AND s.id % 20 = 1 AND l.date_maturity IS NOT NULL;
UPDATE subscription_subscription SET date_end = CURRENT_DATE + 10, auto_renew = false WHERE id % 20 = 2;
"""


def outcome(db):
    """What the status run did so far: ``{name: count}``."""
    states = dict(line.split("|") for line in bd.psql(
        db, "SELECT state, count(*) FROM subscription_subscription GROUP BY state").split())
    return {
        "past_due": int(states.get("past_due", 0)), "suspended": int(states.get("suspended", 0)),
        "reminded": bd.count(db, "SELECT count(*) FROM subscription_subscription "
                                 "WHERE renewal_reminded_for IS NOT NULL"),
        "leads": bd.count(db, "SELECT count(*) FROM crm_lead"),
        "mails": bd.count(db, "SELECT count(*) FROM mail_mail m JOIN mail_message mm "
                              "ON mm.id = m.mail_message_id WHERE mm.model = 'subscription.subscription'"),
        "activities": bd.count(db, "SELECT count(*) FROM mail_activity WHERE res_model = 'subscription.subscription'"),
    }


def run_one(conf, n, workers):
    db = f"subscription_billing_bench_status_{n}"
    subprocess.run(["dropdb", "--if-exists", db], check=True)
    subprocess.run(["createdb", "-T", bd.DB_TEMPLATE, db], check=True)
    subprocess.run([sys.executable, bd.__file__, "--populate", str(n), "--db", db, "--conf", conf], check=True)
    bd.run_workers([sys.executable, bd.__file__, "--bill", "--db", db, "--conf", conf], 2, "billing")
    bd.psql(db, SCENE)
    bd.psql(db, "VACUUM ANALYZE")
    cmd = [sys.executable, __file__, "--statuses", "--db", db, "--conf", conf]
    wall, runs = bd.run_workers_timed(cmd, workers, "status")
    done = outcome(db)
    _wall, reruns = bd.run_workers_timed(cmd, 1, "status")
    again = outcome(db)
    subscriptions = bd.count(db, "SELECT count(*) FROM subscription_subscription")
    if not os.environ.get("SB_BENCH_KEEP_DB"):
        subprocess.run(["dropdb", "--if-exists", db], check=True)
    # Subscriptions that changed state or got their renewal reminder (suspended ones went past due first).
    moved = done["past_due"] + 2 * done["suspended"] + done["reminded"]
    run_s = max(seconds for seconds, _rss in runs)
    return {
        "n": subscriptions, "workers": workers, "wall_s": wall, "run_s": run_s, **done, "moved": moved,
        "subs_per_s": subscriptions / run_s if run_s else 0, "moved_per_s": moved / run_s if run_s else 0,
        "peak_rss_mib": max(rss for _s, rss in runs), "rerun_s": reruns[0][0],
        "rerun_added": sum(again[k] - done[k] for k in ("mails", "leads", "activities")),
    }


def main():
    args = bd.arguments(__doc__, "bench-status", [("--statuses", {"action": "store_true"})])
    if args.populate:
        return bd.populate(args.conf, args.db, args.populate)
    if args.statuses:
        return bd.run_scheduled(args.conf, args.db, "subscription.subscription", "_cron_update_statuses")
    bd.make_template(args.conf, os.environ["SB_ODOO_DIR"])
    print(f"{'N':>7} {'workers':>7} {'past due':>8} {'suspended':>9} {'reminded':>8} {'leads':>5} {'mails':>5} "
          f"{'acts':>5} {'wall s':>7} {'run s':>7} {'subs/s':>7} {'moved/s':>7} {'peak RSS MiB':>12} {'rerun s':>7} "
          f"{'rerun +':>7}", flush=True)
    for n in args.sizes:
        r = run_one(args.conf, n, args.workers)
        print(f"{r['n']:>7} {r['workers']:>7} {r['past_due']:>8} {r['suspended']:>9} {r['reminded']:>8} "
              f"{r['leads']:>5} {r['mails']:>5} {r['activities']:>5} {r['wall_s']:>7.1f} {r['run_s']:>7.1f} "
              f"{r['subs_per_s']:>7.0f} "
              f"{r['moved_per_s']:>7.1f} {r['peak_rss_mib']:>12.1f} {r['rerun_s']:>7.1f} {r['rerun_added']:>7}",
              flush=True)


if __name__ == "__main__":
    main()
