"""Conservation checks built into every run: no message lost, none counted twice.

1. **Rows**: every input message row is accounted for — rejected by a reader (with a finding),
   merged into another row of its message id, excluded as a conflicting duplicate, or one
   deduplicated message that is inbound, non-billable outbound or billable outbound.
2. **Billable messages of the period** (delivered in the period, account time): each is in
   exactly one bucket — covered by a unit of the period, covered by a window opened before the
   period, free and not a unit, or excluded by a named data-quality rule — and the units'
   ``message_count`` adds up to the messages that ride on them.
3. **Totals**: the amounts written (CSV, warehouse) add up to the units computed, per currency,
   and the variance's expected totals equal the units' totals.

A broken check raises :class:`ConservationError`; the pipeline then publishes nothing (exit 1).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from .contracts import Period
from .engine.buffers import string_buffers


#: match strings with the compiled kernels below (``False``: Arrow's kernels only; tests compare both)
COMPILED = True


class ConservationError(RuntimeError):
    """A conservation check failed: the run's numbers cannot be trusted, nothing is published."""


def row_ledger(rows_in_files: int, rejected_by_readers: int, engine_counts: dict, *, out_of_scope: int = 0) -> dict:
    """Every input message row accounted for (check 1). Returns the ledger for run.json.
    ``out_of_scope``: rows of accounts left out by ``--waba``."""
    ledger = {
        "rows_in": int(rows_in_files),
        "rejected_by_readers": int(rejected_by_readers),
        "out_of_scope": int(out_of_scope),
        "duplicates_merged": int(engine_counts.get("duplicates_merged", 0)),
        "conflicting_duplicates": int(engine_counts.get("conflicting_duplicates", 0)),
        "inbound": int(engine_counts.get("inbound", 0)),
        "non_billable": int(engine_counts.get("non_billable", 0)),
        "billable_outbound": int(engine_counts.get("billable_outbound", 0)),
    }
    read = int(engine_counts.get("input_rows", 0))
    accounted = (ledger["duplicates_merged"] + ledger["conflicting_duplicates"] + ledger["inbound"]
                 + ledger["non_billable"] + ledger["billable_outbound"])
    ledger["rows_accounted"] = ledger["rejected_by_readers"] + ledger["out_of_scope"] + accounted
    if rows_in_files >= 0 and ledger["rows_accounted"] != ledger["rows_in"]:
        raise ConservationError(
            f"message rows do not add up: {ledger['rows_in']} in the files, {ledger['rows_accounted']} accounted "
            f"for ({ledger})")
    if accounted != read:
        raise ConservationError(f"the engine read {read} rows but accounts for {accounted} ({ledger})")
    return ledger


def _arrow_strings(values) -> pa.Array:
    """A string column as one contiguous Arrow array (``large_string`` or ``string``; pandas ``str``
    columns are handed over without a copy)."""
    arr = pa.array(values, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    return arr


def _strings(values) -> pa.Array:
    arr = pa.array(values, from_pandas=True)
    return arr.cast(pa.string()) if arr.type != pa.string() else arr


def _is_in(values, pool: pa.Array) -> np.ndarray:
    """Vectorised membership of strings (Arrow hash set; pandas' ``isin`` on str is a Python loop)."""
    return pc.fill_null(pc.is_in(_strings(values), value_set=pool), False).to_numpy(zero_copy_only=False)


def _np(mask) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _codes_in(strings: pa.Array, values: list[str]) -> np.ndarray:
    """Per string, the position of the first equal one of the few ``values``, -1 for none or a null
    (one compiled pass over the Arrow buffers; with nulls one Arrow comparison per value)."""
    if COMPILED and strings.null_count == 0:
        offsets, data = string_buffers(strings)
        vocab_offsets, vocab_data = string_buffers(pa.array(values, type=pa.large_string()))
        return _vocabulary_codes(offsets, data, vocab_offsets, vocab_data)
    codes = np.full(len(strings), -1, dtype=np.int64)
    for code in range(len(values) - 1, -1, -1):
        codes[_np(pc.equal(strings, pa.scalar(values[code], type=strings.type)))] = code
    return codes


def message_buckets(coverage: pd.DataFrame, units: pd.DataFrame, raw_units: pd.DataFrame, period: Period,
                    excluded_ids: set[str] | pd.Index) -> dict:
    """Every billable outbound message delivered in the period is in exactly one bucket (check 2).

    The coverage columns are used as Arrow arrays (boolean masks, no filtered copy of the frame); the
    opening message ids are matched by :func:`_opener_positions`."""
    in_period = _codes_in(_arrow_strings(coverage["billing_month"]), list(period.months)) >= 0
    outcome = _codes_in(_arrow_strings(coverage["outcome"]), ["unit_opener", "rode_on_unit", "free_not_unit",
                                                               "excluded"])
    rides_any = (outcome == 0) | (outcome == 1)
    earlier = (raw_units["billing_month"].astype(str) < period.first).to_numpy(dtype=bool)
    opener_pos, unit_pos, n_period, period_ids = _opener_positions(
        units["opening_message_id"], raw_units["opening_message_id"], earlier,
        coverage["unit_opening_message_id"], rides_any, in_period)
    opener_of_period = (opener_pos >= 0) & (opener_pos < n_period)
    rides = rides_any & in_period
    in_unit_of_period = rides & opener_of_period
    in_earlier_window = rides & ~in_unit_of_period & (opener_pos >= n_period)
    free = in_period & (outcome == 2)
    excluded = in_period & (outcome == 3)
    buckets = {
        "billable_in_period": int(in_period.sum()),
        "covered_by_unit_of_period": int(in_unit_of_period.sum()),
        "covered_by_window_before_period": int(in_earlier_window.sum()),
        "free_not_a_unit": int(free.sum()),
        "excluded_by_data_quality_rule": int(excluded.sum()),
    }
    message_ids = coverage["message_id"]
    lost = in_period & ~(in_unit_of_period | in_earlier_window | free | excluded)
    if lost.any():
        sample = message_ids.iloc[np.flatnonzero(lost)[:3]].tolist()
        raise ConservationError(f"{int(lost.sum())} billable messages of the period are in no bucket "
                                f"(e.g. {sample})")
    excluded_pos = np.flatnonzero(excluded)
    unnamed_pos = excluded_pos[~_is_in(message_ids.iloc[excluded_pos],
                                       pa.array(sorted(excluded_ids), type=pa.string()))]
    if len(unnamed_pos):
        raise ConservationError(f"{len(unnamed_pos)} messages excluded without a data-quality finding "
                                f"(e.g. {message_ids.iloc[unnamed_pos[:3]].tolist()})")
    # units ↔ messages: every unit's message_count equals the messages that opened or rode on it
    ridden = np.bincount(opener_pos[rides_any & opener_of_period], minlength=n_period)
    counted = np.bincount(unit_pos, weights=units["message_count"].to_numpy(dtype=np.float64), minlength=n_period)
    differs = np.flatnonzero(counted != ridden)
    if len(differs):
        raise ConservationError(f"{len(differs)} units whose message_count differs from the "
                                f"messages covered (e.g. {period_ids(differs[:3])})")
    buckets["messages_in_units_of_period"] = int(ridden.sum())
    return buckets


def _opener_positions(unit_openers: pd.Series, raw_openers: pd.Series, earlier: np.ndarray,
                      coverage_openers: pd.Series, riding: np.ndarray, in_period: np.ndarray):
    """Where the opener of each riding coverage row is: ``opener_pos`` is the position of its id among
    the distinct opening ids of the period's units (first appearance order), ``n_period`` when it is
    only the opening id of a unit of an earlier month (``earlier`` rows of the raw units; told apart
    only for rows ``in_period``, the only ones the buckets look at), -1 when it is neither or the row
    does not ride. Also ``unit_pos`` (each unit's position among those distinct ids),
    ``n_period`` and a function giving the ids at some positions (for messages).

    Without nulls the ids are matched by one compiled pass over the Arrow buffers
    (:func:`_locate_openers`, an open-addressing table of the distinct ids, every candidate confirmed
    byte for byte); with nulls by Arrow's hash kernels (``unique``/``index_in``, where a null matches a
    null)."""
    arrays = [_arrow_strings(unit_openers), _arrow_strings(raw_openers), _arrow_strings(coverage_openers)]
    if COMPILED and all(a.null_count == 0 for a in arrays):
        (a_off, a_data), (b_off, b_data), (c_off, c_data) = (string_buffers(a) for a in arrays)
        unit_pos, first_row, opener_pos = _locate_openers(a_off, a_data, b_off, b_data, earlier, c_off, c_data,
                                                          riding, in_period)
        return (opener_pos, unit_pos, len(first_row), lambda pos: arrays[0].take(pa.array(first_row[pos])).to_pylist())
    period_openers = pc.unique(_strings(unit_openers))
    earlier_openers = pc.unique(_strings(raw_openers[earlier]))
    opener = _strings(coverage_openers)
    n_period = len(period_openers)
    rows = np.flatnonzero(riding)
    opener_pos = np.full(len(riding), -1, dtype=np.int64)
    opener_pos[rows] = np.asarray(pc.fill_null(pc.index_in(opener.take(pa.array(rows)), value_set=pa.concat_arrays(
        [period_openers, earlier_openers.cast(period_openers.type)])), -1), dtype=np.int64)
    unit_pos = np.asarray(pc.index_in(_strings(unit_openers), value_set=period_openers), dtype=np.int64)
    return opener_pos, unit_pos, n_period, lambda pos: period_openers.take(pa.array(pos)).to_pylist()


def load_kernels() -> None:
    """Load the compiled kernels from numba's cache (tiny inputs of the real types), so that the first
    check of a run does not pay for it (``reconcile.engine.start_warm_up`` calls this)."""
    ids = pd.Series(["m1", "m2"], dtype="str")
    _codes_in(_arrow_strings(ids), ["m1"])
    _opener_positions(ids, ids, np.array([False, True]), ids, np.array([True, True]), np.array([True, False]))


# The kernels below read the strings of Arrow buffers (``offsets`` int64, ``data`` uint8) eight bytes
# at a time. Byte positions are ``uint64``: with a signed index numba checks every read for a negative
# (wrap-around) index, which keeps LLVM from merging the eight byte reads of a word into one load.

_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True, inline="always")
def _load8(data, start):
    """Bytes ``start .. start + 7`` as one little-endian 64-bit word (all must be in ``data``)."""
    s = np.uint64(start)
    return (np.uint64(data[s]) | (np.uint64(data[s + np.uint64(1)]) << np.uint64(8))
            | (np.uint64(data[s + np.uint64(2)]) << np.uint64(16))
            | (np.uint64(data[s + np.uint64(3)]) << np.uint64(24))
            | (np.uint64(data[s + np.uint64(4)]) << np.uint64(32))
            | (np.uint64(data[s + np.uint64(5)]) << np.uint64(40))
            | (np.uint64(data[s + np.uint64(6)]) << np.uint64(48))
            | (np.uint64(data[s + np.uint64(7)]) << np.uint64(56)))


@njit(cache=True, nogil=True, inline="always")
def _word(data, start, nbytes):
    """The ``nbytes`` (clipped to 0..8) bytes from ``start`` as a little-endian word, zeros above them.
    One load when 8 bytes are readable there (the bytes past the string are masked off), else byte by byte
    (the end of the buffer)."""
    m = min(max(nbytes, 0), 8)
    if start + 8 <= data.shape[0]:
        half = np.uint64(4 * m)               # two shifts: a shift by 64 is undefined
        return _load8(data, start) & ~((_ALL_ONES << half) << half)
    w = np.uint64(0)
    for j in range(m):
        w |= np.uint64(data[np.uint64(start + j)]) << np.uint64(8 * j)
    return w


@njit(cache=True, nogil=True)
def _hash(offsets, data, i):
    """64-bit hash of string ``i``: its length and its bytes eight at a time, then the murmur3
    finaliser (so that both its low bits, the table slot, and its high bits are well mixed)."""
    start = offsets[i]
    n = offsets[i + 1] - start
    h = np.uint64(n) * _GOLDEN
    k = 0
    while k + 8 < n:
        h = (h ^ _word(data, start + k, 8)) * _GOLDEN
        h ^= h >> np.uint64(29)
        k += 8
    h ^= _word(data, start + k, n - k)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True, nogil=True)
def _same(offsets1, data1, i, offsets2, data2, j):
    """String ``i`` of the first buffers equals string ``j`` of the second (length, then 8 bytes at a time)."""
    start1 = offsets1[i]
    start2 = offsets2[j]
    n = offsets1[i + 1] - start1
    if offsets2[j + 1] - start2 != n:
        return False
    k = 0
    while k < n:
        if _word(data1, start1 + k, n - k) != _word(data2, start2 + k, n - k):
            return False
        k += 8
    return True


@njit(cache=True, nogil=True)
def _vocabulary_codes(offsets, data, vocab_offsets, vocab_data):
    """Per string, the first equal vocabulary entry, -1 for none. When no entry is longer than 16 bytes
    a string is compared as (length, two 64-bit words) with every entry, without a branch per entry
    (the strings of a column alternate between a few values: branches would mispredict); otherwise
    entry by entry."""
    n = offsets.shape[0] - 1
    nv = vocab_offsets.shape[0] - 1
    codes = np.full(n, -1, np.int64)
    longest = 0
    for v in range(nv):
        longest = max(longest, vocab_offsets[v + 1] - vocab_offsets[v])
    if longest > 16:
        for i in range(n):
            for v in range(nv):
                if _same(offsets, data, i, vocab_offsets, vocab_data, v):
                    codes[i] = v
                    break
        return codes
    lengths = np.empty(nv, np.int64)
    words = np.empty((nv, 2), np.uint64)
    for v in range(nv):
        start = vocab_offsets[v]
        lengths[v] = vocab_offsets[v + 1] - start
        words[v, 0] = _word(vocab_data, start, lengths[v])
        words[v, 1] = _word(vocab_data, start + 8, lengths[v] - 8)
    for i in range(n):
        start = offsets[i]
        length = offsets[i + 1] - start
        w0 = _word(data, start, length)
        w1 = _word(data, start + 8, length - 8)
        code = -1
        for v in range(nv - 1, -1, -1):
            same = (length == lengths[v]) & (w0 == words[v, 0]) & (w1 == words[v, 1])
            code = v if same else code
        codes[i] = code
    return codes


@njit(cache=True, nogil=True)
def _table(n):
    """An empty open-addressing table for ``n`` strings (at most half full) and its slot mask."""
    size = 2
    while size < 2 * n:
        size <<= 1
    return np.zeros(size, np.uint64), np.uint64(size - 1)


@njit(cache=True, nogil=True)
def _tag(h):
    return (h >> np.uint64(32)) | np.uint64(1)


@njit(cache=True, nogil=True)
def _find(table, mask, h, offsets, data, i, t_off, t_data):
    """The entry (a row of ``t_off``/``t_data``) holding string ``i`` (hash ``h``), -1 when absent.
    A slot is 0 (empty) or the hash's high half (tag) << 32 | entry + 1."""
    tag = _tag(h)
    s = h & mask
    while True:
        word = table[s]
        if word == 0:
            return -1
        if word >> np.uint64(32) == tag:
            r = np.int64(word & np.uint64(0xFFFFFFFF)) - 1
            if _same(offsets, data, i, t_off, t_data, r):
                return r
        s = (s + np.uint64(1)) & mask


@njit(cache=True, nogil=True)
def _add(table, mask, h, entry):
    """Put ``entry`` (known absent) into the table."""
    s = h & mask
    while table[s] != 0:
        s = (s + np.uint64(1)) & mask
    table[s] = (_tag(h) << np.uint64(32)) | np.uint64(entry + 1)


@njit(cache=True, nogil=True)
def _filter(hashes):
    """A one-bit-per-slot filter of ``hashes`` (8 to 16 bits per hash, indexed by the hash's top bits,
    independent of the table slot): a clear bit proves a string absent; small enough to stay in cache.
    Returns the bits and the shift that gives a hash's bit position."""
    n_bits = 64
    shift = 58
    while n_bits < 8 * hashes.shape[0]:
        n_bits <<= 1
        shift -= 1
    bits = np.zeros(n_bits // 64, np.uint64)
    for h in hashes:
        b = h >> np.uint64(shift)
        bits[b >> np.uint64(6)] |= np.uint64(1) << (b & np.uint64(63))
    return bits, np.uint64(shift)


@njit(cache=True, nogil=True)
def _lookup(table, mask, bits, shift, t_off, t_data, offsets, data, rows):
    """For each string ``rows[k]`` (of ``offsets``/``data``), the entry of the table (a row of
    ``t_off``/``t_data``, filtered by ``bits``, see :func:`_filter`) holding an equal string, -1 when none.

    In passes over all rows, so that the memory reads of different rows overlap instead of each row
    waiting for its own: the hashes; the filter, which drops most absent strings; the table probed on
    the tags alone; every candidate confirmed byte for byte (an unconfirmed one, a tag collision, is
    looked up again comparing the bytes of every candidate)."""
    n = rows.shape[0]
    hashes = np.empty(n, np.uint64)
    for k in range(n):
        hashes[k] = _hash(offsets, data, rows[k])
    entry = np.full(n, -1, np.int64)
    for k in range(n):
        h = hashes[k]
        b = h >> shift
        if not (bits[b >> np.uint64(6)] >> (b & np.uint64(63))) & np.uint64(1):
            continue
        tag = _tag(h)
        s = h & mask
        while True:
            word = table[s]
            if word == 0:
                break
            if word >> np.uint64(32) == tag:
                entry[k] = np.int64(word & np.uint64(0xFFFFFFFF)) - 1
                break
            s = (s + np.uint64(1)) & mask
    for k in range(n):
        r = entry[k]
        if r >= 0 and not _same(offsets, data, rows[k], t_off, t_data, r):
            entry[k] = _find(table, mask, hashes[k], offsets, data, rows[k], t_off, t_data)
    return entry


@njit(cache=True, nogil=True)
def _locate_openers(a_off, a_data, b_off, b_data, b_keep, c_off, c_data, c_keep, c_in_period):
    """A: the units' opening ids, B: the raw units' (rows ``b_keep``), C: the coverage's openers (rows
    ``c_keep``). Returns each A row's position among A's distinct ids (first appearance order), the
    first A row of each distinct id, and per C row: that position when its id is in A, else the
    number of distinct A ids when the row is ``c_in_period`` and its id is in B, else -1 (B is
    looked at only for rows of the period: elsewhere only A matters).

    Open-addressing tables of the distinct ids (A, then B when some row of the period is not in A);
    the C rows are looked up in A all together (:func:`_lookup`), every match confirmed on the bytes."""
    na = a_off.shape[0] - 1
    nb = b_off.shape[0] - 1
    nc = c_off.shape[0] - 1
    table, mask = _table(na)
    unit_pos = np.empty(na, np.int64)
    first_row = np.empty(na, np.int64)
    a_hashes = np.empty(na, np.uint64)
    n_period = 0
    for i in range(na):
        h = _hash(a_off, a_data, i)
        a_hashes[i] = h
        r = _find(table, mask, h, a_off, a_data, i, a_off, a_data)
        if r < 0:
            _add(table, mask, h, i)
            unit_pos[i] = n_period
            first_row[n_period] = i
            n_period += 1
        else:
            unit_pos[i] = unit_pos[r]
    bits, shift = _filter(a_hashes)
    rows = np.flatnonzero(c_keep)
    entry = _lookup(table, mask, bits, shift, a_off, a_data, c_off, c_data, rows)
    opener_pos = np.full(nc, -1, np.int64)
    in_b = 0
    for k in range(rows.shape[0]):
        i = rows[k]
        if entry[k] >= 0:
            opener_pos[i] = unit_pos[entry[k]]
        elif c_in_period[i]:
            in_b += 1
    if in_b:
        kept = 0
        for i in range(nb):
            if b_keep[i]:
                kept += 1
        table, mask = _table(kept)
        for i in range(nb):
            if b_keep[i]:
                h = _hash(b_off, b_data, i)
                if _find(table, mask, h, b_off, b_data, i, b_off, b_data) < 0:
                    _add(table, mask, h, i)
        for i in rows:
            if opener_pos[i] < 0 and c_in_period[i]:
                if _find(table, mask, _hash(c_off, c_data, i), c_off, c_data, i, b_off, b_data) >= 0:
                    opener_pos[i] = n_period
    return unit_pos, first_row[:n_period], opener_pos


def totals_by_currency(frame: pd.DataFrame, amount: str) -> dict[str, float]:
    if frame.empty:
        return {}
    return {str(k): float(v) for k, v in frame.groupby("currency")[amount].sum(min_count=0).items()}


def assert_totals_agree(label: str, expected: dict[str, float], actual: dict[str, float], *,
                        places: int = 4) -> None:
    """Per-currency totals equal to ``places`` decimals (check 3)."""
    keys = {k for k, v in expected.items() if round(v, places)} | {k for k, v in actual.items() if round(v, places)}
    for cur in sorted(keys):
        a, b = expected.get(cur, 0.0), actual.get(cur, 0.0)
        if abs(a - b) > 0.5 * 10 ** -places + 1e-9 * max(abs(a), 1.0):
            raise ConservationError(f"{label}: {cur} totals differ ({a:.6f} vs {b:.6f})")
