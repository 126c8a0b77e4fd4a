"""parse_instants (compiled scan of the common shapes + pandas route for the rest) equals the
pandas route alone (``reference_parse_instants`` below) on every value: instants, ``bad`` and ``naive``
masks, dtype and index; and the contract's edges, derived by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.io import instants
from reconcile.io.tables import _parse_instant_texts, parse_instants


def reference_parse_instants(values: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """A text column read by the pandas route alone (``_parse_instant_texts``, the contract on every
    edge) instead of the compiled scan first."""
    assert values.dtype.kind not in "Miuf", "typed and numeric columns: see test_typed_and_numeric_columns"
    ns, bad, naive = _parse_instant_texts(values.astype("str").fillna("").reset_index(drop=True))
    out = pd.Series(pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC"), index=values.index)
    return out, bad, naive


def assert_same(values: pd.Series) -> None:
    try:
        want, want_bad, want_naive = reference_parse_instants(values)
    except Exception as exc:        # noqa: BLE001 - the same failure (e.g. OutOfBoundsDatetime) is the contract
        with pytest.raises(type(exc)):
            parse_instants(values)
        return
    got, got_bad, got_naive = parse_instants(values)
    assert str(got.dtype) == str(want.dtype) == "datetime64[ns, UTC]"
    assert got.index.equals(want.index)
    g = got.to_numpy(dtype="datetime64[ns]").view(np.int64)
    w = want.to_numpy(dtype="datetime64[ns]").view(np.int64)
    diff = np.flatnonzero((g != w) | (got_bad != want_bad) | (got_naive != want_naive))
    assert not len(diff), [(values.iloc[i], got.iloc[i], want.iloc[i], got_bad[i], want_bad[i], got_naive[i],
                            want_naive[i]) for i in diff[:10]]
    assert got_bad.dtype == bool and got_naive.dtype == bool


def _str(values) -> pd.Series:
    return pd.Series(values, dtype="str")


# ------------------------------------------------------------------------------------------ hand-written edges
EDGES = [
    # the common shapes
    "2025-07-09T08:39:01Z", "2025-07-09 08:39:01Z", "2025-07-09T08:39:01", "2025-07-09 08:39:01",
    "2025-07-09T08:39:01+05:30", "2025-07-09 08:39:01-03:00", "2025-07-09T08:39:01-00:00", "2025-07-09T08:39:01+00:00",
    "2025-07-09T08:39:01.5Z", "2025-07-09T08:39:01.123Z", "2025-07-09T08:39:01.123456Z",
    "2025-07-09T08:39:01.123456789Z", "2025-07-09T08:39:01.000000001+05:30", "2025-07-09T08:39:01.999999999-23:59",
    "2025-07-09T08:39:01.123", "1751607126", "-1751607126", "1751607126000", "-1751607126000", "0", "-0", "7",
    "0000000000001", "0001751607126", "9223372036", "-9223372036", "9223372036854", "-9223372036854",
    # left to pandas: lower-case z, other offset spellings, fractions, reduced precision, dates only
    "2025-07-09T08:39:01z", "2025-07-09 08:39:01z", "2025-07-09t08:39:01Z", "2025-07-09T08:39:01+0530",
    "2025-07-09T08:39:01+05", "2025-07-09T08:39:01+00", "2025-07-09T08:39:01.123+0530", "2025-07-09T08:39:01 +05:30",
    "2025-07-09T08:39:01 Z", "2025-07-09T08:39:01.Z", "2025-07-09T08:39:01.1234567891Z",
    "2025-07-09T08:39:01.12345678912345Z", "2025-07-09T08:39:01,5Z", "2025-07-09T08:39Z", "2025-07-09T08Z",
    "2025-07-09T08:39", "2025-07-09", "2025-07-09Z", "2025-07", "2025", "20250709T083901Z", "20250709",
    "2025-7-9T08:39:01Z", "2025-07-09T8:39:01Z", "2025-07-09  08:39:01Z", "2025-07-09T08:39:01Z+00:00",
    "2025-07-09T08:39:01UTC", "2025-07-09T08:39:01+05:30:00", "2025-07-09T08:39:01+5:30", "2025-07-09T08:39:01+05:3",
    "+2025-07-09T08:39:01Z", "-2025-07-09T08:39:01Z", "02025-07-09T08:39:01Z",
    # invalid or out-of-range fields
    "2025-07-09T23:59:60Z", "2016-12-31T23:59:60Z", "2025-07-09T24:00:00Z", "2025-07-09T23:60:00Z",
    "2025-13-01T00:00:00Z", "2025-00-01T00:00:00Z", "2025-01-00T00:00:00Z", "2025-01-32T00:00:00Z",
    "2024-02-29T00:00:00Z", "2025-02-29T00:00:00Z", "2025-02-30T00:00:00Z", "2025-04-31T00:00:00Z",
    "2000-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "1700-02-29T00:00:00Z",
    "2025-07-09T08:39:01+24:00", "2025-07-09T08:39:01+23:59", "2025-07-09T08:39:01+99:00", "2025-07-09T08:39:01+05:60",
    "1677-09-21T00:12:43.145224193Z", "1677-09-21T00:12:43.145224192Z", "1677-09-21T00:12:44Z",
    "1677-12-31T23:59:59Z", "1678-01-01T00:00:00Z", "1678-01-01T00:00:00+23:59", "1678-01-01T00:00:00-23:59",
    "2261-12-31T23:59:59-23:59", "2262-01-01T00:00:00Z", "2262-04-11T23:47:16.854775807Z",
    "2262-04-11T23:47:16.854775808Z", "2262-04-12T05:00:00+06:00", "1677-09-20T23:00:00-02:00",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999999Z",
    # epoch edges: int64 overflow (wraps in the pandas route), 14 digits, signs, decimals
    "9223372037", "-9223372037", "99999999999", "999999999999", "9223372036855", "9999999999999",
    "-9999999999999", "17516071260000", "--1751607126", "+1751607126", "1751607126.0", "1751607126.5", "1e9",
    "١٧٥١٦٠٧١٢٦", "٢٠٢٥-07-09T08:39:01Z",
    # whitespace, empties, junk
    "", " ", "   ", "\t", "\n", " 1751607126 ", "\t2025-07-09T08:39:01Z\n", "\u00a02025-07-09T08:39:01Z",
    "2025-07-09T08:39:01Z\u3000", " 2025-07-09T08:39:01Z", "2025-07-09T08:39:01Z ", "garbage", "not a time", "nan",
    "NaT", "None", "null", "Today", "NOW", "T", "Z", "-", ":", "2025-07-09T08:39:01\x00", "2025-07-09T08:39:01Zé",
]


def test_hand_written_edges_equal_the_pandas_route():
    assert_same(_str(EDGES))
    assert_same(pd.Series(EDGES + [None, np.nan], dtype=object))
    assert_same(pd.Series(EDGES, dtype=object, index=np.arange(len(EDGES)) * 7 + 3))


def test_contract_edges_by_hand():
    # contracts.md "Timestamps": ISO 8601 (a four-digit year first), epoch seconds / 13-digit milliseconds
    values = _str(["now", " today ", "2025-07-09", "2025-07-09T08:39:01Z", "1000-07-09T08:40:14Z", "9223372037",
                   "9223372036", "-9223372036855", "2025-07-09T08:39+05:30", "2025-07"])
    got, bad, naive = parse_instants(values)
    # "now"/"today" are no timestamps (pandas alone would read the clock): bad_timestamp
    # a date alone has no offset: read as UTC midnight, with the without-offset warning
    # the year 1000 and epoch values past 2262-04-11 do not fit nanoseconds: bad_timestamp, not a crash
    # (9223372037 s would wrap around to 1677 if multiplied blindly)
    assert bad.tolist() == [True, True, False, False, True, True, False, True, False, False]
    assert naive.tolist() == [False, False, True, False, False, False, False, False, False, True]
    assert got.iloc[2] == pd.Timestamp("2025-07-09T00:00:00Z")
    assert got.iloc[6] == pd.Timestamp("2262-04-11T23:47:16Z")
    assert got.iloc[8] == pd.Timestamp("2025-07-09T03:09:00Z")
    assert got.iloc[9] == pd.Timestamp("2025-07-01T00:00:00Z")
    assert got[bad].isna().all()


def test_common_shapes_take_the_compiled_scan():
    ns, status, fine = instants.scan_column(pa.array(
        ["2025-07-09T08:39:01Z", "2025-07-09 08:39:01.25+05:30", "2025-07-09T08:39:01", "1751607126", "",
         "1751607126000", "2025-07-09T08:39:01z", " 1751607126"], pa.large_string()))
    assert not fine
    assert status.tolist() == [instants.AWARE, instants.AWARE, instants.NAIVE, instants.AWARE, instants.EMPTY,
                               instants.AWARE, instants.OTHER, instants.OTHER]
    assert ns[0] == ns[2] == pd.Timestamp("2025-07-09T08:39:01Z").value
    assert ns[1] == pd.Timestamp("2025-07-09T03:09:01.25Z").value
    assert ns[3] == ns[5] == 1751607126 * 10 ** 9
    assert ns[4] == ns[6] == ns[7] == instants.NAT


@pytest.mark.parametrize("far", ["1000-07-09T08:40:14Z", "1677-09-21T00:12:43Z", "2262-04-12T00:00:00Z",
                                 "9999-12-31T23:59:59+05:30", "0001-01-01", "1677-01-01T00:00:00.123456789Z"])
@pytest.mark.parametrize("other", ["2025-07-09T08:39:01Z", "2025-07-09T08:39:01.123456Z",
                                   "2025-07-09T08:39:01.1234567Z",
                                   "2025-07-09T08:39:01.000000000+05:30", "2025-07-09 08:39:01.123456789",
                                   "2025-02-30T00:00:00.123456789Z", " 2025-07-09T08:39:01.123456789Z", "junk", ""])
def test_out_of_nanosecond_range_values_are_bad_whatever_the_column_unit(far, other):
    # pandas reads the column in microseconds unless a parsed value has 7-9 fraction digits; either way a
    # value outside 1677-2262 is a bad timestamp (never an overflow error that fails the run)
    for values in (_str([far, other, "2025-07-09T08:39:01Z", "1751607126"]), _str([other, "2025-07-09T08:39:01Z", far])):
        assert_same(values)
        got, bad, _ = parse_instants(values)
        at = values.tolist().index(far)
        assert bad[at] and got.iloc[at] is pd.NaT


def test_every_date_of_the_accepted_years_and_every_offset():
    days = pd.date_range("1677-09-21", "2262-04-11", freq="D")
    rng = np.random.default_rng(1)
    secs = rng.integers(0, 86400, len(days))
    stamps = (days.values.astype("datetime64[s]") + secs.astype("timedelta64[s]"))
    text = np.datetime_as_string(stamps, unit="s").astype(object)
    tails = np.array(["Z", "", "+05:30", "-23:59", "+23:59", ".123456789Z", ".5-01:00", "+00:00"], dtype=object)
    values = text + tails[rng.integers(0, len(tails), len(text))]
    sep = rng.random(len(values)) < 0.3
    values[sep] = [v[:10] + " " + v[11:] for v in values[sep]]
    assert_same(_str(values))
    # invalid days of every month of a few years (leap rules at centuries)
    bad_days = [f"{y}-{m:02d}-{d:02d}T12:00:00Z" for y in (1700, 1800, 1900, 2000, 2023, 2024, 2100, 2200, 2261)
                for m in range(0, 14) for d in (0, 28, 29, 30, 31, 32)]
    assert_same(_str(bad_days))
    offsets = [f"2025-07-09T08:39:01{s}{h:02d}:{m:02d}" for s in "+-" for h in range(0, 26) for m in range(0, 62)]
    assert_same(_str(offsets))
    times = [f"2025-07-09T{h:02d}:{m:02d}:{s:02d}Z" for h in range(0, 26) for m in (0, 59, 60) for s in (0, 59, 60, 61)]
    assert_same(_str(times))


def test_arrow_layouts_chunks_slices_nulls_and_string_widths():
    values = EDGES * 3
    for typ in (pa.string(), pa.large_string()):
        arr = pa.array(values[:50] + [None] + values[50:], typ)
        chunked = pa.chunked_array([arr.slice(0, 17), arr.slice(17, 0), arr.slice(17, 40), arr.slice(57)])
        series = pd.Series(pd.arrays.ArrowStringArray(chunked))
        assert_same(series)
        ns, status, fine = instants.scan_column(chunked)
        ref_ns, ref_status, ref_fine = instants.scan_column(pa.array(arr.to_pylist(), pa.large_string()))
        assert ns.tolist() == ref_ns.tolist() and status.tolist() == ref_status.tolist() and fine == ref_fine
    # a null whose slot holds bytes is empty
    arr = pa.Array.from_buffers(pa.large_string(), 2, [pa.py_buffer(np.packbits([0, 1], bitorder="little")),
                                                        pa.py_buffer(np.array([0, 10, 20], np.int64)),
                                                        pa.py_buffer(b"17516071261751607126")])
    ns, status, _ = instants.scan_column(arr)
    assert status.tolist() == [instants.EMPTY, instants.AWARE] and ns[0] == instants.NAT
    assert instants.scan_column(pa.array([], pa.string()))[0].shape == (0,)
    assert instants.scan_column(pa.array(["2025-07-09T08:39:01.1234567Z"]))[2]
    assert not instants.scan_column(pa.array(["2025-07-09T08:39:01.123456Z", " 2025-07-09T08:39:01.1234567Z"]))[2]


def test_typed_and_numeric_columns():
    t = pd.Timestamp(1751607126, unit="s", tz="UTC")                  # 2025-07-04T05:32:06Z
    # epoch seconds, 13-digit (>= 1e12) milliseconds, negative and zero
    got, bad, naive = parse_instants(pd.Series([1751607126, 1751607126000, -5, 0], dtype="int64"))
    assert got.tolist() == [t, t, pd.Timestamp("1969-12-31T23:59:55Z"), pd.Timestamp(0, tz="UTC")]
    assert not bad.any() and not naive.any() and str(got.dtype) == "datetime64[ns, UTC]"
    # floats: a fraction kept, NaN empty (not bad), milliseconds past 2262 bad
    got, bad, naive = parse_instants(pd.Series([1751607126.5, np.nan, 1e13, 1e20], dtype="float64"))
    assert got.iloc[0] == t + pd.Timedelta(milliseconds=500) and got.iloc[1:].isna().all()
    assert bad.tolist() == [False, False, True, True] and not naive.any()
    # typed timestamps: naive ones read as UTC and flagged, zoned ones converted
    got, bad, naive = parse_instants(pd.Series(pd.to_datetime(["2025-07-09T08:39:01", None])))
    assert got.iloc[0] == pd.Timestamp("2025-07-09T08:39:01Z") and got.isna().tolist() == [False, True]
    assert naive.tolist() == [True, False] and not bad.any()
    got, bad, naive = parse_instants(pd.Series(pd.to_datetime(["2025-07-09T08:39:01+05:30", None], utc=True)))
    assert got.iloc[0] == pd.Timestamp("2025-07-09T03:09:01Z") and not naive.any() and not bad.any()
    for empty in (pd.Series([], dtype="str"), pd.Series([], dtype=object)):
        got, bad, naive = parse_instants(empty)
        assert len(got) == len(bad) == len(naive) == 0 and str(got.dtype) == "datetime64[ns, UTC]"


# ------------------------------------------------------------------------------------------ generated values
_digits = st.text(alphabet="0123456789", min_size=0, max_size=4)


@st.composite
def iso_values(draw):
    year = draw(st.one_of(st.sampled_from(["1677", "1678", "1700", "1900", "2000", "2024", "2025", "2100", "2261",
                                           "2262", "0001", "9999", "0000"]),
                          st.integers(0, 9999).map(lambda y: f"{y:04d}"), _digits))
    month = draw(st.one_of(st.integers(0, 13).map(lambda m: f"{m:02d}"), _digits))
    day = draw(st.one_of(st.integers(0, 32).map(lambda d: f"{d:02d}"), _digits))
    sep = draw(st.sampled_from(["T", " ", "t", "  ", "", "_"]))
    hh = draw(st.one_of(st.integers(0, 25).map(lambda h: f"{h:02d}"), _digits))
    mm = draw(st.one_of(st.integers(0, 61).map(lambda m: f"{m:02d}"), _digits))
    ss = draw(st.one_of(st.integers(0, 61).map(lambda s: f"{s:02d}"), _digits))
    frac = draw(st.one_of(st.just(""), st.text(alphabet="0123456789", min_size=0, max_size=12).map(lambda f: "." + f),
                          st.sampled_from([",5", ".5.5"])))
    tail = draw(st.one_of(
        st.sampled_from(["", "Z", "z", " Z", "UTC", "+", "-", "Z ", "ZZ"]),
        st.tuples(st.sampled_from("+-"), st.integers(0, 25), st.integers(0, 61), st.sampled_from([":", "", " "]))
        .map(lambda t: f"{t[0]}{t[1]:02d}{t[3]}{t[2]:02d}"),
        st.tuples(st.sampled_from("+-"), st.integers(0, 25)).map(lambda t: f"{t[0]}{t[1]:02d}"),
        _digits.map(lambda d: "+" + d)))
    shape = draw(st.sampled_from(["full", "full", "full", "date", "minutes", "hours"]))
    if shape == "date":
        text = f"{year}-{month}-{day}"
    elif shape == "minutes":
        text = f"{year}-{month}-{day}{sep}{hh}:{mm}{tail}"
    elif shape == "hours":
        text = f"{year}-{month}-{day}{sep}{hh}{tail}"
    else:
        text = f"{year}-{month}-{day}{sep}{hh}:{mm}:{ss}{frac}{tail}"
    return text


epoch_values = st.one_of(
    st.integers(-10 ** 14, 10 ** 14).map(str),
    st.tuples(st.sampled_from(["", "-", "--", "+"]), st.text(alphabet="0123456789", min_size=1, max_size=15))
    .map("".join),
    st.sampled_from(["9223372036", "9223372037", "-9223372037", "9223372036854", "9223372036855", "9999999999999"]))


@st.composite
def mutated(draw, base):
    text = draw(base)
    if text and draw(st.booleans()):
        i = draw(st.integers(0, len(text) - 1))
        c = draw(st.one_of(st.sampled_from(list("0123456789-:+TZz .\t")), st.characters()))
        text = text[:i] + c + text[i + 1:] if draw(st.booleans()) else text[:i] + c + text[i:]
    return text


padding = st.sampled_from(["", "", "", " ", "\t", "\u00a0", "\n", "  "])
values = st.one_of(
    st.tuples(padding, st.one_of(mutated(iso_values()), mutated(epoch_values)), padding).map("".join),
    iso_values(), epoch_values, st.text(max_size=30), st.sampled_from(["", " ", None]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(values, min_size=1, max_size=40), st.booleans())
def test_generated_values_equal_the_pandas_route(items, as_object):
    items = [v if v is None or v.strip().lower() not in ("now", "today") else "x" for v in items]
    series = pd.Series(items, dtype=object) if as_object else pd.Series(items, dtype="str")
    assert_same(series)


@pytest.mark.parametrize("seed", [0, 1])
def test_large_mixed_column_equals_the_pandas_route(seed):
    rng = np.random.default_rng(seed)
    n = 20_000
    seconds = rng.integers(-86400 * 400, 86400 * 400, n).astype("timedelta64[s]")
    base = np.datetime64("2025-07-01T00:00:00", "s") + seconds
    text = np.datetime_as_string(base, unit="s").astype(object)
    kind = rng.integers(0, 10, n)
    out = text + "Z"
    out[kind == 1] = text[kind == 1] + "+05:30"
    out[kind == 2] = text[kind == 2]
    out[kind == 3] = base[kind == 3].astype(np.int64).astype(str)
    out[kind == 4] = (base[kind == 4].astype(np.int64) * 1000).astype(str)
    out[kind == 5] = ""
    out[kind == 6] = [t.replace("T", " ") + "z" for t in text[kind == 6]]
    out[kind == 7] = "junk"
    out[kind == 8] = [" " + t + ".25Z " for t in text[kind == 8]]
    assert_same(_str(out))
