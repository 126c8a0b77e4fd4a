"""The delivery order of the units: a stable radix sort of the open instants, ties by opening id."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from reconcile.engine.accounts import _NAT, _Codes, _order_by_instant, _radix_order, _rank_within

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


def test_rank_within_counts_masked_units_per_scope_in_delivery_order():
    account = _Codes(np.array([0, 1, 0, 0, 1, 0], dtype=np.int32), ["W1", "W2"])
    month = _Codes(np.array([0, 0, 0, 1, 0, 0], dtype=np.int32), ["2025-06", "2025-07"])
    mask = np.array([True, True, False, True, True, True])
    # scopes: (W1, 06) rows 0, 2 (masked out), 5; (W2, 06) rows 1, 4; (W1, 07) row 3
    assert _rank_within(mask, [account, month]).tolist() == [1, 1, 0, 1, 2, 2]
    assert _rank_within(np.zeros(6, dtype=bool), [account, month]).tolist() == [0] * 6
    # sparse keys (many names) are made dense first: the same ranks
    wide = _Codes(np.array([0, 90_000, 0, 5, 90_000, 0], dtype=np.int32), [str(i) for i in range(90_001)])
    assert _rank_within(mask, [wide]).tolist() == [1, 1, 0, 1, 2, 2]
