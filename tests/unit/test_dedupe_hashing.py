"""The hash pre-pass of the duplicates rule (``reconcile.engine.hashing``) against the exact answer."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.engine import prepare
from reconcile.engine.hashing import repeated_candidates


def _exact_repeats(values: list[str]) -> np.ndarray:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return np.array([counts[v] > 1 for v in values], dtype=bool)


def test_candidates_cover_every_repeated_string_incl_empty_unicode_and_sliced_arrays():
    values = ["wamid.A", "wamid.B", "", "wamid.A", "é€😀", "", "wamid.C", "é€😀", "wamid.a"]
    for arr in (pa.array(values, type=pa.string()), pa.array(values, type=pa.large_string())):
        got = repeated_candidates(arr)
        # A (0, 3), "" (2, 5) and the non-ASCII id (4, 7) repeat; B, C and the lower-case a do not
        assert got.tolist() == [True, False, True, True, True, True, False, True, False]
    sliced = pa.array(["x", "y", "x", "y", "z"], type=pa.string()).slice(1)     # y, x, y, z
    assert repeated_candidates(sliced).tolist() == [True, False, True, False]
    assert repeated_candidates(pa.array([], type=pa.string())).tolist() == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab\u00e9", max_size=3), max_size=60))
def test_duplicated_ids_with_and_without_the_hash_prepass_agree(values):
    arr = pa.array(values, type=pa.string())
    exact = _exact_repeats(values)
    # candidates are a superset of the repeated strings (equal strings hash equally)
    assert not (exact & ~repeated_candidates(arr)).any()
    saved = prepare._HASH_PREPASS_ROWS
    try:
        prepare._HASH_PREPASS_ROWS = 0                      # force the pre-pass
        rows_h, codes_h = prepare._duplicated_ids(arr)
        prepare._HASH_PREPASS_ROWS = 10 ** 9                # plain dictionary encoding
        rows_d, codes_d = prepare._duplicated_ids(arr)
    finally:
        prepare._HASH_PREPASS_ROWS = saved
    assert rows_h.tolist() == rows_d.tolist() == np.flatnonzero(exact).tolist()
    # the codes group the same rows together (code values may differ between the two paths)
    same_h = codes_h[:, None] == codes_h[None, :]
    same_d = codes_d[:, None] == codes_d[None, :]
    assert (same_h == same_d).all()
