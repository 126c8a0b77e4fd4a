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


_LENGTHS = (0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 60, 61)


def _id(length: int, variant: int) -> str:
    """An id of ``length`` bytes: ``a``s (a 2-byte ``é`` first for variant 5) with, for variants 1 to
    4, a ``b`` at byte 0, 7, 16 or the last byte: ids of one length differ in one byte, in the first or
    second word, past byte 16 or at the end."""
    if variant == 5:
        return ("\u00e9" + "a" * length)[:max(length - 1, 0)]
    chars = ["a"] * length
    if variant and length:
        chars[min((0, 7, 16, length - 1)[variant - 1], length - 1)] = "b"
    return "".join(chars)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_LENGTHS), st.integers(0, 5)), max_size=80),
       st.integers(0, 5), st.booleans())
def test_candidates_are_exactly_the_repeated_ids_of_many_lengths_sliced_and_large(specs, cut, large):
    values = [_id(n, v) for n, v in specs]
    padded = ["pad"] * cut + values + ["pad-end"] * cut
    arr = pa.array(padded, type=pa.large_string() if large else pa.string()).slice(cut, len(values))
    exact = _exact_repeats(values)
    got = repeated_candidates(arr)
    assert got.dtype == bool and got.shape == (len(values),)
    assert not (exact & ~got).any()                         # a superset of the repeated ids ...
    assert (got == exact).all()                             # ... equal to them (no 64-bit collision here)


def test_ids_equal_up_to_a_byte_past_the_first_words_or_the_buffer_end_are_distinct():
    base = "wamid.HBgLMTIzNDU2Nzg5MBUCABIYFjNFQjBDMkY3RjQ2QTAwMjRGNzE4QUEA"[:60]   # a real id's shape
    assert len(base) == 60
    values = [base, base[:-1] + "B", base[:20] + "x" + base[21:], base[:59], base + "A", base, "",
              base[:8], base[:9], base[:16], base[:17], base[:7], base[:8], base[:16] + "\x00"]
    for typ in (pa.string(), pa.large_string()):
        arr = pa.array(values, type=typ)
        assert repeated_candidates(arr).tolist() == _exact_repeats(values).tolist()
        # the last id ends the data buffer: its bytes are read without running past the buffer
        tail = pa.array(values[:-1] + [base[:13]], type=typ).slice(len(values) - 2)
        assert repeated_candidates(tail).tolist() == [False, False]


def test_200k_ids_short_and_long_with_a_few_repeats():
    rng = np.random.default_rng(7)
    n = 200_000
    values = np.char.add("wamid.G", rng.permutation(n).astype(str)).astype(object)
    dup_at = rng.choice(n, 500, replace=False)
    values[dup_at[:250]] = values[dup_at[250:]]             # 250 ids twice
    long_values = np.char.add(values.astype(str), "FQIAERgSQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ").astype(object)
    for vals in (values, long_values):
        arr = pa.array(vals, type=pa.string())
        got = repeated_candidates(arr)
        assert np.flatnonzero(got).tolist() == np.flatnonzero(_exact_repeats(list(vals))).tolist()
        assert got.sum() == 500


def test_candidates_of_many_ids_spread_over_every_part():
    rng = np.random.default_rng(7)
    values = [f"wamid.{v}" for v in rng.integers(0, 40_000, 30_000)]      # ~1/3 of the rows repeat an id
    exact = _exact_repeats(values)
    got = repeated_candidates(pa.array(values, type=pa.string()))
    assert exact.sum() > 5_000 and (got == exact).all()


def test_merge_of_arrow_string_columns_matches_the_object_path():
    import pandas as pd

    from reconcile.quality import QualityLog

    nat = None
    frame = pd.DataFrame({
        "message_id": ["a", "b", "a", "c", "a", "c", "d", "d", "e", "e"],
        # a: first empty then "u2" (merged "u2"); c: "u3" vs "u4" (conflict); d: missing then "u5"; e: both ""
        "user_wa_id": ["", "u1", "u2", "u3", None, "u4", None, "u5", "", ""],
        "phone_number_id": ["p", "p", "p", "p", "p", "p", "p", "p", "p", "q"],     # e conflicts here too
        "entry_point": ["", "ad", "page_cta", "", "ad", "", "", "", "", ""],        # a: "", "page_cta", "ad"
        "status": ["sent", "read", "delivered", "sent", "read", "sent", "sent", "sent", "sent", "sent"],
        "sent_at": pd.to_datetime(["2025-07-01 10:00", "2025-07-01 10:01", nat, "2025-07-01 10:03", nat, nat, nat,
                                   "2025-07-01 10:07", nat, nat], utc=True).astype("datetime64[ns, UTC]"),
        "source": ["m.csv"] * 10,
        "row": range(1, 11),
    })
    results = []
    for dtype in ("str", object):
        f = frame.copy()
        for col in ("message_id", "user_wa_id", "phone_number_id", "entry_point", "status", "source"):
            f[col] = f[col].astype(dtype)
        quality = QualityLog()
        out, counts = prepare.dedupe_messages(f, quality)
        results.append((out.astype(object).where(out.notna(), None).values.tolist(), counts,
                        quality.frame().values.tolist()))
    assert results[0] == results[1]
    rows, counts, findings = results[0]
    assert counts == {"input_rows": 10, "duplicates_merged": 5, "conflicting_duplicates": 2}
    assert [r[:2] for r in rows] == [["a", "u2"], ["b", "u1"], ["d", "u5"]]
    assert rows[0][3:5] == ["page_cta", "read"]    # a: first non-empty entry point, best status
    assert [(f[1], f[4], f[5]) for f in findings] == [("conflicting_duplicate", "user_wa_id", "c"),
                                                      ("conflicting_duplicate", "phone_number_id", "e")]
