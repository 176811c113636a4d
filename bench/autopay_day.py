#!/usr/bin/env python3
"""Benchmark of an autopay run: N autopay subscriptions billed today, then one charge run.

Run it through ``./dev bench-autopay`` (which sets up Odoo and passes the configuration):

    ./dev bench-autopay                  # N = 1,000 and 10,000, one worker
    ./dev bench-autopay 2000 --workers 2 # two autopay workers at once

Each subscription has a ``payment_demo`` token whose simulated outcome follows the
mix in billing_day.AUTOPAY_MIX (80 % paid, 10 % declined, 5 % pending, 5 % cancelled).
The billing day runs first (not timed); then ``_cron_charge_autopay`` runs in fresh
processes: for every invoice a charge and an offline transaction are committed, the
provider is called, and paid ones are post-processed into a posted, reconciled payment
with a receipt queued. Prints charges per second, peak memory and the exactly-once checks.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import billing_day as bd


def run_one(conf, n, workers):
    db = f"subscription_billing_bench_autopay_{n}"
    subprocess.run(["dropdb", "--if-exists", db], check=True)
    subprocess.run(["createdb", "-T", bd.DB_TEMPLATE, db], check=True)
    subprocess.run([sys.executable, __file__, "--populate", str(n), "--db", db, "--conf", conf], check=True)
    # The billing day sets the scene (not timed), with as many workers as the run.
    bd.run_workers([sys.executable, bd.__file__, "--bill", "--db", db, "--conf", conf], workers, "billing")
    cmd = [sys.executable, __file__, "--charge", "--db", db, "--conf", conf]
    wall, peaks = bd.run_workers(cmd, workers, "autopay")
    charges = bd.count(db, "SELECT count(*) FROM subscription_charge")
    states = dict(line.split("|") for line in bd.psql(
        db, "SELECT state, count(*) FROM subscription_charge GROUP BY state").split())
    result = {
        "n": n, "workers": workers, "wall_s": wall, "charges": charges,
        "done": int(states.get("done", 0)), "failed": int(states.get("failed", 0)),
        "pending": int(states.get("pending", 0)),
        "paid": bd.count(db, "SELECT count(*) FROM account_move WHERE subscription_id IS NOT NULL "
                          "AND payment_state IN ('paid', 'in_payment')"),
        "payments": bd.count(db, "SELECT count(*) FROM account_payment WHERE payment_transaction_id IS NOT NULL"),
        # Charged twice: more than one transaction of an invoice that took or may take money (a
        # charge cancelled before its call, e.g. its invoice was locked, never reached the provider).
        "double": bd.count(db, "SELECT count(*) FROM (SELECT 1 FROM account_invoice_transaction_rel r "
                            "JOIN payment_transaction t ON t.id = r.transaction_id "
                            "WHERE t.state IN ('done', 'pending', 'authorized') GROUP BY r.invoice_id "
                            "HAVING count(*) > 1) d"),
        "receipts": bd.count(db, "SELECT count(*) FROM mail_mail m JOIN mail_message mm ON mm.id = m.mail_message_id "
                              "WHERE mm.model = 'subscription.charge'"),
        "per_s": charges / wall if wall else 0, "peak_rss_mib": max(peaks),
    }
    subprocess.run(["dropdb", "--if-exists", db], check=True)
    return result


def main():
    args = bd.arguments(__doc__, "bench-autopay", [("--charge", {"action": "store_true"})])
    if args.populate:
        return bd.populate(args.conf, args.db, args.populate, autopay=True)
    if args.charge:
        return bd.run_scheduled(args.conf, args.db, "subscription.charge", "_cron_charge_autopay")
    bd.make_template(args.conf, os.environ["SB_ODOO_DIR"])
    print(f"{'N':>7} {'workers':>7} {'charges':>7} {'paid':>6} {'failed':>6} {'pending':>7} {'payments':>8} "
          f"{'2x tx':>5} {'mails':>6} {'run s':>7} {'charges/s':>9} {'peak RSS MiB':>12}", flush=True)
    for n in args.sizes:
        r = run_one(args.conf, n, args.workers)
        print(f"{r['n']:>7} {r['workers']:>7} {r['charges']:>7} {r['done']:>6} {r['failed']:>6} {r['pending']:>7} "
              f"{r['payments']:>8} {r['double']:>5} {r['receipts']:>6} {r['wall_s']:>7.1f} {r['per_s']:>9.1f} "
              f"{r['peak_rss_mib']:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
