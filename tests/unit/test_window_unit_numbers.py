"""``windows.unit_numbers``: the units of the window pass numbered in event order."""
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
