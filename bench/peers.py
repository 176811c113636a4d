#!/usr/bin/env python3
"""The billing day against its peers, on the same data in the same run.

Run it through ``./dev bench-peers`` (which sets up Odoo and passes the configuration):

    ./dev bench-peers              # N = 2,000
    ./dev bench-peers 5000 --workers 2

For each N, three databases get the same N customers due today (Trendhouse mix: 60 % monthly
12.00, 25 % quarterly 32.00, 15 % yearly 120.00, one product taxed 10 %):

- ours: N subscriptions, billed by our billing day (``_cron_generate_invoices``: invoices
  created, posted and marked to send with their PDF), with ``--workers`` processes at once;
- OCA ``contract`` 19.0 with ``contract_invoice_auto_validate`` (the like-for-like peer: it posts
  every invoice), N contracts billed by its scheduled action (``cron_recurring_create_invoice``);
- OCA ``contract`` alone (drafts only), the same.

The peers come from their PyPI wheels (pinned below), unpacked without dependencies into a
scratch addons folder under the cache: they never become dependencies of ours. Each side's
scheduled action runs in a fresh process; the script prints each side's invoices, posted ones,
seconds, invoices per second and peak RSS, then reruns each side's action and prints how many
customers were invoiced twice, and the ratios.
"""

import os
import subprocess
import sys
import time
import zipfile

import billing_day
from billing_day import arguments, odoo_env, psql, run_workers

PEERS = {
    "odoo-addon-contract": "19.0.1.2.1.2",
    "odoo-addon-contract-invoice-auto-validate": "19.0.1.0.0.3",
}
PEER_TEMPLATE = "subscription_billing_bench_peer_tpl"
PEER_MODULES = "contract,contract_invoice_auto_validate"
PRICES = (12.0, 32.0, 120.0)
RULES = (("monthly", 1), ("quarterly", 1), ("yearly", 1))


def peer_addons():
    """The peers' addons folder (downloaded and unpacked once per pinned version)."""
    cache = os.path.join(os.path.expanduser("~/.cache/subscription_billing"), "peers",
                         "-".join(f"{name}=={version}" for name, version in sorted(PEERS.items())))
    addons = os.path.join(cache, "odoo", "addons")
    if not os.path.isdir(os.path.join(addons, "contract_invoice_auto_validate")):
        os.makedirs(cache, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", cache,
                        *(f"{name}=={version}" for name, version in PEERS.items())], check=True)
        for wheel in sorted(f for f in os.listdir(cache) if f.endswith(".whl")):
            with zipfile.ZipFile(os.path.join(cache, wheel)) as archive:
                archive.extractall(cache)
    return addons


def peer_conf(conf):
    """A copy of the bench configuration whose addons path also has the peers' folder."""
    addons = peer_addons()
    path = conf.replace(".conf", "-peers.conf")
    with open(conf) as src, open(path, "w") as dst:
        for line in src:
            if line.startswith("addons_path"):
                line = f"{line.rstrip()},{addons}\n"
            dst.write(line)
    return path


def make_peer_template(conf, odoo_dir):
    fingerprint = ",".join(f"{name}=={version}" for name, version in sorted(PEERS.items()))
    current = psql("postgres", "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                               f"WHERE datname = '{PEER_TEMPLATE}'").strip()
    if current == fingerprint:
        return
    subprocess.run(["dropdb", "--if-exists", PEER_TEMPLATE], check=True)
    print(f"installing {PEER_MODULES} in {PEER_TEMPLATE} ...", flush=True)
    subprocess.run([sys.executable, os.path.join(odoo_dir, "odoo-bin"), "-c", conf, "-d", PEER_TEMPLATE,
                    "-i", PEER_MODULES, "--stop-after-init", "--log-level=warn"], check=True)
    psql("postgres", f"COMMENT ON DATABASE {PEER_TEMPLATE} IS '{fingerprint}'")


def populate_contracts(conf, db, n, auto_post):
    """N customers, each with one contract due today (the Trendhouse mix), as staff would enter them."""
    from odoo.fields import Command

    env, cr = odoo_env(conf, db)
    today = time.strftime("%Y-%m-%d")
    tax = env["account.tax"].create({"name": "Bench VAT 10%", "amount": 10, "type_tax_use": "sale"})
    product = env["product.product"].create({
        "name": "Trendhouse Weekly", "type": "service", "list_price": 12.0, "taxes_id": [Command.set(tax.ids)]})
    journal = env["account.journal"].search([("type", "=", "sale"), ("company_id", "=", env.company.id)], limit=1)
    env.company.auto_post_contract_invoice = auto_post
    chunk = 1000
    for offset in range(0, n, chunk):
        size = min(chunk, n - offset)
        partners = env["res.partner"].with_context(tracking_disable=True).create([
            {"name": f"Reader {offset + i:06d}", "email": f"reader{offset + i}@example.com"} for i in range(size)])
        vals = []
        for i, partner in enumerate(partners):
            k = (offset + i) % 20
            kind = 0 if k < 12 else 1 if k < 17 else 2
            rule, interval = RULES[kind]
            vals.append({
                "name": f"Contract {offset + i:06d}", "partner_id": partner.id, "contract_type": "sale",
                "journal_id": journal.id, "date_start": today, "recurring_rule_type": rule,
                "recurring_interval": interval, "recurring_invoicing_type": "pre-paid",
                "contract_line_ids": [Command.create({
                    "product_id": product.id, "name": "Trendhouse Weekly", "quantity": 1,
                    "price_unit": PRICES[kind], "uom_id": product.uom_id.id})],
            })
        env["contract.contract"].with_context(tracking_disable=True).create(vals)
        cr.commit()
        env.invalidate_all()
    cr.close()


def counts(db, table_filter, dup_sql):
    invoices = int(psql(db, f"SELECT count(*) FROM account_move WHERE move_type = 'out_invoice' AND {table_filter}"))
    posted = int(psql(db, f"SELECT count(*) FROM account_move WHERE move_type = 'out_invoice' AND state = 'posted' "
                          f"AND {table_filter}"))
    return invoices, posted, int(psql(db, dup_sql))


def side(name, conf, db, template, populate_args, cron, workers, table_filter, dup_sql):
    subprocess.run(["dropdb", "--if-exists", db], check=True)
    subprocess.run(["createdb", "-T", template, db], check=True)
    subprocess.run([sys.executable, __file__, *populate_args, "--db", db, "--conf", conf], check=True)
    cmd = [sys.executable, __file__, "--cron", cron, "--db", db, "--conf", conf]
    wall, peaks = run_workers(cmd, workers, name)
    invoices, posted, _dups = counts(db, table_filter, dup_sql)
    run_workers(cmd, 1, name)  # the rerun: nothing more is due today
    invoices_after, _posted, dups = counts(db, table_filter, dup_sql)
    if not os.environ.get("SB_BENCH_KEEP_DB"):
        subprocess.run(["dropdb", "--if-exists", db], check=True)
    return {"side": name, "workers": workers, "invoices": invoices, "posted": posted, "seconds": wall,
            "per_s": invoices / wall if wall else 0.0, "rss": max(peaks), "rerun_added": invoices_after - invoices,
            "duplicates": dups}


def main():
    args = arguments(__doc__, "bench-peers", [
        ("--cron", {"choices": ["ours", "contract"]}),
        ("--populate-contracts", {"type": int}),
        ("--auto-post", {"action": "store_true"}),
    ])
    if args.sizes == [1000, 10000]:
        args.sizes = [2000]
    if args.populate:
        return billing_day.populate(args.conf, args.db, args.populate)
    if args.populate_contracts:
        return populate_contracts(args.conf, args.db, args.populate_contracts, args.auto_post)
    if args.cron == "ours":
        return billing_day.run_scheduled(args.conf, args.db, "subscription.subscription", "_cron_generate_invoices")
    if args.cron == "contract":
        return billing_day.run_scheduled(args.conf, args.db, "contract.contract", "cron_recurring_create_invoice")
    odoo_dir = os.environ["SB_ODOO_DIR"]
    billing_day.make_template(args.conf, odoo_dir)
    pconf = peer_conf(args.conf)
    make_peer_template(pconf, odoo_dir)
    print(f"{'N':>7} {'side':<34} {'workers':>7} {'invoices':>8} {'posted':>7} {'seconds':>8} {'inv/s':>7} "
          f"{'peak RSS MiB':>12} {'rerun +':>7} {'dups':>4}", flush=True)
    ours_dups = ("SELECT count(*) FROM (SELECT 1 FROM account_move WHERE subscription_id IS NOT NULL "
                 "GROUP BY subscription_id, subscription_period_start HAVING count(*) > 1) d")
    peer_dups = ("SELECT count(*) FROM (SELECT partner_id FROM account_move WHERE move_type = 'out_invoice' "
                 "GROUP BY partner_id HAVING count(*) > 1) d")
    for n in args.sizes:
        rows = [
            side("subscription_billing (posts, to send)", args.conf, f"subscription_billing_bench_ours_{n}",
                 billing_day.DB_TEMPLATE, ["--populate", str(n)], "ours", args.workers,
                 "subscription_id IS NOT NULL", ours_dups),
            side("contract + auto_validate (posts)", pconf, f"subscription_billing_bench_peer_{n}", PEER_TEMPLATE,
                 ["--populate-contracts", str(n), "--auto-post"], "contract", 1, "TRUE", peer_dups),
            side("contract (drafts only)", pconf, f"subscription_billing_bench_peer_{n}", PEER_TEMPLATE,
                 ["--populate-contracts", str(n)], "contract", 1, "TRUE", peer_dups),
        ]
        for r in rows:
            print(f"{n:>7} {r['side']:<34} {r['workers']:>7} {r['invoices']:>8} {r['posted']:>7} {r['seconds']:>8.1f} "
                  f"{r['per_s']:>7.1f} {r['rss']:>12.1f} {r['rerun_added']:>7} {r['duplicates']:>4}", flush=True)
        ours, posting, drafts = rows
        print(f"{n:>7} ratios: ours / contract+auto_validate = {ours['per_s'] / posting['per_s']:.2f}x, "
              f"ours / contract drafts = {ours['per_s'] / drafts['per_s']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
