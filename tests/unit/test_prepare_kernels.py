"""The compiled paths of ``classify_messages`` / ``prepare_events`` (``reconcile.engine.sorting``)
against plain references: pandas/Arrow for the codes, the fallback paths (object columns, columns
with nulls, the ``np.lexsort`` sort) and a Python sort for the event order."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.engine import prepare, sorting
from reconcile.engine.string_sets import first_occurrence_codes
from reconcile.engine.strategies import TEMPLATE_CATEGORY_CODES
from reconcile.quality import QualityLog

ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]


def _reference_codes(values: list[str]):
    """Sorted codes as the rule states them: digit strings by (value, length), others by string."""
    if values and all(v.isascii() and v.isdigit() and 1 <= len(v) <= 17 for v in values):
        keys = {v: int(v) * 32 + len(v) for v in values}
    else:
        keys = {v: v.encode() for v in values}
    names = sorted(set(values), key=lambda v: keys[v])
    rank = {v: i for i, v in enumerate(names)}
    return [rank[v] for v in values], names


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet="0123456789", min_size=1, max_size=17),
                          st.sampled_from(["007", "7", "07", "70", "9", "10"])), max_size=80),
       st.booleans(), st.booleans())
def test_sorted_codes_match_the_reference(values, large, spoil):
    if spoil:                                       # one non-digit value: the string path
        values = values + ["W01", "é", ""]
    arr = pa.array(values, type=pa.large_string() if large else pa.string())
    codes, names = prepare.sorted_codes(pd.Series(pd.array(arr, dtype="str")))
    exp_codes, exp_names = _reference_codes(values)
    assert codes.dtype == np.int64 and codes.tolist() == exp_codes
    assert names.to_pylist() == exp_names
    # the same through pandas' factorize / Arrow's dictionary encoding (the fallbacks)
    if not spoil and values:
        numeric = prepare._digit_values(arr)
        ref, uniques = pd.factorize(numeric, sort=True)
        assert ref.tolist() == codes.tolist()
    enc = pc.dictionary_encode(arr)
    ids, first = first_occurrence_codes(arr)
    assert ids.tolist() == enc.indices.to_pylist()
    assert pc.take(arr, pa.array(first, type=pa.int64())).to_pylist() == enc.dictionary.to_pylist()


def test_sorted_codes_of_sliced_and_empty_arrays():
    arr = pa.array(["x", "30", "4", "30", "004"], type=pa.string()).slice(1)
    codes, names = prepare.sorted_codes(pd.Series(pd.array(arr, dtype="str")))
    assert codes.tolist() == [2, 0, 2, 1] and names.to_pylist() == ["4", "004", "30"]     # by (value, length)
    codes, names = prepare.sorted_codes(pd.Series([], dtype="str"))
    assert codes.tolist() == [] and len(names) == 0


def _frame(rng: np.random.Generator, n: int, *, ties: bool = False, ms: bool = False):
    accounts = pd.DataFrame({"waba_id": ["A1", "A2", "A3"], "timezone": ZONES})
    base = np.datetime64("2024-10-30T20:00:00", "ns").astype(np.int64)
    step = 1_000_000 if ms else 1_000_000_000
    spread = 6 if ties else 3 * 86_400
    sent = base + rng.integers(0, spread, n) * step
    delivered = sent + rng.integers(0, 5, n) * step
    read = delivered + rng.integers(0, 50, n) * step
    direction = rng.choice(["inbound", "outbound", "outbound"], n)
    status = np.where(direction == "inbound", "received", rng.choice(["delivered", "read", "sent", "failed"], n))
    kind = np.where(direction == "inbound", "", rng.choice(["template", "free_form"], n))
    category = np.where(kind == "template", rng.choice(["marketing", "utility", "authentication", ""], n), "")
    entry = np.where(direction == "inbound", rng.choice(["", "", "ad", "page_cta"], n), "")
    nat = np.iinfo(np.int64).min
    delivered = np.where(rng.random(n) < 0.1, nat, delivered)
    read = np.where(rng.random(n) < 0.3, nat, read)
    sent = np.where(rng.random(n) < 0.02, nat, sent)

    def utc(ns):
        return pd.Series(pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC"))

    frame = pd.DataFrame({
        "message_id": pd.Series([f"wamid.{i:05d}" for i in rng.permutation(n)], dtype="str"),
        "waba_id": pd.Series(rng.choice(["A1", "A2", "A3", "A9"], n, p=[0.4, 0.3, 0.25, 0.05]), dtype="str"),
        "phone_number_id": pd.Series(rng.choice(["P2", "P10", "P1"], n), dtype="str"),
        "user_wa_id": pd.Series(rng.choice(["15550001", "4915112", "915550", "0915550"], n), dtype="str"),
        "direction": pd.Series(direction, dtype="str"),
        "sent_at": utc(sent),
        "status": pd.Series(status, dtype="str"),
        "delivered_at": utc(delivered),
        "read_at": utc(read),
        "message_kind": pd.Series(kind, dtype="str"),
        "template_category": pd.Series(category, dtype="str"),
        "entry_point": pd.Series(entry, dtype="str"),
        "source": pd.Series(["m.csv"] * n, dtype="str"),
        "row": np.arange(1, n + 1),
    })
    return frame, accounts


def _run(frame, accounts):
    quality = QualityLog()
    classes = prepare.classify_messages(frame, accounts, quality)
    return classes, prepare.prepare_events(frame, classes), quality.frame()


def _same(a, b, *, names_as_lists: bool = False):
    for field in a.__dataclass_fields__:
        x, y = getattr(a, field), getattr(b, field)
        if isinstance(x, (pa.Array, pa.ChunkedArray)):
            assert (x.to_pylist() == y.to_pylist()) if names_as_lists else x.equals(y), field
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), field
        else:
            assert x == y, field


def _as_object(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == "str":
            out[col] = out[col].astype(object)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_compiled_and_fallback_paths_agree(seed):
    rng = np.random.default_rng(seed)
    frame, accounts = _frame(rng, 600, ties=seed % 2 == 1, ms=seed == 2)
    classes, events, findings = _run(frame, accounts)
    assert len(events.rows) > 0 and len(findings) > 0
    # object columns take the pandas paths of classify_messages and of the row attributes
    o_classes, o_events, o_findings = _run(_as_object(frame), accounts)
    _same(classes, o_classes, names_as_lists=True)
    _same(events, o_events, names_as_lists=True)
    pd.testing.assert_frame_equal(findings, o_findings)
    # the lexsort path of the sort
    saved = prepare.PACKED_SORT_BITS
    try:
        prepare.PACKED_SORT_BITS = 0
        _, l_events, _ = _run(frame, accounts)
    finally:
        prepare.PACKED_SORT_BITS = saved
    _same(events, l_events)


def test_event_order_and_columns_follow_the_rule():
    rng = np.random.default_rng(11)
    frame, accounts = _frame(rng, 500, ties=True)
    classes, ev, _ = _run(frame, accounts)
    usable = [i for i in range(len(frame)) if (classes.inbound[i] or classes.billable[i]) and not classes.excluded[i]]
    phone_rank = {v: i for i, v in enumerate(ev.phone_names.to_pylist())}
    user_rank = {v: i for i, v in enumerate(ev.user_names.to_pylist())}
    mids = frame["message_id"].tolist()

    def sort_key(i):
        return (phone_rank[frame["phone_number_id"][i]], user_rank[frame["user_wa_id"][i]], int(classes.charge_ns[i]),
                not classes.inbound[i], mids[i])

    expected = sorted(usable, key=sort_key)
    assert ev.rows.tolist() == expected
    rows = np.array(expected)
    n_users = len(ev.user_names)
    assert ev.key.tolist() == [phone_rank[frame["phone_number_id"][i]] * n_users + user_rank[frame["user_wa_id"][i]]
                               for i in expected]
    assert np.array_equal(ev.t, classes.charge_ns[rows]) and np.array_equal(ev.account, classes.account[rows])
    inbound = classes.inbound[rows]
    assert np.array_equal(ev.inbound, inbound)
    assert np.array_equal(ev.entry_point, (frame["entry_point"].to_numpy(dtype=object)[rows] != "") & inbound)
    assert np.array_equal(ev.template, (frame["message_kind"].to_numpy(dtype=object)[rows] != "free_form") & ~inbound)
    cats = frame["template_category"].to_numpy(dtype=object)[rows]
    assert ev.category.tolist() == [TEMPLATE_CATEGORY_CODES.get(c, -1) for c in cats]


def test_columns_with_nulls_keep_pandas_semantics():
    rng = np.random.default_rng(5)
    frame, accounts = _frame(rng, 300)
    for col in ("entry_point", "message_kind", "template_category", "direction", "status"):
        values = frame[col].astype(object)
        values[rng.random(len(values)) < 0.1] = np.nan
        frame[col] = pd.Series(values, dtype="str")
    classes, events, findings = _run(frame, accounts)
    o_classes, o_events, o_findings = _run(_as_object(frame), accounts)
    _same(classes, o_classes, names_as_lists=True)
    _same(events, o_events, names_as_lists=True)
    pd.testing.assert_frame_equal(findings, o_findings)
    # a missing entry point is "not empty" for pandas (``NaN != ""``): kept as is
    missing = frame["entry_point"].isna().to_numpy()[events.rows] & events.inbound
    assert missing.any() and events.entry_point[missing].all()


def test_era_columns_match_searchsorted():
    rng = np.random.default_rng(3)
    day = rng.integers(19_000, 21_000, 2000)
    zone = rng.integers(0, 3, 2000)
    regime_starts = np.array([19_500, 19_800, 20_100, 20_400])
    era_starts = np.array([19_500, 20_100])
    bounds = rng.integers(0, 10**12, (3, 2))
    regime, nxt = sorting.era_columns(day, zone, regime_starts, era_starts, bounds)
    assert np.array_equal(regime, np.searchsorted(regime_starts, day, side="right") - 1)
    assert np.array_equal(nxt, bounds[zone, np.searchsorted(era_starts, day, side="right") - 1])


def test_warm_up_runs():
    sorting.warm_up()


def _random_events(rng, m, n_rows, phones, users, spread, negative_attrs=False):
    """Events (``rows`` of ``n_rows`` messages) with few phones, users and instants: many equal packed values."""
    rows = np.sort(rng.choice(n_rows, m, replace=False)).astype(np.int64) if m else np.zeros(0, np.int64)
    phone = rng.integers(0, phones, n_rows)
    user = rng.integers(0, users, n_rows)
    t = 1_700_000_000 * 10**9 + rng.integers(0, spread, n_rows) * 10**9
    inbound = rng.random(n_rows) < 0.5
    attrs = rng.integers(-1 if negative_attrs else 0, 5000, n_rows) << 8 | rng.integers(0, 256, n_rows)
    return rows, phone, user, t, inbound, attrs


def _packing(rows, phone, user, t):
    t0 = int(t[rows].min()) if len(rows) else 0
    unit = 10**9
    user_shift = ((int(t[rows].max()) - t0) // unit if len(rows) else 0).bit_length() + 1
    phone_shift = user_shift + int(user.max()).bit_length()
    bits = phone_shift + int(phone.max()).bit_length()
    return t0, unit, user_shift, phone_shift, bits


@pytest.mark.parametrize("parts", [False, True])
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.sampled_from([0, 1, 2, 3, 7, 40, 300, 2000]),
       phones=st.sampled_from([1, 2, 3, 40]), users=st.sampled_from([1, 5, 300]), spread=st.sampled_from([1, 3, 10**6]),
       negative_attrs=st.booleans())
def test_radix_sort_and_decode_match_a_stable_sort(parts, seed, m, phones, users, spread, negative_attrs):
    """The packed sort is a stable sort (ties keep the input order), split in parts and threads or not;
    the decoded columns follow the rows, also where rows were reordered after the sort (ties)."""
    rng = np.random.default_rng(seed)
    rows, phone, user, t, inbound, attrs = _random_events(rng, m, 2 * m + 5, phones, users, spread, negative_attrs)
    t0, unit, user_shift, phone_shift, bits = _packing(rows, phone, user, t)
    saved = sorting.PARALLEL_EVENTS, sorting.PART_EVENTS
    try:
        if parts:
            sorting.PARALLEL_EVENTS, sorting.PART_EVENTS = 2, max(1, m // 5)
        out, packed, payload = sorting.radix_sort_events(rows, phone, user, t, inbound, attrs, t0, unit, user_shift,
                                                         phone_shift, bits)
        value = ((phone[rows] << phone_shift) | (user[rows] << user_shift) | ((t[rows] - t0) // unit) << 1
                 | (~inbound[rows]).astype(np.int64))
        order = np.lexsort((np.arange(m), value))
        assert np.array_equal(out, rows[order]) and np.array_equal(packed, value[order].astype(np.uint64))
        # reorder some tied runs (as the message_id tie-break does), then decode
        pos, run = sorting.tied_runs(packed)
        moved = out.copy()
        for r in np.unique(run):
            p = pos[run == r]
            moved[p] = moved[p[::-1]]
        n_users = int(user.max()) + 1
        key, tt, inb, ph, us, account, entry, template, category = sorting.decode_events(
            moved, packed, payload, attrs, t0, unit, user_shift, phone_shift, n_users)
    finally:
        sorting.PARALLEL_EVENTS, sorting.PART_EVENTS = saved
    assert np.array_equal(ph, phone[out]) and np.array_equal(us, user[out])
    assert np.array_equal(key, phone[out] * n_users + user[out]) and np.array_equal(tt, t[out])
    assert np.array_equal(inb, inbound[out])
    a = attrs[moved]
    assert np.array_equal(account, a >> 8) and np.array_equal(entry, (a & 1) != 0)
    assert np.array_equal(template, (a & 2) != 0) and np.array_equal(category, ((a >> 2) & 63) - 1)


def test_radix_sort_of_many_events_in_parts_and_threads():
    rng = np.random.default_rng(8)
    m = 300_000
    rows, phone, user, t, inbound, attrs = _random_events(rng, m, m + 1000, 30, 4000, 10**5)
    t0, unit, user_shift, phone_shift, bits = _packing(rows, phone, user, t)
    value = ((phone[rows] << phone_shift) | (user[rows] << user_shift) | ((t[rows] - t0) // unit) << 1
             | (~inbound[rows]).astype(np.int64))
    expected = rows[np.argsort(value, kind="stable")]
    saved = sorting.PARALLEL_EVENTS, sorting.PART_EVENTS
    try:
        for parallel, part in ((10**9, 10**9), (10**9, 50_000), (1, 70_000), (1, 10**9)):
            sorting.PARALLEL_EVENTS, sorting.PART_EVENTS = parallel, part
            out, packed, _ = sorting.radix_sort_events(rows, phone, user, t, inbound, attrs, t0, unit, user_shift,
                                                       phone_shift, bits)
            assert np.array_equal(out, expected) and np.array_equal(packed, np.sort(value).astype(np.uint64))
    finally:
        sorting.PARALLEL_EVENTS, sorting.PART_EVENTS = saved


@pytest.mark.parametrize("code_type", [np.int8, np.int16, np.int32, np.int64])
def test_classify_codes_of_categoricals_with_nan_and_dropped_rows(code_type):
    nat = np.iinfo(np.int64).min
    # rows: inbound with sent; outbound delivered (delivered_at); outbound read (read_at only); outbound
    # delivered without instants; outbound sent; NaN direction; inbound without sent (unknown account);
    # inbound dropped (a merged duplicate)
    direction = (np.array([1, 0, 0, 0, 0, -1, 1, 1], code_type), ["outbound", "inbound"])
    status = (np.array([2, 0, 1, 0, -1, 0, 2, 2], code_type), ["delivered", "read", "received"])
    sent = np.array([10, 20, 30, 40, 50, 60, nat, 80])
    delivered = np.array([nat, 21, nat, nat, 51, 61, nat, nat])
    read = np.array([nat, 22, 33, nat, nat, nat, nat, nat])
    account = np.array([0, 1, 1, 0, 0, 0, -1, -1])
    dropped = np.array([False] * 7 + [True])
    inbound, billable, charge, unknown, missing_time, missing_in = sorting.classify_codes(
        direction, status, delivered, read, sent, account, dropped)
    assert inbound.tolist() == [True, False, False, False, False, False, True, False]
    assert billable.tolist() == [False, True, True, True, False, False, False, False]
    assert charge.tolist() == [10, 21, 33, nat, nat, nat, nat, 80]
    assert unknown.tolist() == [False] * 6 + [True, False]
    assert missing_time.tolist() == [False, False, False, True, False, False, False, False]
    assert missing_in.tolist() == [False] * 8           # row 6: unknown account, row 7: dropped
    # the string kernel gives the same answers on the same values
    as_strings = [pa.array([names[c] if c >= 0 else "" for c in codes], type=pa.large_string())
                  for codes, names in (direction, status)]
    strings = sorting.classify_rows(*(sorting.string_buffers(a) for a in as_strings), delivered, read, sent,
                                    account, dropped)
    for got, want in zip(strings, (inbound, billable, charge, unknown, missing_time, missing_in)):
        assert got.tolist() == want.tolist()


@pytest.mark.parametrize("code_type", [np.int8, np.int16, np.int32, np.int64])
def test_code_kernels_read_codes_in_their_own_type(code_type):
    codes = np.array([2, 0, -1, 2, 1, 2], code_type)          # -1: NaN
    rank = np.array([10, 20, 30, 99])                          # rank[-1] (NaN) reads the last entry
    assert sorting.renumber(codes, rank).tolist() == [30, 10, 99, 30, 20, 30]
    assert sorting.code_counts(codes, 3).tolist() == [1, 1, 3]
    nat = np.iinfo(np.int64).min
    sent = np.array([50, 40, 1, 30, nat, 60])                  # row 2 (NaN code) belongs to no group
    later = np.full(6, nat)
    later[4] = 70                                              # group 1: only its delivered instant
    assert sorting.first_instants(codes, 3, sent, later, np.full(6, nat)).tolist() == [40, 70, 30]
    # no widening copy: the kernels get the codes' own buffer
    assert sorting.same_code_type(codes)[0].dtype == np.dtype(code_type)
    assert np.shares_memory(sorting.same_code_type(codes)[0], codes)
    # mixed types meet in the widest; non-code input is read as int64
    wide, narrow = sorting.same_code_type(codes, codes.astype(np.int64))
    assert wide.dtype == narrow.dtype == np.dtype(np.int64)
    assert sorting.same_code_type(codes.astype(np.float64))[0].dtype == np.dtype(np.int64)


@pytest.mark.parametrize("step", [10**9, 10**6, 10**3, 1, 7 * 10**8])
@pytest.mark.parametrize("sign", [1, -1])
def test_event_stats_unit_is_the_largest_power_dividing_every_offset(step, sign):
    rng = np.random.default_rng(step % 97)
    n = 500
    t_all = sign * (1_746_000_000 * 10**9 + 123 + rng.integers(0, 10**6, n) * step)
    rows = np.flatnonzero(rng.random(n) < 0.8)
    phone, user = rng.integers(0, 24, n), rng.integers(0, 9000, n)
    t0, t1, pmax, umax, unit = sorting.event_stats(rows, phone, user, t_all)
    t = t_all[rows]
    assert (t0, t1, pmax, umax) == (t.min(), t.max(), phone[rows].max(), user[rows].max())
    expected = next(u for u in (10**9, 10**6, 10**3, 1) if ((t - t0) % u == 0).all())
    assert unit == expected == {10**9: 10**9, 10**6: 10**6, 10**3: 10**3, 1: 1, 7 * 10**8: 10**6}[step]
