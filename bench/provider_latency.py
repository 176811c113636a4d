#!/usr/bin/env python3
"""Autopay run against a Stripe-shaped server that answers after a set latency.

Run it through ``./dev bench-latency`` (which sets up Odoo and passes the configuration):

    ./dev bench-latency                          # N = 500, latency 0.3 s, 1 / 4 / 8 / 16 calls at once
    ./dev bench-latency 1000 --latency 0.6 --concurrency 1 8

Odoo's Stripe provider (``payment_stripe``) with a card token per customer is pointed at a local
HTTP server on 127.0.0.1 (``subscription_billing.stripe_api_base``) that answers every
``POST /v1/payment_intents`` with a succeeded PaymentIntent (Stripe's shape, the amount, currency
and metadata sent) after ``--latency`` seconds, as Stripe would over the network. For each
``subscription_billing.charge_concurrency`` the billing day runs (not timed), then one autopay
run in a fresh process (one worker), and the script prints the run's time, charges per second,
the calls in flight at once (at most, and on average while calls were open), and the
exactly-once checks (invoices with two transactions, paid invoices, reconciled payments).
"""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import billing_day as bd


class StripeShapedServer(ThreadingHTTPServer):
    """Answers ``POST /v1/payment_intents`` with a succeeded intent after ``latency`` seconds and
    counts the requests open at once."""

    daemon_threads = True

    def __init__(self, latency):
        super().__init__(("127.0.0.1", 0), StripeHandler)
        self.latency = latency
        self.lock = threading.Lock()
        self.open = self.max_open = self.requests = 0
        self.open_seconds = 0.0  # integral of open requests over time
        self.first = self.last = None
        self._since = None

    def enter(self):
        with self.lock:
            self._tick()
            self.open += 1
            self.requests += 1
            self.max_open = max(self.max_open, self.open)
            self.first = self.first or time.monotonic()

    def leave(self):
        with self.lock:
            self._tick()
            self.open -= 1
            self.last = time.monotonic()

    def _tick(self):
        now = time.monotonic()
        if self._since is not None:
            self.open_seconds += self.open * (now - self._since)
        self._since = now

    def mean_open(self):
        span = (self.last or 0) - (self.first or 0)
        return self.open_seconds / span if span > 0 else 0.0


class StripeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server
        server.enter()
        try:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            time.sleep(server.latency)
            if not self.path.startswith("/v1/payment_intents"):
                return self._answer(404, {"error": {"type": "invalid_request_error", "message": "unknown path"}})
            number = server.requests
            return self._answer(200, {
                "id": f"pi_bench_{number}", "object": "payment_intent", "status": "succeeded",
                "amount": int(form.get("amount", 0)), "amount_received": int(form.get("amount", 0)),
                "currency": form.get("currency", "usd"), "customer": form.get("customer"),
                "payment_method": {"id": form.get("payment_method"), "object": "payment_method", "type": "card",
                                   "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}},
                "metadata": {"odoo_reference": form.get("metadata[odoo_reference]")},
                "latest_charge": f"ch_bench_{number}", "livemode": False,
            })
        finally:
            server.leave()

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", "req_bench")
        self.end_headers()
        self.wfile.write(data)


def populate(conf, db, n, api_base, concurrency):
    """n customers with a Stripe card token each and a subscription due today on autopay."""
    from odoo.fields import Command

    env, cr = bd.odoo_env(conf, db)
    provider = env.ref("payment.payment_provider_stripe")
    card = env.ref("payment.payment_method_card")
    provider.write({
        "stripe_secret_key": "sk_test_bench", "stripe_publishable_key": "pk_test_bench",
        "stripe_webhook_secret": "whsec_bench", "state": "test", "payment_method_ids": [Command.link(card.id)],
    })
    provider.mapped("journal_id")
    params = env["ir.config_parameter"]
    params.set_param("subscription_billing.stripe_api_base", api_base)
    params.set_param("subscription_billing.charge_concurrency", concurrency)
    plans, product = bd.trendhouse_catalog(env)
    today = time.strftime("%Y-%m-%d")
    partners = env["res.partner"].with_context(tracking_disable=True).create([
        {"name": f"Reader {i:06d}", "email": f"reader{i}@example.com"} for i in range(n)])
    tokens = env["payment.token"].create([{
        "provider_id": provider.id, "payment_method_id": card.id, "partner_id": p.id,
        "provider_ref": f"cus_bench_{p.id}", "stripe_payment_method": f"pm_bench_{p.id}", "payment_details": "4242",
    } for p in partners])
    env["subscription.subscription"].with_context(tracking_disable=True).create([{
        "partner_id": p.id, "plan_id": plans[0 if i % 20 < 12 else 1 if i % 20 < 17 else 2].id, "date_start": today,
        "state": "active", "line_ids": [Command.create({"product_id": product.id, "quantity": 1})],
        "payment_token_id": tokens[i].id,
    } for i, p in enumerate(partners)])
    cr.commit()
    cr.close()


def run_one(conf, n, latency, concurrency):
    db = f"subscription_billing_bench_latency_{n}"
    subprocess.run(["dropdb", "--if-exists", db], check=True, stderr=subprocess.DEVNULL)
    subprocess.run(["createdb", "-T", bd.DB_TEMPLATE, db], check=True)
    server = StripeShapedServer(latency)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api_base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        subprocess.run([sys.executable, __file__, "--populate", str(n), "--db", db, "--conf", conf,
                        "--api-base", api_base, "--concurrency", str(concurrency)], check=True)
        subprocess.run([sys.executable, bd.__file__, "--bill", "--db", db, "--conf", conf], check=True,
                       stdout=subprocess.DEVNULL)
        cmd = [sys.executable, os.path.join(os.path.dirname(bd.__file__), "autopay_day.py"), "--charge", "--db", db,
               "--conf", conf]
        wall, peaks = bd.run_workers(cmd, 1, "autopay")
    finally:
        server.shutdown()
    count = lambda sql: int(bd.psql(db, sql))
    result = {
        "concurrency": concurrency, "wall_s": wall, "requests": server.requests, "max_open": server.max_open,
        "mean_open": server.mean_open(), "peak": max(peaks),
        "paid": count("SELECT count(*) FROM account_move WHERE subscription_id IS NOT NULL "
                      "AND payment_state IN ('paid', 'in_payment')"),
        "double": count("SELECT count(*) FROM (SELECT 1 FROM account_invoice_transaction_rel GROUP BY invoice_id "
                        "HAVING count(*) > 1) d"),
        "payments": count("SELECT count(*) FROM account_payment WHERE payment_transaction_id IS NOT NULL"),
        "review": count("SELECT count(*) FROM subscription_charge WHERE needs_review"),
    }
    subprocess.run(["dropdb", "--if-exists", db], check=True)
    return result


def main():
    args = bd.arguments(__doc__, "bench-latency", [
        ("--latency", {"type": float, "default": 0.3, "help": "seconds before each answer (default 0.3)"}),
        ("--concurrency", {"type": int, "nargs": "*", "default": [1, 4, 8, 16],
                           "help": "calls in flight at once per worker to try (default 1 4 8 16)"}),
        ("--api-base", {}),
    ])
    if args.populate:
        return populate(args.conf, args.db, args.populate, args.api_base, args.concurrency[0])
    bd.make_template(args.conf, os.environ["SB_ODOO_DIR"])
    sizes = args.sizes if args.sizes != [1000, 10000] else [500]
    print(f"{'N':>6} {'latency s':>9} {'at once':>7} {'run s':>7} {'charges/s':>9} {'calls':>6} {'max open':>8} "
          f"{'mean open':>9} {'paid':>6} {'payments':>8} {'2x tx':>5} {'review':>6} {'peak RSS MiB':>12}", flush=True)
    for n in sizes:
        for concurrency in args.concurrency:
            r = run_one(args.conf, n, args.latency, concurrency)
            print(f"{n:>6} {args.latency:>9.2f} {concurrency:>7} {r['wall_s']:>7.1f} {n / r['wall_s']:>9.1f} "
                  f"{r['requests']:>6} {r['max_open']:>8} {r['mean_open']:>9.1f} {r['paid']:>6} {r['payments']:>8} "
                  f"{r['double']:>5} {r['review']:>6} {r['peak']:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
