#!/usr/bin/env python3
"""The billing day under Odoo's default worker limits, run by a real server's cron worker.

Run it through ``./dev bench-limits`` (which sets up Odoo and passes the configuration):

    ./dev bench-limits          # N = 5,000
    ./dev bench-limits 10000

Builds N subscriptions due today (Trendhouse mix), starts an Odoo server in multi-worker mode
with Odoo's default limits (``--limit-time-cpu 60 --limit-time-real 120``, one cron worker), makes
the billing day due now and waits until nothing is left due. The day takes longer than one job
may: each job commits its batches and hands over when its share of the limits is used, and Odoo
runs it again at once. Prints the wall time, the number of jobs, whether a worker was ever killed
for a limit, the invoices, duplicates and what is left due.
"""

import os
import re
import subprocess
import sys
import time

import billing_day
from billing_day import arguments, psql

PORT = 8197


def main():
    args = arguments(__doc__, "bench-limits", [])
    if args.sizes == [1000, 10000]:
        args.sizes = [5000]
    if args.populate:
        return billing_day.populate(args.conf, args.db, args.populate)
    odoo_dir = os.environ["SB_ODOO_DIR"]
    billing_day.make_template(args.conf, odoo_dir)
    print(f"{'N':>7} {'wall s':>7} {'jobs':>5} {'killed':>6} {'invoices':>8} {'dups':>4} {'left':>4} "
          f"{'inv/s':>6}", flush=True)
    for n in args.sizes:
        db = f"subscription_billing_bench_limits_{n}"
        subprocess.run(["dropdb", "--if-exists", db], check=True)
        subprocess.run(["createdb", "-T", billing_day.DB_TEMPLATE, db], check=True)
        subprocess.run([sys.executable, __file__, "--populate", str(n), "--db", db, "--conf", args.conf], check=True)
        # Only the billing day runs: the other scheduled actions wait for tomorrow.
        psql(db, "UPDATE ir_cron SET nextcall = now() + interval '1 day'")
        psql(db, "UPDATE ir_cron SET nextcall = now() - interval '1 minute' WHERE id = "
                 "(SELECT res_id FROM ir_model_data WHERE module = 'subscription_billing' "
                 "AND name = 'ir_cron_generate_invoices')")
        log_path = f"/tmp/{db}.log"
        with open(log_path, "w") as log:
            server = subprocess.Popen(
                [sys.executable, os.path.join(odoo_dir, "odoo-bin"), "-c", args.conf, "-d", db,
                 f"--db-filter=^{db}$", f"--http-port={PORT}", "--workers=2", "--max-cron-threads=1",
                 "--limit-time-cpu=60", "--limit-time-real=120", "--log-level=info"],
                stdout=log, stderr=subprocess.STDOUT)
        start = time.perf_counter()
        try:
            while time.perf_counter() - start < 3600:
                time.sleep(5)
                left = int(psql(db, "SELECT count(*) FROM subscription_subscription "
                                    "WHERE state = 'active' AND next_invoice_date <= CURRENT_DATE"))
                if not left:
                    break
            wall = time.perf_counter() - start
        finally:
            server.terminate()
            server.wait()
        with open(log_path) as log:
            text = log.read()
        jobs = len(re.findall(r"Job 'Subscriptions: generate recurring invoices' \(\d+\) "
                              r"(?:fully done|partially done|failed)", text))
        killed = len(re.findall(r"(CPU time limit|virtual real time limit|WorkerCron \(\d+\) timeout)", text))
        invoices = int(psql(db, "SELECT count(*) FROM account_move WHERE subscription_id IS NOT NULL "
                                "AND state = 'posted'"))
        dups = int(psql(db, "SELECT count(*) FROM (SELECT 1 FROM account_move WHERE subscription_id IS NOT NULL "
                            "GROUP BY subscription_id, subscription_period_start HAVING count(*) > 1) d"))
        print(f"{n:>7} {wall:>7.1f} {jobs:>5} {killed:>6} {invoices:>8} {dups:>4} {left:>4} {invoices / wall:>6.1f}",
              flush=True)
        if not os.environ.get("SB_BENCH_KEEP_DB"):
            subprocess.run(["dropdb", "--if-exists", db], check=True)


if __name__ == "__main__":
    main()
