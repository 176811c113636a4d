#!/usr/bin/env python3
"""Resilience checks of the billing day and the autopay run, with real processes.

Run by ``./dev test`` after the unit tests (``./dev test-resilience`` runs them alone). Each
check copies a database with the addon installed (``--template``), creates a small base (the
Trendhouse mix, a fifth of the monthly ones three months behind so that they catch up several
periods), and runs the scheduled actions' methods in separate Odoo processes, as workers do:

- ``billing-kill``: the billing worker is killed (SIGKILL) in the middle of the day, then rerun;
- ``billing-two-workers``: two billing workers on the same day at once;
- ``billing-connection-killed``: the billing worker's database connection is terminated
  (``pg_terminate_backend``) in the middle of a batch: the worker stops, the rerun finishes;
- ``autopay-kill``: the autopay worker is killed in the middle of its charges, then rerun (an
  hour later, the charge that was in flight goes to review: it is never sent again);
- ``autopay-two-workers``: two autopay workers at once;
- ``autopay-recovery-held``: a run starts while answered charges wait for their payments and
  another transaction holds them (a live worker post-processing them): it leaves them to their
  holder and charges the rest; once released, the next run finishes them;
- ``queue-two-runners``: with OCA queue_job, two Odoo servers of two workers each with its job
  runner (queue_job keeps one runner dispatching, the other on standby) drain the billing day's
  and the autopay run's jobs, several at once.

After each: no period invoiced twice, no gap in any subscription's periods, every next invoice
date right after its last invoiced period, no draft left, nothing left due; for autopay, no
invoice with two transactions, every paid transaction with its reconciled payment, every
autopay invoice with one charge. Any breach fails the run (exit code 1).
"""

import argparse
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import billing_day as bd

AUTOPAY = os.path.join(os.path.dirname(bd.__file__), "autopay_day.py")
BATCH = 10  # small batches: the interruptions land in the middle of a run


def q(db, sql):
    out = bd.psql(db, sql).strip()
    return int(out) if out.lstrip("-").isdigit() else out


def fresh_db(template, name, n, autopay=False):
    subprocess.run(["dropdb", "--if-exists", name], check=True, stderr=subprocess.DEVNULL)
    subprocess.run(["createdb", "-T", template, name], check=True)
    subprocess.run([sys.executable, AUTOPAY if autopay else bd.__file__, "--populate", str(n), "--db", name,
                    "--conf", CONF], check=True)
    # A fifth of the monthly subscriptions started three months ago and were never billed.
    q(name, "UPDATE subscription_subscription s SET date_start = date_start - interval '3 months', "
            "next_invoice_date = next_invoice_date - interval '3 months', date_end = date_end - interval '3 months' "
            "FROM subscription_plan p WHERE p.id = s.plan_id AND p.billing_period_unit = 'month' "
            "AND p.billing_period_value = 1 AND s.id % 5 = 0")
    q(name, f"INSERT INTO ir_config_parameter (key, value, create_date, write_date) VALUES "
            f"('subscription_billing.batch_size', '{BATCH}', now(), now()), "
            f"('subscription_billing.charge_batch_size', '{BATCH}', now(), now()) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
    return name


def billing_cmd(db):
    return [sys.executable, bd.__file__, "--bill", "--db", db, "--conf", CONF]


def autopay_cmd(db):
    return [sys.executable, AUTOPAY, "--charge", "--db", db, "--conf", CONF]


def interrupt_when(cmd, db, sql, threshold, action):
    """Start ``cmd``; once ``sql`` counts ``threshold`` rows, apply ``action(process)``.

    :return: (rows counted when interrupted or None when the run ended first, return code)
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = None
    while proc.poll() is None:
        done = q(db, sql)
        if done >= threshold:
            seen = done
            action(proc)
            break
        time.sleep(0.05)
    err = proc.communicate()[1]
    return seen, proc.returncode, err


def kill9(proc):
    os.kill(proc.pid, signal.SIGKILL)


def terminate_connections_of(db):
    def action(_proc):
        q(db, f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}' "
              "AND pid <> pg_backend_pid()")
    return action


def billing_breaches(db, finished=True):
    """What is wrong with the invoices and dates of ``db`` (a list of sentences, empty when right)."""
    live = ("SELECT subscription_id AS sub, subscription_period_start AS s, subscription_period_end AS e "
            "FROM account_move WHERE subscription_id IS NOT NULL AND move_type = 'out_invoice' AND state != 'cancel'")
    twice = f"SELECT 1 FROM ({live}) i GROUP BY sub, s HAVING count(*) > 1"
    previous = f"SELECT s, lag(e) OVER (PARTITION BY sub ORDER BY s) AS prev FROM ({live}) i"
    firsts = f"SELECT sub, min(s) AS first FROM ({live}) i GROUP BY sub"
    lasts = f"SELECT sub, max(e) AS last FROM ({live}) i GROUP BY sub"
    checks = {
        "periods invoiced twice": f"SELECT count(*) FROM ({twice}) d",
        "gaps between invoiced periods": (f"SELECT count(*) FROM ({previous}) g "
                                          "WHERE prev IS NOT NULL AND s <> prev + 1"),
        "first period not at the start": f"SELECT count(*) FROM subscription_subscription x JOIN ({firsts}) f "
                                         "ON f.sub = x.id WHERE f.first <> x.date_start",
        "next invoice date not right after the last invoiced period": (
            f"SELECT count(*) FROM subscription_subscription x LEFT JOIN ({lasts}) l ON l.sub = x.id "
            "WHERE x.next_invoice_date <> coalesce(l.last + 1, x.date_start)"),
        "draft invoices left": ("SELECT count(*) FROM account_move "
                                "WHERE subscription_id IS NOT NULL AND state = 'draft'"),
        "subscriptions marked failed": ("SELECT count(*) FROM subscription_subscription "
                                        "WHERE billing_failed_on IS NOT NULL"),
    }
    if finished:
        checks["subscriptions still due"] = ("SELECT count(*) FROM subscription_subscription "
                                             "WHERE next_invoice_date <= CURRENT_DATE")
    return [f"{n} {what}" for what, sql in checks.items() if (n := q(db, sql))]


def autopay_breaches(db, finished=True):
    """What is wrong with the charges of ``db`` (a list of sentences, empty when right). Mid-run
    (``finished`` False) a paid answer may still wait for its payment: the rerun makes it."""
    checks = {
        # A transaction cancelled before it was sent (interrupted, never sent) does not count.
        "invoices with two transactions": (
            "SELECT count(*) FROM (SELECT 1 FROM account_invoice_transaction_rel r JOIN payment_transaction t "
            "ON t.id = r.transaction_id WHERE t.state <> 'cancel' GROUP BY r.invoice_id HAVING count(*) > 1) d"),
        "invoices with two charges": ("SELECT count(*) FROM (SELECT 1 FROM subscription_charge WHERE state <> "
                                      "'cancelled' GROUP BY invoice_id HAVING count(*) > 1) d"),
        "charges sent without being marked sent": (
            "SELECT count(*) FROM subscription_charge c JOIN payment_transaction t ON t.id = c.transaction_id "
            "WHERE t.state <> 'draft' AND c.state <> 'cancelled' AND c.date_sent IS NULL"),
        "cancelled charges whose transaction took money": (
            "SELECT count(*) FROM subscription_charge c JOIN payment_transaction t ON t.id = c.transaction_id "
            "WHERE c.state = 'cancelled' AND t.state IN ('done', 'pending', 'authorized')"),
        "charges marked paid whose transaction is not": (
            "SELECT count(*) FROM subscription_charge c JOIN payment_transaction t ON t.id = c.transaction_id "
            "WHERE c.state = 'done' AND t.state <> 'done'"),
    }
    if finished:
        checks.update({
            "paid transactions without a posted payment": (
                "SELECT count(*) FROM payment_transaction t WHERE t.state = 'done' AND NOT EXISTS (SELECT 1 FROM "
                "account_payment p JOIN account_move m ON m.id = p.move_id WHERE p.payment_transaction_id = t.id "
                "AND m.state = 'posted')"),
            "paid transactions whose invoice is not paid": (
                "SELECT count(*) FROM payment_transaction t JOIN account_invoice_transaction_rel r "
                "ON r.transaction_id = t.id JOIN account_move m ON m.id = r.invoice_id WHERE t.state = 'done' "
                "AND m.payment_state NOT IN ('paid', 'in_payment')"),
            "autopay invoices never charged": (
                "SELECT count(*) FROM account_move m JOIN subscription_subscription s ON s.id = m.subscription_id "
                "WHERE s.payment_token_id IS NOT NULL AND m.state = 'posted' AND NOT EXISTS "
                "(SELECT 1 FROM subscription_charge c WHERE c.invoice_id = m.id AND c.state <> 'cancelled')"),
            "answered charges not finished": (
                "SELECT count(*) FROM subscription_charge c JOIN payment_transaction t ON t.id = c.transaction_id "
                "WHERE c.state = 'pending' AND t.state IN ('done', 'error', 'cancel')"),
        })
    return [f"{n} {what}" for what, sql in checks.items() if (n := q(db, sql))]


def invoices(db):
    return q(db, "SELECT count(*) FROM account_move WHERE subscription_id IS NOT NULL AND move_type = 'out_invoice'")


# === THE CHECKS === #

def interrupted_billing(template, name, n, action, what):
    """A billing day interrupted by ``action`` once a third is invoiced, checked, then rerun.

    :return: (database, breaches, summary, worker's return code, its stderr)
    """
    db = fresh_db(template, name, n)
    seen, rc, err = interrupt_when(billing_cmd(db), db, "SELECT count(*) FROM account_move WHERE subscription_id "
                                   "IS NOT NULL", n // 3, action)
    breaches = [] if seen else [f"the run ended before {what}"]
    breaches += [f"after {what}: {b}" for b in billing_breaches(db, finished=False)]
    partial = invoices(db)
    subprocess.run(billing_cmd(db), check=True, stdout=subprocess.DEVNULL)
    breaches += billing_breaches(db)
    return db, breaches, f"{what} at {partial} invoices (worker rc {rc}), rerun: {invoices(db)}", seen and rc, err


def check_billing_kill(template, n):
    db, breaches, summary, _rc, _err = interrupted_billing(template, "sb_resilience_billing_kill", n, kill9,
                                                           "the kill")
    return db, breaches, summary


def check_billing_two_workers(template, n):
    db = fresh_db(template, "sb_resilience_billing_two", n)
    procs = [subprocess.Popen(billing_cmd(db), stdout=subprocess.DEVNULL) for _ in range(2)]
    rcs = [p.wait() for p in procs]
    breaches = [f"a worker exited with {rc}" for rc in rcs if rc] + billing_breaches(db)
    return db, breaches, f"{invoices(db)} invoices by two workers"


def check_billing_connection_killed(template, n):
    db, breaches, summary, rc, err = interrupted_billing(
        template, "sb_resilience_billing_conn", n, terminate_connections_of("sb_resilience_billing_conn"),
        "the connection was killed")
    if rc == 0:
        breaches.append("the worker went on as if nothing happened")
    if rc and "terminat" not in err and "connection" not in err:
        breaches.append("the worker stopped without saying its connection was lost")
    return db, breaches, summary


def check_autopay_kill(template, n):
    db = fresh_db(template, "sb_resilience_autopay_kill", n, autopay=True)
    subprocess.run(billing_cmd(db), check=True, stdout=subprocess.DEVNULL)
    # Killed just after a call was marked sent: calls are then in flight.
    seen, rc, _err = interrupt_when(autopay_cmd(db), db, "SELECT count(*) FROM subscription_charge "
                                    "WHERE date_sent IS NOT NULL", n // 3, kill9)
    breaches = [] if seen else ["the run ended before it could be killed"]
    breaches += [f"after the kill: {b}" for b in autopay_breaches(db, finished=False)]
    unanswered = ("SELECT count(*) FROM subscription_charge c JOIN payment_transaction t ON t.id = "
                  "c.transaction_id WHERE c.state = 'pending' AND t.state = 'draft' AND c.date_sent IS ")
    in_flight = q(db, unanswered + "NOT NULL")
    never_sent = q(db, unanswered + "NULL")
    subprocess.run(autopay_cmd(db), check=True, stdout=subprocess.DEVNULL)
    # An hour later, the next run puts the charges that were in flight in review (never sent
    # again) and charges again those that were not sent yet.
    q(db, "UPDATE subscription_charge SET date_attempt = date_attempt - interval '2 hours'")
    subprocess.run(autopay_cmd(db), check=True, stdout=subprocess.DEVNULL)
    breaches += autopay_breaches(db)
    lost = q(db, "SELECT count(*) FROM subscription_charge c JOIN payment_transaction t ON t.id = c.transaction_id "
                 "WHERE t.state = 'draft' AND NOT c.needs_review")
    if lost:
        breaches.append(f"{lost} interrupted charges neither finished nor in review")
    review = q(db, "SELECT count(*) FROM subscription_charge WHERE needs_review")
    if review != in_flight:
        breaches.append(f"{review} charges in review, {in_flight} were in flight at the kill")
    charges = q(db, "SELECT count(*) FROM subscription_charge")
    again = q(db, "SELECT count(*) FROM subscription_charge WHERE state = 'cancelled' AND date_sent IS NULL")
    if again != never_sent:
        breaches.append(f"{again} charges cancelled as never sent, {never_sent} were not sent at the kill")
    return db, breaches, (f"killed with {in_flight} call(s) in flight and {never_sent} not sent (rc {rc}): "
                          f"{review} in review, {again} charged again, {charges} charges")


def check_autopay_two_workers(template, n):
    db = fresh_db(template, "sb_resilience_autopay_two", n, autopay=True)
    subprocess.run(billing_cmd(db), check=True, stdout=subprocess.DEVNULL)
    procs = [subprocess.Popen(autopay_cmd(db), stdout=subprocess.DEVNULL) for _ in range(2)]
    rcs = [p.wait() for p in procs]
    breaches = [f"a worker exited with {rc}" for rc in rcs if rc] + autopay_breaches(db)
    charges = q(db, "SELECT count(*) FROM subscription_charge")
    return db, breaches, f"{charges} charges by two workers"


def check_autopay_recovery_held(template, n):
    """A worker's recovery meets charges answered but not yet post-processed by another worker."""
    import psycopg2

    answered = ("FROM subscription_charge c JOIN payment_transaction t ON t.id = c.transaction_id "
                "WHERE c.state = 'pending' AND t.state IN ('done', 'error', 'cancel')")
    for _attempt in range(3):  # the kill must land between an answer and its payment
        db = fresh_db(template, "sb_resilience_autopay_held", n, autopay=True)
        subprocess.run(billing_cmd(db), check=True, stdout=subprocess.DEVNULL)
        interrupt_when(autopay_cmd(db), db, f"SELECT count(*) {answered}", 1, kill9)
        if q(db, f"SELECT count(*) {answered}"):
            break
    else:
        return db, ["no answered charge was left waiting by the kill: the check proved nothing"], ""
    holder = psycopg2.connect(dbname=db)
    try:
        with holder.cursor() as cr:  # another worker post-processing them right now
            cr.execute(f"SELECT c.id {answered} FOR UPDATE OF c")
            held = {row[0] for row in cr.fetchall()}
        try:
            returncode = subprocess.run(autopay_cmd(db), check=False, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, timeout=180).returncode
        except subprocess.TimeoutExpired:
            returncode = "a timeout (it waited for the held charges)"
        left = {int(i) for i in str(q(db, f"SELECT string_agg(c.id::text, ' ') {answered}")).split()}
    finally:
        holder.rollback()
        holder.close()
    breaches = [f"the run beside the held charges ended with {returncode}"] if returncode else []
    if left != held:
        breaches.append(f"{len(held)} answered charges were held, {len(left)} left waiting after the run")
    breaches += [f"beside the held charges: {b}" for b in autopay_breaches(db, finished=False)]
    subprocess.run(autopay_cmd(db), check=True, stdout=subprocess.DEVNULL)
    q(db, "UPDATE subscription_charge SET date_attempt = date_attempt - interval '2 hours'")
    subprocess.run(autopay_cmd(db), check=True, stdout=subprocess.DEVNULL)
    breaches += autopay_breaches(db)
    return db, breaches, (f"{len(held)} answered charge(s) held by another transaction: left to it, "
                          f"finished once released; {q(db, 'SELECT count(*) FROM subscription_charge')} charges")


def check_queue_two_runners(template, n):
    """Two Odoo servers, each with queue_job's runner and a worker, drain the same day's jobs."""
    import queue_runner

    db = fresh_db(QUEUE_TEMPLATE or template, "sb_resilience_queue_two", n, autopay=True)
    q(db, "UPDATE ir_cron SET active = false")
    servers = []
    try:
        for port in (8194, 8195):
            conf = f"{CONF}.runner{port}"
            with open(CONF) as src, open(conf, "w") as dst:
                dst.write(src.read().rstrip() + "\nserver_wide_modules = base,web,queue_job\n"
                          f"\n[queue_job]\nchannels = root:2,root.subscription:2\nhost = 127.0.0.1\nport = {port}\n")
            servers.append(subprocess.Popen(
                [sys.executable, os.path.join(os.environ["SB_ODOO_DIR"], "odoo-bin"), "-c", conf, "-d", db,
                 f"--db-filter=^{db}$", f"--http-port={port}", "--workers=2", "--max-cron-threads=0",
                 "--log-level=warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        queue_runner.wait_for_server(8194)
        queue_runner.wait_for_server(8195)
        billing = queue_runner.drain(db, billing_cmd(db), "billing")
        autopay = queue_runner.drain(db, autopay_cmd(db), "autopay")
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    breaches = billing_breaches(db) + autopay_breaches(db)
    overlapping = q(db, "SELECT count(*) FROM queue_job a JOIN queue_job b ON a.id < b.id "
                        "AND a.date_started < b.date_done AND b.date_started < a.date_done "
                        "WHERE a.channel = 'root.subscription' AND b.channel = 'root.subscription'")
    if not overlapping:
        breaches.append("no two jobs ever ran at once: the check proved nothing")
    failed = billing[3] + autopay[3]
    if failed:
        breaches.append(f"{failed} jobs failed")
    return db, breaches, (f"{invoices(db)} invoices in {billing[2]} jobs, "
                          f"{q(db, 'SELECT count(*) FROM subscription_charge')} charges in {autopay[2]} jobs, "
                          f"{overlapping} pairs of jobs at once")


CHECKS = {
    "billing-kill": check_billing_kill,
    "billing-two-workers": check_billing_two_workers,
    "billing-connection-killed": check_billing_connection_killed,
    "autopay-kill": check_autopay_kill,
    "autopay-two-workers": check_autopay_two_workers,
    "autopay-recovery-held": check_autopay_recovery_held,
    "queue-two-runners": check_queue_two_runners,
}


def main():
    global CONF
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checks", nargs="*", choices=[*CHECKS, []], help="default: all")
    parser.add_argument("-n", type=int, default=200, help="subscriptions per check (default 200)")
    parser.add_argument("--template", help="a database with subscription_billing and payment_demo (default: the "
                                           "benchmarks' template, rebuilt when the addon changed)")
    parser.add_argument("--conf", default=os.environ.get("SB_ODOO_CONF"), required=not os.environ.get("SB_ODOO_CONF"))
    parser.add_argument("--queue-template", help="the same with queue_job installed (default: the queue "
                                                 "benchmark's template, rebuilt when the addon changed)")
    parser.add_argument("--keep", action="store_true", help="keep the databases (to look at them)")
    args = parser.parse_args()
    global QUEUE_TEMPLATE
    CONF = args.conf
    if not args.template:
        bd.make_template(CONF, os.environ["SB_ODOO_DIR"])
        args.template = bd.DB_TEMPLATE
    QUEUE_TEMPLATE = args.queue_template
    if not QUEUE_TEMPLATE and (not args.checks or "queue-two-runners" in args.checks):
        import queue_runner

        bd.make_template(CONF, os.environ["SB_ODOO_DIR"], db=queue_runner.DB_TEMPLATE, modules=queue_runner.MODULES)
        QUEUE_TEMPLATE = queue_runner.DB_TEMPLATE
    failed = 0
    for name in args.checks or CHECKS:
        started = time.perf_counter()
        db, breaches, summary = CHECKS[name](args.template, args.n)
        status = "FAILED" if breaches else "ok"
        print(f"[resilience] {name:<26} {status:<6} {time.perf_counter() - started:5.1f} s  {summary}", flush=True)
        for breach in breaches:
            print(f"[resilience]     {breach}", flush=True)
        failed += bool(breaches)
        if not args.keep:
            subprocess.run(["dropdb", "--if-exists", db], check=True)
    return 1 if failed else 0


CONF = QUEUE_TEMPLATE = None

if __name__ == "__main__":
    sys.exit(main())
