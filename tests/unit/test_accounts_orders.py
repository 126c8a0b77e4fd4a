"""The delivery order of the units: a stable radix sort of the open instants, ties by opening id."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from reconcile.engine.accounts import _NAT, _order_by_instant, _radix_order

_MAX = np.iinfo(np.int64).max


def test_radix_order_is_stable_and_exact_over_the_whole_int64_range():
    key = np.array([5, -3, 5, _MAX, -3, 0, _NAT + 1, 5], dtype=np.int64)
    assert _radix_order(key).tolist() == [6, 1, 4, 5, 0, 2, 7, 3]
    assert _radix_order(np.array([7, 7, 7], dtype=np.int64)).tolist() == [0, 1, 2]
    assert _radix_order(np.array([], dtype=np.int64)).tolist() == []
    rng = np.random.default_rng(1)
    key = rng.integers(1_700_000_000, 1_700_000_050, 1000, dtype=np.int64) * 1_000_000_000
    assert (_radix_order(key) == np.argsort(key, kind="stable")).all()


def test_order_by_instant_nat_last_and_ties_by_id_then_row():
    t = np.array([20, _NAT, 10, 20, 20, 10], dtype=np.int64)
    ids = pa.array(["b", "z", "y", "a", "b", "x"], type=pa.large_string())
    asked = []

    def ids_of(rows):
        asked.append(rows.tolist())
        return ids.take(pa.array(rows))
    assert _order_by_instant(t, ids_of).tolist() == [5, 2, 3, 0, 4, 1]
    assert asked == [[2, 5, 0, 3, 4]]          # the strings of the tied rows only
