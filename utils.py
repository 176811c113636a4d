"""Pure period arithmetic for subscriptions (no ORM)."""

from datetime import timedelta

from dateutil.relativedelta import relativedelta

PERIOD_UNITS = [
    ("day", "Days"),
    ("week", "Weeks"),
    ("month", "Months"),
    ("year", "Years"),
]

# Average number of periods of each unit in a month, used to normalize
# recurring revenue to a month (MRR): 365.25 days / 12 months.
PERIODS_PER_MONTH = {
    "day": 365.25 / 12,
    "week": 365.25 / 12 / 7,
    "month": 1.0,
    "year": 1.0 / 12,
}


def add_period(start, value, unit, anchor_day=None):
    """Return ``start`` moved forward by ``value`` ``unit`` s.

    Month and year steps are anchored on ``anchor_day`` (default: the day of
    ``start``) and clipped to the end of shorter months, so a subscription
    that started on Jan 31 is billed on Feb 28 (29), Mar 31, Apr 30, ...
    """
    if value < 1:
        raise ValueError("a period is at least 1 %s" % unit)
    if unit == "day":
        return start + timedelta(days=value)
    if unit == "week":
        return start + timedelta(weeks=value)
    day = anchor_day or start.day
    if unit == "month":
        return start + relativedelta(months=value, day=day)
    if unit == "year":
        return start + relativedelta(years=value, day=day)
    raise ValueError("unknown period unit %r" % unit)


def period_end(start, value, unit, anchor_day=None):
    """Last day (inclusive) of the period that begins on ``start``."""
    return add_period(start, value, unit, anchor_day) - timedelta(days=1)


def monthly_factor(value, unit):
    """Factor turning an amount billed every ``value`` ``unit`` s into a monthly amount."""
    return PERIODS_PER_MONTH[unit] / value


def period_in_days(value, unit):
    """Length of a day/week period in days (None for month/year periods)."""
    if unit == "day":
        return value
    if unit == "week":
        return 7 * value
    return None


def period_in_months(value, unit):
    """Length of a month/year period in months (None for day/week periods)."""
    if unit == "month":
        return value
    if unit == "year":
        return 12 * value
    return None


def is_multiple(term_value, term_unit, period_value, period_unit):
    """True when a commitment term is a whole number of billing periods."""
    term_months = period_in_months(term_value, term_unit)
    period_months = period_in_months(period_value, period_unit)
    if term_months is not None and period_months is not None:
        return term_months % period_months == 0
    term_days = period_in_days(term_value, term_unit)
    period_days = period_in_days(period_value, period_unit)
    if term_days is not None and period_days is not None:
        return term_days % period_days == 0
    return False
