from datetime import date

from odoo.tests import TransactionCase, tagged

from ..tools import left_in_domain
from ..utils import add_period, is_multiple, monthly_factor, period_end


@tagged("post_install", "-at_install")
class TestPeriodArithmetic(TransactionCase):
    def test_month_end_anchoring(self):
        d = date(2026, 1, 31)
        dates = []
        for _ in range(4):
            d = add_period(d, 1, "month", anchor_day=31)
            dates.append(d)
        self.assertEqual(dates, [date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)])

    def test_leap_year(self):
        self.assertEqual(add_period(date(2028, 1, 31), 1, "month"), date(2028, 2, 29))
        self.assertEqual(add_period(date(2028, 2, 29), 1, "year", anchor_day=29), date(2029, 2, 28))
        self.assertEqual(add_period(date(2031, 2, 28), 1, "year", anchor_day=29), date(2032, 2, 29))

    def test_days_and_weeks(self):
        self.assertEqual(add_period(date(2026, 12, 30), 3, "day"), date(2027, 1, 2))
        self.assertEqual(add_period(date(2026, 12, 30), 2, "week"), date(2027, 1, 13))
        self.assertEqual(period_end(date(2026, 1, 1), 1, "year"), date(2026, 12, 31))

    def test_zero_length_period_is_refused(self):
        with self.assertRaises(ValueError):
            add_period(date(2026, 1, 1), 0, "month")
        with self.assertRaises(ValueError):
            add_period(date(2026, 1, 1), 1, "fortnight")

    def test_monthly_factor_and_multiples(self):
        self.assertAlmostEqual(monthly_factor(3, "month"), 1 / 3)
        self.assertAlmostEqual(monthly_factor(1, "year"), 1 / 12)
        self.assertTrue(is_multiple(1, "year", 3, "month"))
        self.assertFalse(is_multiple(1, "year", 5, "month"))
        self.assertTrue(is_multiple(4, "week", 7, "day"))
        self.assertFalse(is_multiple(1, "year", 1, "week"))


@tagged("post_install", "-at_install")
class TestBatchHelpers(TransactionCase):
    def test_only_records_of_the_batch_model_count_as_left(self):
        """A batch step may return what it left in the domain (taken again later) or records of
        another model it made (renewal opportunities): those are never taken for the batch's."""
        Sub = self.env["subscription.subscription"]
        lead = self.env["crm.lead"].create({"name": "Renewal"})
        self.assertEqual(left_in_domain(Sub, lead), Sub.browse())
        self.assertEqual(left_in_domain(Sub, None), Sub.browse())
        self.assertEqual(left_in_domain(Sub, True), Sub.browse())
        self.assertEqual(left_in_domain(Sub, Sub.browse([lead.id])), Sub.browse([lead.id]))
