"""The compiled string sets of the conservation checks (reconcile.conservation): exact on any bytes,
lengths around the 8/16-byte words, strings at the end of a buffer, sliced and 32/64-bit-offset arrays,
and a tag collision in the hash table; the buckets do not depend on how the columns are handed over."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from reconcile import conservation as cons
from reconcile.contracts import Period
from reconcile.engine.buffers import string_buffers


def _strings(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    pool = [""] + ["a" * k for k in (1, 7, 8, 9, 15, 16, 17, 24, 25, 40)] + ["b" * 16 + "c", "b" * 16 + "d",
                                                                           "é" * 9, "x\x00y", "wamid." + "Z" * 50]
    pool += [f"wamid.{i:0{1 + i % 30}d}" for i in range(200)]
    return list(rng.choice(pool, n))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", ["large", "string", "sliced", "tail"])
def test_first_occurrence_codes_equal_arrow_dictionary_encoding(seed, shape):
    values = _strings(seed, 500)
    arr = pa.array(values, type=pa.string() if shape == "string" else pa.large_string())
    if shape == "sliced":
        arr = arr.slice(37, 400)
    if shape == "tail":                    # the last strings end at the end of the byte buffer
        arr = arr.slice(len(arr) - 5)
    codes, first = cons.first_occurrence_codes(arr)
    encoded = pc.dictionary_encode(arr)
    assert codes.tolist() == encoded.indices.to_pylist()
    assert arr.take(pa.array(first)).to_pylist() == encoded.dictionary.to_pylist()
    assert cons.first_occurrence_codes(pa.array(["a", None])) is None


@pytest.mark.parametrize("seed", range(6))
def test_lookup_finds_exactly_the_equal_strings(seed):
    rng = np.random.default_rng(seed)
    pool = _strings(seed, 300)
    a = pa.array(pool[:150], type=pa.large_string())
    c = pa.array(pool[100:] + [s + "!" for s in pool[:20]], type=pa.large_string())
    (a_off, a_data), (c_off, c_data) = string_buffers(a), string_buffers(c)
    rows = np.flatnonzero(rng.random(len(c)) < 0.8)
    numbers, table, mask, keys, first_row, hashes = cons._string_set(a_off, a_data, len(a))
    found = cons._lookup(table, mask, keys, first_row, hashes, a_off, a_data, c_off, c_data, rows)
    distinct = a.take(pa.array(first_row)).to_pylist()
    expected = [distinct.index(s) if s in distinct else -1 for s in c.take(pa.array(rows)).to_pylist()]
    assert found.tolist() == expected
    assert [distinct[n] for n in numbers] == a.to_pylist()


def test_a_tag_collision_is_resolved_on_the_bytes():
    a = pa.array(["alpha", "beta", "gamma" * 5, "delta"], type=pa.large_string())
    (a_off, a_data) = string_buffers(a)
    _, table, mask, keys, first_row, hashes = cons._string_set(a_off, a_data, len(a))
    c = pa.array(["delta", "gamma" * 5, "omega"], type=pa.large_string())
    c_off, c_data = string_buffers(c)
    for row in range(len(c)):                 # every slot carries the tag of the string looked up
        n, w0, w1 = cons._key(c_off, c_data, row)
        h = cons._hash(c_off, c_data, row, np.int64(n), np.uint64(w0), np.uint64(w1))
        tag = np.uint64(cons._tag(np.uint64(h)))
        forged = np.where(table != 0, (tag << np.uint64(32)) | (table & np.uint64(0xFFFFFFFF)), table)
        found = cons._lookup(forged, mask, keys, first_row, hashes, a_off, a_data, c_off, c_data,
                             np.array([row]))
        assert found.tolist() == [{0: 3, 1: 2, 2: -1}[row]]


def _coverage(categorical: bool):
    ids = [f"wamid.G{i}" for i in range(12)]
    coverage = pd.DataFrame({
        "message_id": ids, "waba_id": "W1", "charged_at": None,
        "billing_month": ["2025-07"] * 9 + ["2025-06", "2025-08", "2025-07"],
        "outcome": ["unit_opener", "rode_on_unit", "rode_on_unit", "unit_opener", "free_not_unit", "excluded",
                    "rode_on_unit", "unit_opener", "free_not_unit", "unit_opener", "rode_on_unit", "rode_on_unit"],
        "unit_opening_message_id": [ids[0], ids[0], ids[0], ids[3], "", "", "wamid.E1", ids[7], "", ids[9],
                                    ids[7], "wamid.E1"]})
    for c in ("billing_month", "outcome"):
        coverage[c] = coverage[c].astype("category") if categorical else coverage[c].astype("str")
    units = pd.DataFrame({"opening_message_id": [ids[0], ids[3], ids[7]], "message_count": [3, 1, 2],
                          "billing_month": "2025-07"})
    raw = pd.DataFrame({"opening_message_id": [ids[0], ids[3], ids[7], "wamid.E1", ids[9]],
                        "message_count": [3, 1, 2, 2, 1],
                        "billing_month": ["2025-07", "2025-07", "2025-07", "2025-06", "2025-06"]})
    if categorical:
        raw["billing_month"] = raw["billing_month"].astype("category")
    return coverage, units, raw


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("categorical", [False, True])
@pytest.mark.parametrize("ids", ["set", "series", "function"])
def test_buckets_do_not_depend_on_column_types_or_how_the_excluded_ids_come(monkeypatch, compiled, categorical, ids):
    monkeypatch.setattr(cons, "COMPILED", compiled)
    coverage, units, raw = _coverage(categorical)
    named = {"set": {"wamid.G5"}, "series": pd.Series(["x", "wamid.G5"], dtype="str"),
             "function": lambda: pd.Series(["wamid.G5"], dtype="str")}[ids]
    assert cons.message_buckets(coverage, units, raw, Period.parse("2025-07"), named) == {
        "billable_in_period": 10, "covered_by_unit_of_period": 5, "covered_by_window_before_period": 2,
        "free_not_a_unit": 2, "excluded_by_data_quality_rule": 1, "messages_in_units_of_period": 6}
    with pytest.raises(cons.ConservationError, match="without a data-quality finding"):
        cons.message_buckets(coverage, units, raw, Period.parse("2025-07"), set())


def test_first_occurrence_codes_of_many_distinct_strings():
    values = [f"id{i % 3000}" for i in range(7000)]              # more than the first, small table holds
    codes, first = cons.first_occurrence_codes(pa.array(values))
    assert codes.tolist() == [i % 3000 for i in range(7000)] and first.tolist() == list(range(3000))
