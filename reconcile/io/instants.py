"""Compiled fast path of :func:`reconcile.io.tables.parse_instants` for timestamp texts.

One pass over an Arrow string array's buffers (offsets, bytes) sorts every value into one of:

- ``EMPTY``: the empty string (or null);
- ``AWARE``: ``YYYY-MM-DD[T ]hh:mm:ss[.f…]`` (1-9 fraction digits) followed by ``Z`` or ``±hh:mm``,
  or an integer ``-?\\d{1,13}`` (epoch seconds; 13 digits: epoch milliseconds), parsed here;
- ``NAIVE``: the ISO shape above without ``Z``/offset (read as UTC), parsed here;
- ``OTHER``: anything else, and every value of those shapes whose meaning is not plain: years
  outside 1678-2261 (the nanosecond range is 1677-09-21 … 2262-04-11), invalid dates, hours
  24, seconds 60, offset hours above 23 or minutes above 59, epoch values whose nanoseconds overflow
  int64, surrounding whitespace, lower-case ``z``. :func:`~reconcile.io.tables.parse_instants`
  hands these to its pandas route, whose answer is the contract (contracts.md "Timestamps").

For a value of the accepted shapes the instant is exactly what ``pd.to_datetime(format="ISO8601",
utc=True)`` gives (the property test in ``tests/unit/test_parse_instants.py`` checks this against the
pandas route on generated values). The kernel releases the GIL; :func:`load_kernels` loads it from
numba's cache (compiles it the first time).

The message reader's other compiled passes over Arrow buffers live here too (same loading):
:func:`scale_timestamps` (typed Parquet timestamps → nanoseconds, nulls and out-of-range values NaT),
:func:`byte_range` (may a string column hold whitespace?), :func:`length_range` (shortest and
longest value from the offsets) and :func:`remap_codes` (per-chunk dictionary indices → codes).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..engine.buffers import chunk_buffers as string_buffers
from ..engine.buffers import read_only as _read_only

EMPTY, AWARE, NAIVE, OTHER = 0, 1, 2, 3
NAT = np.iinfo(np.int64).min

_NS = 1_000_000_000
_MAX_EPOCH_S = np.iinfo(np.int64).max // 1_000_000_000          # 9223372036
_MAX_EPOCH_MS = np.iinfo(np.int64).max // 1_000_000              # 9223372036854


@njit(cache=True, nogil=True, inline="always")
def _at(data, p):
    """``data[p]`` as int64, read through an unsigned index: a signed one makes numba check every read for
    a negative (wrap-around) index (measured: the scan 20% slower)."""
    return np.int64(data[np.uint64(p)])


@njit(cache=True, nogil=True, inline="always")
def _digit(c):
    return 48 <= c <= 57


@njit(cache=True, nogil=True, inline="always")
def _two(data, p):
    """The number written by the two bytes at ``p`` (-1 unless both are ASCII digits)."""
    a = _at(data, p) - 48
    b = _at(data, p + 1) - 48
    if a < 0 or a > 9 or b < 0 or b > 9:
        return -1
    return a * 10 + b


@njit(cache=True, nogil=True, inline="always")
def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (year >= 1, H. Hinnant's algorithm)."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@njit(cache=True, nogil=True)
def scan_instants(offsets, data, out, status):
    """Per row ``i`` (bytes ``data[offsets[i]:offsets[i + 1]]``): ``status[i]`` one of ``EMPTY``,
    ``AWARE``, ``NAIVE``, ``OTHER`` and ``out[i]`` the UTC instant in nanoseconds for ``AWARE``/``NAIVE``
    rows (``NAT`` otherwise). Returns whether a parsed ISO value has more than 6 fraction digits (see
    :func:`scan_column`)."""
    n = len(out)
    fine = False
    for i in range(n):
        s = np.int64(offsets[i])
        e = np.int64(offsets[i + 1])
        length = e - s
        out[i] = NAT
        if length == 0:
            status[i] = EMPTY
            continue
        status[i] = OTHER
        c0 = _at(data, s)
        if length <= 14 and (c0 == 45 or _digit(c0)):       # -?\d{1,13}: epoch seconds / milliseconds
            p = s + 1 if c0 == 45 else s
            nd = e - p
            if nd < 1 or nd > 13:
                continue
            v = np.int64(0)
            ok = True
            for q in range(p, e):
                c = _at(data, q)
                if not _digit(c):
                    ok = False
                    break
                v = v * 10 + (c - 48)
            if not ok:
                continue
            if nd == 13:
                if v > _MAX_EPOCH_MS:
                    continue                                 # int64 overflow: the pandas route decides
                v *= 1_000_000
            else:
                if v > _MAX_EPOCH_S:
                    continue
                v *= _NS
            out[i] = -v if c0 == 45 else v
            status[i] = AWARE
            continue
        # YYYY-MM-DD[T ]hh:mm:ss[.f{1,9}][Z|±hh:mm]
        if length < 19:
            continue
        if _at(data, s + 4) != 45 or _at(data, s + 7) != 45 or _at(data, s + 13) != 58 \
                or _at(data, s + 16) != 58:
            continue
        sep = _at(data, s + 10)
        if sep != 84 and sep != 32:                          # 'T' or ' '
            continue
        y1 = _two(data, s)
        y2 = _two(data, s + 2)
        month = _two(data, s + 5)
        day = _two(data, s + 8)
        hh = _two(data, s + 11)
        mi = _two(data, s + 14)
        ss = _two(data, s + 17)
        if y1 < 0 or y2 < 0 or month < 1 or month > 12 or day < 1 or hh < 0 or hh > 23 \
                or mi < 0 or mi > 59 or ss < 0 or ss > 59:
            continue
        year = y1 * 100 + y2
        if year < 1678 or year > 2261:
            continue
        if month == 2:
            leap = (year % 4 == 0) and (year % 100 != 0 or year % 400 == 0)
            dim = 29 if leap else 28
        elif month == 4 or month == 6 or month == 9 or month == 11:
            dim = 30
        else:
            dim = 31
        if day > dim:
            continue
        p = s + 19
        frac = np.int64(0)
        if p < e and _at(data, p) == 46:                     # '.'
            p += 1
            q = 0
            while p < e and q < 10 and _digit(_at(data, p)):
                frac = frac * 10 + (_at(data, p) - 48)
                p += 1
                q += 1
            if q == 0 or q > 9:
                continue
            if q > 6:
                fine = True
            for _ in range(9 - q):
                frac *= 10
        shift = np.int64(0)
        st = NAIVE
        if p < e:
            c = _at(data, p)
            if c == 90 and p + 1 == e:                       # 'Z'
                st = AWARE
            elif (c == 43 or c == 45) and p + 6 == e and _at(data, p + 3) == 58:    # ±hh:mm
                oh = _two(data, p + 1)
                om = _two(data, p + 4)
                if oh < 0 or oh > 23 or om < 0 or om > 59:
                    continue
                shift = (oh * 3600 + om * 60) * (1 if c == 43 else -1)
                st = AWARE
            else:
                continue
        secs = _days_from_civil(year, month, day) * 86400 + hh * 3600 + mi * 60 + ss - shift
        out[i] = secs * _NS + frac
        status[i] = st
    return fine


def scan_column(arr) -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`scan_instants` over a ``pyarrow`` string Array or ChunkedArray: ``(ns int64, status int8)``
    per row (a null is ``EMPTY``) and ``fine``: whether a parsed ISO value has 7-9 fraction digits.

    ``fine`` matters to the ``OTHER`` values: ``pd.to_datetime(format="ISO8601")`` reads a column in
    microseconds unless a value it parses has more than 6 fraction digits, and in microseconds a value
    outside the nanosecond range (e.g. year 1000) parses, so that converting the column to nanoseconds
    raises ``OutOfBoundsDatetime``; in nanoseconds the value is NaT. The pandas route is given the
    ``OTHER`` values plus, when ``fine``, one value with 9 fraction digits, so that it reads them in the
    unit it would have chosen for the whole column."""
    import pyarrow as pa

    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    n = sum(len(c) for c in chunks)
    out = np.empty(n, dtype=np.int64)
    status = np.empty(n, dtype=np.int8)
    pos = 0
    fine = False
    for ch in chunks:
        k = len(ch)
        if k == 0:
            continue
        offsets, data = string_buffers(ch)
        fine |= scan_instants(offsets, data, out[pos:pos + k], status[pos:pos + k])
        if ch.null_count:
            null = ~ch.is_valid().to_numpy(zero_copy_only=False)
            out[pos:pos + k][null] = NAT
            status[pos:pos + k][null] = EMPTY
        pos += k
    return out, status, bool(fine)


@njit(cache=True, nogil=True)
def scale_timestamps(values, bitmap, bit_offset, has_nulls, factor, limit, out, valid, want_valid):
    """One pass over one Arrow int64 timestamp chunk: ``out[i] = values[i] * factor`` (nanoseconds);
    ``NAT`` for a null (bit ``bit_offset + i`` of the validity ``bitmap`` clear; read only when
    ``has_nulls``) and, when ``factor != 1``, for a value outside ``[-limit, limit]`` (its nanoseconds
    overflow int64). With ``want_valid``, ``valid[i]``: neither null nor out of range (else ``valid``
    is not touched). Returns the number of out-of-range values (not nulls)."""
    n = len(out)
    far = 0
    check = factor != 1
    for i in range(n):             # branch-free body: nulls come in no order (a branch per row mispredicts)
        v = values[np.uint64(i)]
        present = True
        if has_nulls:
            b = np.uint64(bit_offset + i)
            present = ((bitmap[b >> np.uint64(3)] >> (b & np.uint64(7))) & 1) != 0
        fits = (not check) or (v <= limit and v >= -limit)
        good = present and fits
        out[i] = v * factor if good else NAT
        if want_valid:
            valid[i] = good
        far += present and not fits
    return far


@njit(cache=True, nogil=True)
def byte_range(data):
    """``(smallest, largest)`` byte of ``data`` (``(255, 0)`` when empty), in one pass."""
    lo = np.uint8(255)
    hi = np.uint8(0)
    for i in range(len(data)):
        c = data[np.uint64(i)]
        lo = min(lo, c)
        hi = max(hi, c)
    return lo, hi


@njit(cache=True, nogil=True)
def length_range(offsets):
    """``(shortest, longest)`` value length of a string array's ``offsets`` (n + 1 entries, int32 or
    int64; ``(0, 0)`` when there is no value)."""
    n = len(offsets) - 1
    if n <= 0:
        return np.int64(0), np.int64(0)
    lo = np.int64(offsets[1] - offsets[0])
    hi = lo
    for i in range(1, n):
        k = np.int64(offsets[np.uint64(i + 1)] - offsets[np.uint64(i)])
        lo = min(lo, k)
        hi = max(hi, k)
    return lo, hi


@njit(cache=True, nogil=True)
def remap_codes(indices, remap, out):
    """``out[i] = remap[indices[i]]`` (dictionary indices of one chunk → codes of the merged
    dictionary), an index outside ``remap`` clipped to its ends as ``np.take(mode="clip")`` does."""
    m = len(remap)
    for i in range(len(out)):
        j = np.int64(indices[np.uint64(i)])
        if j < 0:
            j = 0
        elif j >= m:
            j = m - 1
        out[i] = remap[np.uint64(j)]


def load_kernels() -> None:
    """Load :func:`scan_instants` and the reader kernels above from numba's cache (compile them the first
    time) with the argument types of a run (``make install`` should call this, e.g. from
    ``reconcile.engine.load_kernels``)."""
    import pyarrow as pa

    scan_column(pa.array(["2025-07-01T10:00:00Z", "", "1751364000"], pa.large_string()))
    ro = _read_only
    scale_timestamps(ro(np.zeros(2, np.int64)), ro(np.zeros(1, np.uint8)), 0, True, 1000, 10, np.empty(2, np.int64),
                     np.empty(2, np.bool_), True)
    byte_range(ro(np.zeros(2, np.uint8)))
    length_range(ro(np.zeros(3, np.int64)))
    length_range(ro(np.zeros(3, np.int32)))
    for t in (np.int8, np.int16):
        remap_codes(ro(np.zeros(2, np.int32)), ro(np.zeros(1, t)), np.empty(2, t))
