"""pytest plugin of ./dev test: a skipped test fails the run.

Odoo skips browser tours (counting them as passed) when Chromium or websocket-client is
missing, and pytest-odoo skips ``HttpCase`` without ``--odoo-http``: a run that did not
exercise everything must not look green.
"""

SKIPPED = []


def pytest_runtest_logreport(report):
    if report.skipped:
        SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if SKIPPED and session.exitstatus == 0:
        session.exitstatus = 1
