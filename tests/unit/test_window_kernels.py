"""The integer passes of the windows: ``unit_numbers`` (the units of the window pass numbered in event
order) and ``coverage_codes`` (the coverage per billable message)."""
from __future__ import annotations

import numpy as np

from reconcile.engine.windows import unit_numbers


def test_units_in_event_order_with_their_riders():
    outcome = np.array([0, 1, -1, 0, 1, 2, 1, 0, 3], dtype=np.int8)
    opener = np.array([0, 0, -1, 3, 3, -1, 0, 7, -1], dtype=np.int64)
    upos, opener_unit, message_count = unit_numbers(outcome, opener)
    assert upos.tolist() == [0, 3, 7]
    assert opener_unit.tolist() == [0, 0, -1, 1, 1, -1, 0, 2, -1]
    assert message_count.tolist() == [3, 2, 1]


def test_an_opener_that_opens_no_unit_gives_no_unit():
    upos, opener_unit, message_count = unit_numbers(np.array([2, 1], dtype=np.int8), np.array([-1, 0], dtype=np.int64))
    assert (upos.tolist(), opener_unit.tolist(), message_count.tolist()) == ([], [-1, -1], [])


def test_coverage_codes_per_billable_message_in_message_order():
    """Rows 0..5, billable 1, 2, 4, 5; events in pass order: 4 (opens unit 0 on day -3), 0 (inbound),
    1 (rides on unit 0, day 20000), 5 (free, no unit, day 7); row 2 never reached the pass (excluded)."""
    from reconcile.engine.windows import coverage_codes

    billable = np.array([False, True, True, False, True, True])
    rows = np.array([4, 0, 1, 5])
    inbound = np.array([False, True, False, False])
    outcome = np.array([0, -1, 1, 2], dtype=np.int8)
    opener_unit = np.array([0, -1, 0, -1])
    opener = np.array([0, -1, 0, -1])
    local_day = np.array([-3, 0, 20_000, 7])
    bill, outcome_of, unit_of, day, has_day, orphan = coverage_codes(
        billable, rows, inbound, outcome, opener_unit, opener, local_day, 1, 3)
    assert bill.tolist() == [1, 2, 4, 5]
    assert (outcome_of.dtype, unit_of.dtype, day.dtype) == (np.int8, np.int32, np.int32)
    assert outcome_of.tolist() == [1, 3, 0, 2]
    assert unit_of.tolist() == [0, 1, 0, 1]
    assert day.tolist() == [20_000, 0, -3, 7]
    assert has_day.tolist() == [True, False, True, True]
    assert not orphan
    assert coverage_codes(billable, rows, inbound, outcome, np.array([0, -1, -1, -1]), opener, local_day, 1, 3)[-1]


def test_month_codes_of_present_days_only():
    """Days since 1970-01-01: -1 = 1969-12-31, 0 = 1970-01-01, 59 = 1970-03-01, 20_270 = 2025-07-01."""
    from reconcile.engine.windows import _month_codes

    codes, names = _month_codes(np.array([59, -1, 0, 31], dtype=np.int64))
    assert (codes.tolist(), names) == ([3, 0, 1, 2], ["1969-12", "1970-01", "1970-02", "1970-03"])
    assert codes.dtype == np.int8
    days = np.array([20_270, 0, 20_269, 7], dtype=np.int32)
    codes, names = _month_codes(days, np.array([True, False, True, False]))
    assert (codes.tolist(), names) == ([1, 2, 0, 2], ["2025-06", "2025-07"])
    codes, names = _month_codes(days, np.zeros(4, dtype=bool))
    assert (codes.tolist(), names) == ([0, 0, 0, 0], [])
    codes, names = _month_codes(np.array([1 << 21, 0], dtype=np.int64))     # 7711-10-23: beyond the table
    assert (codes.tolist(), len(names), names[0], names[-1]) == ([68_901, 0], 68_902, "1970-01", "7711-10")
