#!/usr/bin/env python3
"""The billing day and the autopay run drained by OCA queue_job's job runner.

Run it through ``./dev bench-queue`` (which sets up Odoo and passes the configuration):

    ./dev bench-queue                    # N = 2,000, 1 then 2 workers, billing day and autopay run
    ./dev bench-queue 5000 --workers 2   # only 2 workers

For each N and number of workers: a database with the addon, ``payment_demo`` and ``queue_job``
gets N subscriptions due today on autopay (Trendhouse mix, ``payment_demo`` tokens with the
outcomes of ``billing_day.AUTOPAY_MIX``); an Odoo server starts with ``--workers W``,
``server_wide_modules = base,web,queue_job`` and the channel ``root.subscription:W`` (queue_job's
runner, in the server, hands each job to a worker over HTTP; no scheduled action runs). Then,
timed: the billing day's scheduled action enqueues its batches and the runner drains them; then
the autopay run's. Prints per run the jobs, wall time from the enqueuing to the last job done,
items per second, the peak memory of a worker, failed jobs, and the exactly-once checks.
"""

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import billing_day as bd

DB_TEMPLATE = "subscription_billing_bench_queue_tpl"
MODULES = bd.TEMPLATE_MODULES + ",queue_job"
PORT = 8196
WAITING = "('wait_dependencies', 'pending', 'enqueued', 'started')"


def server_conf(conf, workers):
    path = f"{conf}.queue{workers}"
    with open(conf) as src, open(path, "w") as dst:
        dst.write(src.read().rstrip() + "\nserver_wide_modules = base,web,queue_job\n")
        dst.write(f"\n[queue_job]\nchannels = root:{workers},root.subscription:{workers}\n"
                  f"host = 127.0.0.1\nport = {PORT}\n")
    return path


def worker_peak_rss(server, peak, done):
    import psutil

    proc = psutil.Process(server.pid)
    while not done.is_set():
        try:
            for child in proc.children():
                peak[0] = max(peak[0], child.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.2)


wait_for_server = bd.wait_for_server


def drain(db, cmd, what):
    """Run ``cmd`` (a scheduled action enqueuing its batches), then wait until no job waits."""
    first = int(bd.psql(db, "SELECT coalesce(max(id), 0) FROM queue_job"))
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    enqueued = time.perf_counter() - start
    while int(bd.psql(db, f"SELECT count(*) FROM queue_job WHERE state IN {WAITING}")):
        if time.perf_counter() - start > 3600:
            raise SystemExit(f"{what}: jobs still waiting after an hour")
        time.sleep(0.5)
    wall = time.perf_counter() - start
    jobs = int(bd.psql(db, f"SELECT count(*) FROM queue_job WHERE id > {first}"))
    failed = int(bd.psql(db, f"SELECT count(*) FROM queue_job WHERE id > {first} AND state = 'failed'"))
    return wall, enqueued, jobs, failed


def run_one(conf, n, workers):
    db = f"subscription_billing_bench_queue_{n}"
    subprocess.run(["dropdb", "--if-exists", db], check=True, stderr=subprocess.DEVNULL)
    subprocess.run(["createdb", "-T", DB_TEMPLATE, db], check=True)
    subprocess.run([sys.executable, os.path.join(os.path.dirname(bd.__file__), "autopay_day.py"), "--populate",
                    str(n), "--db", db, "--conf", conf], check=True)
    bd.psql(db, "UPDATE ir_cron SET active = false")  # only what the script enqueues runs
    log = open(f"/tmp/{db}.log", "w")  # noqa: SIM115  (closed below)
    server = subprocess.Popen(
        [sys.executable, os.path.join(os.environ["SB_ODOO_DIR"], "odoo-bin"), "-c", server_conf(conf, workers),
         "-d", db, f"--db-filter=^{db}$", f"--http-port={PORT}", f"--workers={workers}", "--max-cron-threads=0",
         "--limit-time-cpu=600", "--limit-time-real=1200", "--log-level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    peak, done = [0], threading.Event()
    sampler = threading.Thread(target=worker_peak_rss, args=(server, peak, done), daemon=True)
    try:
        wait_for_server(PORT)
        sampler.start()
        bill = drain(db, [sys.executable, bd.__file__, "--bill", "--db", db, "--conf", conf], "billing")
        charge = drain(db, [sys.executable, os.path.join(os.path.dirname(bd.__file__), "autopay_day.py"), "--charge",
                            "--db", db, "--conf", conf], "autopay")
    finally:
        done.set()
        server.terminate()
        server.wait()
        log.close()
    count = lambda sql: int(bd.psql(db, sql))
    result = {
        "bill": bill, "charge": charge, "peak": peak[0] / 2**20,
        "invoices": count("SELECT count(*) FROM account_move WHERE subscription_id IS NOT NULL AND state = 'posted'"),
        "dups": count("SELECT count(*) FROM (SELECT 1 FROM account_move WHERE subscription_id IS NOT NULL "
                      "GROUP BY subscription_id, subscription_period_start HAVING count(*) > 1) d"),
        "left": count("SELECT count(*) FROM subscription_subscription WHERE next_invoice_date <= CURRENT_DATE"),
        "charges": count("SELECT count(*) FROM subscription_charge"),
        "double": count("SELECT count(*) FROM (SELECT 1 FROM account_invoice_transaction_rel GROUP BY invoice_id "
                        "HAVING count(*) > 1) d"),
        "uncharged": count("SELECT count(*) FROM account_move m WHERE m.subscription_id IS NOT NULL AND NOT EXISTS "
                           "(SELECT 1 FROM subscription_charge c WHERE c.invoice_id = m.id)"),
    }
    if not os.environ.get("SB_BENCH_KEEP_DB"):
        subprocess.run(["dropdb", "--if-exists", db], check=True)
    return result


def main():
    args = bd.arguments(__doc__, "bench-queue", [])
    workers_list = [args.workers] if args.workers != 1 else [1, 2]
    sizes = args.sizes if args.sizes != [1000, 10000] else [2000]
    bd.make_template(args.conf, os.environ["SB_ODOO_DIR"], db=DB_TEMPLATE, modules=MODULES)
    print(f"{'N':>6} {'workers':>7} {'run':>8} {'jobs':>5} {'failed':>6} {'wall s':>7} {'items/s':>7} "
          f"{'enqueue s':>9} {'done':>6} {'dups/2x':>7} {'left':>5} {'worker RSS MiB':>14}", flush=True)
    for n in sizes:
        for workers in workers_list:
            r = run_one(args.conf, n, workers)
            for name, (wall, enq, jobs, failed), items, bad, left in (
                    ("billing", r["bill"], r["invoices"], r["dups"], r["left"]),
                    ("autopay", r["charge"], r["charges"], r["double"], r["uncharged"])):
                print(f"{n:>6} {workers:>7} {name:>8} {jobs:>5} {failed:>6} {wall:>7.1f} {items / wall:>7.1f} "
                      f"{enq:>9.1f} {items:>6} {bad:>7} {left:>5} {r['peak']:>14.1f}", flush=True)


if __name__ == "__main__":
    main()
