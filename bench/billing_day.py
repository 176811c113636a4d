#!/usr/bin/env python3
"""Benchmark of the billing day: N subscriptions (Trendhouse mix), one scheduled run.

Run it through ``./dev bench`` (which sets up Odoo and passes the configuration):

    ./dev bench                 # N = 1,000 and 10,000, one worker
    ./dev bench 2000 --workers 2   # two billing workers at once on the same base

For each N it copies a template database with the addon installed, creates N
customers and N running subscriptions due today (60 % monthly 12.00, 25 %
quarterly 32.00, 15 % yearly 120.00, with a 10 % tax), then runs the billing
day (``_cron_generate_invoices``, committed batches, invoices posted and marked
to send) in a fresh process and prints wall time, invoices per second and peak
memory (RSS). With ``--workers 2`` it also checks that no period was invoiced
twice. With ``--send`` it then runs the sending job (``_cron_send_invoices``:
official PDFs through Odoo's ``account.move.send``, e-mails with the PDF) in a
fresh process and prints its own time and invoices per second.
"""

import argparse
import os
import subprocess
import sys
import threading
import time

DB_TEMPLATE = "subscription_billing_bench_tpl"
TEMPLATE_MODULES = "subscription_billing,payment_demo"
# Autopay outcomes of the demo tokens, per 20 subscriptions: 16 paid, 2 declined (retried),
# 1 pending (bank debit), 1 cancelled (permanent failure).
AUTOPAY_MIX = ["done"] * 16 + ["error"] * 2 + ["pending", "cancel"]


def odoo_env(conf, db):
    import odoo  # noqa: F401  (imported after the configuration is known)
    from odoo import api
    from odoo.modules.registry import Registry
    from odoo.tools import config

    config.parse_config(["-c", conf, "--log-level=warn"], setup_logging=True)
    import logging

    logging.getLogger("stripe").setLevel(logging.WARNING)  # one line per API call otherwise
    registry = Registry(db)
    cr = registry.cursor()
    return api.Environment(cr, api.SUPERUSER_ID, {}), cr


def psql(db, sql):
    return subprocess.run(["psql", "-d", db, "-Atc", sql], check=True, capture_output=True, text=True).stdout


def addon_fingerprint():
    """Hash of the addon's files, to rebuild the template database when the code changed."""
    import hashlib

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha1(TEMPLATE_MODULES.encode())
    for folder, dirs, files in os.walk(root):  # top-down: the folders skipped below are not walked
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("bench", "tests", "__pycache__"))
        for name in sorted(files):
            if name.endswith((".py", ".xml", ".csv")):
                with open(os.path.join(folder, name), "rb") as f:
                    digest.update(name.encode() + f.read())
    return digest.hexdigest()


def make_template(conf, odoo_dir, db=DB_TEMPLATE, modules=TEMPLATE_MODULES):
    fingerprint = addon_fingerprint() + modules
    current = psql("postgres", "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                               f"WHERE datname = '{db}'").strip()
    if current == fingerprint:
        return
    subprocess.run(["dropdb", "--if-exists", db], check=True)
    print(f"installing {modules} in {db} ...", flush=True)
    subprocess.run(
        [sys.executable, os.path.join(odoo_dir, "odoo-bin"), "-c", conf, "-d", db,
         "-i", modules, "--stop-after-init", "--log-level=warn"],
        check=True,
    )
    psql("postgres", f"COMMENT ON DATABASE {db} IS '{fingerprint}'")


def trendhouse_catalog(env):
    """The Trendhouse plans (monthly 12.00, quarterly 32.00, yearly 120.00, 1-year terms) and their
    product, taxed 10 %: ``(plans, product)``."""
    from odoo.fields import Command

    tax = env["account.tax"].create({"name": "Bench VAT 10%", "amount": 10, "type_tax_use": "sale"})
    plans = env["subscription.plan"].create([
        {"name": "Monthly", "billing_period_value": 1, "billing_period_unit": "month", "term_value": 1},
        {"name": "Quarterly", "billing_period_value": 3, "billing_period_unit": "month", "term_value": 1},
        {"name": "Yearly", "billing_period_value": 1, "billing_period_unit": "year", "term_value": 1},
    ])
    product = env["product.product"].create({
        "name": "Trendhouse Weekly", "type": "service", "recurring_invoice": True, "list_price": 12.0,
        "taxes_id": [Command.set(tax.ids)],
        "subscription_pricing_ids": [Command.create({"plan_id": p.id, "price": price})
                                     for p, price in zip(plans, (12.0, 32.0, 120.0), strict=True)],
    })
    return plans, product


def populate(conf, db, n, autopay=False):
    """Create n customers and n active subscriptions due today (on autopay with demo tokens)."""
    from odoo.fields import Command

    env, cr = odoo_env(conf, db)
    today = time.strftime("%Y-%m-%d")
    plans, product = trendhouse_catalog(env)
    chunk = 1000
    for offset in range(0, n, chunk):
        size = min(chunk, n - offset)
        partners = env["res.partner"].with_context(tracking_disable=True).create([
            {"name": f"Reader {offset + i:06d}", "email": f"reader{offset + i}@example.com"} for i in range(size)
        ])
        tokens = env["payment.token"]
        if autopay:
            provider = env.ref("payment.payment_provider_demo")
            # As when staff enable a provider: its journal and payment method line exist before
            # any charge (computed lazily otherwise, and two first workers would both create one).
            provider.mapped("journal_id")
            tokens = env["payment.token"].create([{
                "provider_id": provider.id,
                "payment_method_id": env.ref("payment_demo.payment_method_demo").id,
                "partner_id": partner.id, "provider_ref": f"bench-{partner.id}", "payment_details": "4242",
                "demo_simulated_state": AUTOPAY_MIX[(offset + i) % len(AUTOPAY_MIX)],
            } for i, partner in enumerate(partners)])
        vals = []
        for i, partner in enumerate(partners):
            k = (offset + i) % 20
            plan = plans[0] if k < 12 else plans[1] if k < 17 else plans[2]
            vals.append({
                "partner_id": partner.id, "plan_id": plan.id, "date_start": today, "state": "active",
                "line_ids": [Command.create({"product_id": product.id, "quantity": 1})],
                "payment_token_id": tokens[i].id if tokens else False,
            })
        env["subscription.subscription"].with_context(tracking_disable=True).create(vals)
        cr.commit()
        env.invalidate_all()
    cr.close()


def measured(func):
    """Run ``func()`` and return (seconds, peak RSS in MiB) of this process.

    With SB_BENCH_PROFILE=<file>, also dump a cProfile of the call there.
    """
    import psutil

    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    profile_path = os.environ.get("SB_BENCH_PROFILE")
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    func()
    elapsed = time.perf_counter() - start
    if profile_path:
        profiler.disable()
        profiler.dump_stats(profile_path)
    done.set()
    sampler.join()
    return elapsed, peak[0] / 2**20


def run_scheduled(conf, db, model, method, batch_size=0, method_kwargs=None):
    """One run of a scheduled action's method (called with ``method_kwargs``) in this process;
    prints 'seconds peak_rss_mib'."""
    env, cr = odoo_env(conf, db)
    if batch_size:
        env["ir.config_parameter"].set_param("subscription_billing.batch_size", batch_size)
        cr.commit()

    def run():
        getattr(env[model], method)(**(method_kwargs or {}))
        cr.commit()

    elapsed, peak = measured(run)
    cr.close()
    print(f"{elapsed:.3f} {peak:.1f}")


def web_server(conf, db, port=8199):
    """An Odoo HTTP server on ``db`` (no scheduled actions), as in production: wkhtmltopdf loads
    the invoice layout's styles and logo from it (without one it fails on them, and Odoo then
    renders invoices one at a time). Returns the process; the caller stops it."""

    server = subprocess.Popen(
        [sys.executable, os.path.join(os.environ["SB_ODOO_DIR"], "odoo-bin"), "-c", conf, "-d", db,
         f"--http-port={port}", f"--db-filter=^{db}$", "--max-cron-threads=0", "--log-level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_server(port)
    psql(db, f"UPDATE ir_config_parameter SET value = 'http://127.0.0.1:{port}' WHERE key = 'web.base.url'")
    psql(db, "DELETE FROM ir_config_parameter WHERE key = 'report.url'")
    psql(db, f"INSERT INTO ir_config_parameter (key, value) VALUES ('report.url', 'http://127.0.0.1:{port}')")
    return server


def wait_for_server(port):
    """Wait until an Odoo server answers on 127.0.0.1:``port`` (at most a minute)."""
    import urllib.request

    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/web/login", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no Odoo server on port {port}")


def run_workers_timed(cmd, workers, what):
    """Run ``cmd`` (a ``run_scheduled`` step) in ``workers`` processes at once; returns (wall
    seconds from the processes' start, [(the run's own seconds, peak RSS MiB) per process])."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    outs = [p.communicate()[0].strip() for p in procs]
    wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise SystemExit(f"a {what} worker failed")
    return wall, [tuple(float(x) for x in o.splitlines()[-1].split()[:2]) for o in outs]


def run_workers(cmd, workers, what):
    """Run ``cmd`` in ``workers`` processes at once; returns (wall seconds, each one's peak RSS)."""
    wall, runs = run_workers_timed(cmd, workers, what)
    return wall, [rss for _seconds, rss in runs]


def count(db, sql):
    """The integer a one-value query returns."""
    return int(psql(db, sql))


def run_one(conf, n, workers, batch_size, with_sending=False, send_batch_size=0, send_workers=1):
    db = f"subscription_billing_bench_{n}"
    subprocess.run(["dropdb", "--if-exists", db], check=True)
    subprocess.run(["createdb", "-T", DB_TEMPLATE, db], check=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--populate", str(n), "--db", db, "--conf", conf], check=True)
    populate_s = time.perf_counter() - t0
    cmd = [sys.executable, __file__, "--bill", "--db", db, "--conf", conf, "--batch-size", str(batch_size or 0)]
    wall, peaks = run_workers(cmd, workers, "billing")
    send_s = send_peak = 0.0
    if with_sending:
        server = web_server(conf, db)
        try:
            send_s, send_peaks = run_workers([sys.executable, __file__, "--send", "--db", db, "--conf", conf,
                                              "--send-batch-size", str(send_batch_size)], send_workers, "sending")
        finally:
            server.terminate()
            server.wait()
        send_peak = max(send_peaks)
    pdfs = int(psql(db, "SELECT count(*) FROM ir_attachment WHERE res_model = 'account.move' "
                        "AND res_field = 'invoice_pdf_report_file'"))
    invoices = int(psql(db, "SELECT count(*) FROM account_move WHERE subscription_id IS NOT NULL"))
    posted = int(psql(db, "SELECT count(*) FROM account_move WHERE subscription_id IS NOT NULL AND state='posted'"))
    dups = int(psql(db, "SELECT count(*) FROM (SELECT 1 FROM account_move WHERE subscription_id IS NOT NULL "
                        "GROUP BY subscription_id, subscription_period_start HAVING count(*) > 1) d"))
    mails = int(psql(db, "SELECT count(*) FROM mail_mail m JOIN mail_message mm ON mm.id = m.mail_message_id "
                         "WHERE mm.model = 'account.move'"))
    left = int(psql(db, "SELECT count(*) FROM subscription_subscription WHERE next_invoice_date <= CURRENT_DATE"))
    if not os.environ.get("SB_BENCH_KEEP_DB"):
        subprocess.run(["dropdb", "--if-exists", db], check=True)
    return {
        "n": n, "workers": workers, "populate_s": populate_s, "wall_s": wall, "invoices": invoices,
        "posted": posted, "duplicates": dups, "mails": mails, "still_due": left,
        "inv_per_s": invoices / wall if wall else 0, "peak_rss_mib": max(peaks),
        "send_s": send_s, "send_per_s": invoices / send_s if send_s else 0, "send_peak_mib": send_peak, "pdfs": pdfs,
    }


def arguments(description, command, extra):
    """Command line shared by the benchmarks: sizes, workers, and the internal sub-steps."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--conf", default=os.environ.get("SB_ODOO_CONF"))
    parser.add_argument("--db")
    parser.add_argument("--populate", type=int)
    for name, kwargs in extra:
        parser.add_argument(name, **kwargs)
    args = parser.parse_args()
    if not args.conf:
        raise SystemExit(f"run it through ./dev {command} (no Odoo configuration given)")
    return args


def main():
    args = arguments(__doc__, "bench", [
        ("--batch-size", {"type": int, "default": 0, "help": "subscriptions per committed batch (default 200)"}),
        ("--bill", {"action": "store_true"}),
        ("--send", {"action": "store_true",
                    "help": "also run the sending job (PDFs and e-mails) after the billing day, and time it"}),
        ("--send-batch-size", {"type": int, "default": 0,
                               "help": "invoices per PDF batch of the sending job (default: the job's own)"}),
        ("--send-workers", {"type": int, "default": 1, "help": "sending workers at once (default 1)"}),
    ])
    if args.populate:
        return populate(args.conf, args.db, args.populate)
    if args.bill:
        return run_scheduled(args.conf, args.db, "subscription.subscription", "_cron_generate_invoices",
                             args.batch_size)
    if args.send and args.db:
        return run_scheduled(args.conf, args.db, "account.move", "_cron_send_invoices",
                             method_kwargs={"batch_size": args.send_batch_size} if args.send_batch_size else None)
    make_template(args.conf, os.environ["SB_ODOO_DIR"])
    print(f"{'N':>7} {'workers':>7} {'invoices':>8} {'dups':>4} {'mails':>6} {'left':>4} "
          f"{'billing s':>9} {'inv/s':>7} {'peak RSS MiB':>12}"
          + (f" {'pdfs':>6} {'sending s':>9} {'sent/s':>7} {'RSS MiB':>7}" if args.send else ""), flush=True)
    for n in args.sizes:
        r = run_one(args.conf, n, args.workers, args.batch_size, with_sending=args.send,
                    send_batch_size=args.send_batch_size, send_workers=args.send_workers)
        print(f"{r['n']:>7} {r['workers']:>7} {r['invoices']:>8} {r['duplicates']:>4} {r['mails']:>6} "
              f"{r['still_due']:>4} {r['wall_s']:>9.1f} {r['inv_per_s']:>7.1f} {r['peak_rss_mib']:>12.1f}"
              + (f" {r['pdfs']:>6} {r['send_s']:>9.1f} {r['send_per_s']:>7.1f} {r['send_peak_mib']:>7.1f}"
                 if args.send else ""), flush=True)


if __name__ == "__main__":
    main()
