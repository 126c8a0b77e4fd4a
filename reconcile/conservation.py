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

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from .contracts import Period
from .engine.buffers import string_buffers
from .engine.prepare import per_category
from .engine.string_sets import first_occurrence_codes
from .engine.string_sets import hash_tag as _tag
from .engine.string_sets import key_is as _key_is
from .engine.string_sets import same_tail as _same_tail
from .engine.string_sets import string_set as _string_set
from .engine.words import key as _key
from .engine.words import string_hash as _hash


#: match strings with the compiled kernels below (``False``: Arrow's kernels only; tests compare both)
COMPILED = True

#: the coverage's ``outcome`` values, by code
OUTCOMES = ["unit_opener", "rode_on_unit", "free_not_unit", "excluded"]


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
    """Per string, the position (int8: at most 127 ``values``) of the first equal one of the few
    ``values``, -1 for none or a null (one compiled pass over the Arrow buffers; with nulls one Arrow
    comparison per value)."""
    if COMPILED and strings.null_count == 0:
        offsets, data = string_buffers(strings)
        vocab_offsets, vocab_data = string_buffers(pa.array(values, type=pa.large_string()))
        return _vocabulary_codes(offsets, data, vocab_offsets, vocab_data)
    codes = np.full(len(strings), -1, dtype=np.int8)
    for code in range(len(values) - 1, -1, -1):
        codes[_np(pc.equal(strings, pa.scalar(values[code], type=strings.type)))] = code
    return codes


def _before(column: pd.Series, bound: str) -> np.ndarray:
    """``column < bound`` (string order) as a numpy mask, ``False`` for a missing value; a Categorical
    is compared per category."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return per_category(column, _np(pc.less(_arrow_strings(column.cat.categories), bound)), missing=False)
    return _np(pc.less(_arrow_strings(column), bound))


class _Answers:
    """Per row of a string column, a small integer answer about its value (``answer`` maps an Arrow string
    array to int8 answers: its nulls included), kept as ``codes`` into a ``table``: for a Categorical its
    own codes and the answer per category (a missing value: ``missing``, the table's last entry), else the
    answers themselves. :meth:`rows` compares the codes once per entry of the table that matches (few:
    the categories) instead of gathering an answer per row (numpy converts int8 codes to intp for that:
    ~1 ms per column of the 1M run's 644K coverage rows)."""

    def __init__(self, column: pd.Series, answer, missing: int):
        if isinstance(column.dtype, pd.CategoricalDtype):
            self.codes = column.cat.codes.to_numpy()
            self.table = np.append(answer(_arrow_strings(column.cat.categories)), np.int8(missing))
        else:
            self.codes, self.table = answer(_arrow_strings(column)), None

    def rows(self, *answers: int) -> np.ndarray:
        """The rows whose answer is one of ``answers``."""
        wanted = answers if self.table is None else [
            -1 if entry == len(self.table) - 1 else entry for entry, a in enumerate(self.table.tolist())
            if a in answers]
        rows = np.zeros(len(self.codes), dtype=bool) if not wanted else self.codes == wanted[0]
        for code in wanted[1:]:
            rows |= self.codes == code
        return rows


def _month_side(months: pa.Array, period: Period) -> np.ndarray:
    """Per ``billing_month``, -1 for a month before the period, 0 for one of its months, 1 otherwise (after
    it, or missing)."""
    in_period = _codes_in(months, list(period.months)) >= 0
    return np.where(_np(pc.less(months, period.first)), -1, np.where(in_period, 0, 1)).astype(np.int8)


def message_buckets(coverage: pd.DataFrame, units: pd.DataFrame, raw_units: pd.DataFrame, period: Period,
                    excluded_ids) -> dict:
    """Every billable outbound message delivered in the period is in exactly one bucket (check 2).
    ``excluded_ids``: the message ids named by error findings (a set or an array-like of them), or a
    function returning them, run in a second thread while the opening ids are matched (the compiled
    matching runs without the GIL; the checks' Python work stays out of that window: overlapped with the
    sort of the findings, which holds the GIL, the totals took several times their CPU time on a 1M run).

    The coverage columns are used as Arrow arrays (boolean masks, no filtered copy of the frame); the
    opening message ids are matched by :func:`_openers`. Only the riding rows of the period and after
    are matched: a message rides on a unit opened at or before its delivery, so a message of an earlier
    month is no rider of a unit of the period (the units' ``message_count`` must add up without them;
    on a 1M-message run three quarters of the riding rows are such history)."""
    month = _Answers(coverage["billing_month"], lambda months: _month_side(months, period), missing=1)
    outcome = _Answers(coverage["outcome"], lambda outcomes: _codes_in(outcomes, OUTCOMES), missing=-1)
    in_period = month.rows(0)
    riding = outcome.rows(0, 1) & month.rows(0, 1)

    def earlier() -> np.ndarray:            # the raw units of a month before the period
        return _before(raw_units["billing_month"], period.first)

    def match_openers():
        return _openers(units["opening_message_id"], raw_units["opening_message_id"], earlier,
                        coverage["unit_opening_message_id"], riding, in_period)

    if callable(excluded_ids):          # built in a second thread while the compiled matching runs without the GIL
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile-excluded-ids") as pool:
            named_ids = pool.submit(excluded_ids)
            where, unit_pos, ridden, period_ids = match_openers()
        excluded_ids = named_ids.result()
    else:
        where, unit_pos, ridden, period_ids = match_openers()
    rides = riding & in_period
    in_unit_of_period = rides & (where == 1)
    in_earlier_window = rides & (where == 2)
    free = in_period & outcome.rows(2)
    excluded = in_period & outcome.rows(3)
    buckets = {
        "billable_in_period": int(np.count_nonzero(in_period)),
        "covered_by_unit_of_period": int(np.count_nonzero(in_unit_of_period)),
        "covered_by_window_before_period": int(np.count_nonzero(in_earlier_window)),
        "free_not_a_unit": int(np.count_nonzero(free)),
        "excluded_by_data_quality_rule": int(np.count_nonzero(excluded)),
    }
    message_ids = coverage["message_id"]
    lost = in_period & ~(in_unit_of_period | in_earlier_window | free | excluded)
    if lost.any():
        sample = message_ids.iloc[np.flatnonzero(lost)[:3]].tolist()
        raise ConservationError(f"{int(lost.sum())} billable messages of the period are in no bucket "
                                f"(e.g. {sample})")
    excluded_pos = np.flatnonzero(excluded)
    named = pa.array(sorted(excluded_ids), type=pa.string()) if isinstance(excluded_ids, (set, frozenset)) \
        else _strings(excluded_ids)
    unnamed_pos = excluded_pos[~_is_in(message_ids.iloc[excluded_pos], named)]
    if len(unnamed_pos):
        raise ConservationError(f"{len(unnamed_pos)} messages excluded without a data-quality finding "
                                f"(e.g. {message_ids.iloc[unnamed_pos[:3]].tolist()})")
    # units ↔ messages: every unit's message_count equals the messages that opened or rode on it
    counted = np.bincount(unit_pos, weights=units["message_count"].to_numpy(dtype=np.float64),
                          minlength=len(ridden))
    differs = np.flatnonzero(counted != ridden)
    if len(differs):
        raise ConservationError(f"{len(differs)} units whose message_count differs from the "
                                f"messages covered (e.g. {period_ids(differs[:3])})")
    buckets["messages_in_units_of_period"] = int(ridden.sum())
    return buckets


def _openers(unit_openers: pd.Series, raw_openers: pd.Series, earlier, coverage_openers: pd.Series,
             riding: np.ndarray, in_period: np.ndarray):
    """Where the opener of each riding coverage row is, matched on its id: ``where`` (int8 per coverage
    row) is 1 when the id is the opening id of a unit of the period, 2 when it is only the opening id of
    a unit of an earlier month (the raw units of the mask ``earlier()``, asked only when needed; told
    apart only for rows ``in_period``, the only ones the buckets look at), 0 when it is neither or the
    row does not ride. Also ``unit_pos`` (each unit's position among the distinct opening ids of the
    period's units, in first appearance order), ``ridden`` (per such id, the riding rows whose opener
    it is) and a function giving the ids at some positions (for messages).

    Without nulls the ids are matched by compiled passes over the Arrow buffers
    (:func:`_locate_openers`, :func:`_find_strings`: hash tables of the distinct ids, every match
    confirmed byte for byte); with nulls by Arrow's hash kernels (``unique``/``index_in``, where a null
    matches a null)."""
    arrays = [_arrow_strings(unit_openers), _arrow_strings(raw_openers), _arrow_strings(coverage_openers)]
    if COMPILED and all(a.null_count == 0 for a in arrays):
        (a_off, a_data), (c_off, c_data) = string_buffers(arrays[0]), string_buffers(arrays[2])
        unit_pos, first_row, where, ridden, ask = _locate_openers(a_off, a_data, c_off, c_data,
                                                                  np.flatnonzero(riding), in_period)
        if len(ask):                                  # rows of the period whose opener is no unit of the period
            b_off, b_data = string_buffers(arrays[1].filter(pa.array(earlier())))
            where[ask[_find_strings(b_off, b_data, c_off, c_data, ask)]] = 2
        return where, unit_pos, ridden, lambda pos: arrays[0].take(pa.array(first_row[pos])).to_pylist()
    period_openers = pc.unique(_strings(unit_openers))
    earlier_openers = pc.unique(_strings(raw_openers[earlier()]))
    opener = _strings(coverage_openers)
    n_period = len(period_openers)
    rows = np.flatnonzero(riding)
    opener_pos = np.full(len(riding), -1, dtype=np.int64)      # position in the period's then the earlier ids
    opener_pos[rows] = np.asarray(pc.fill_null(pc.index_in(opener.take(pa.array(rows)), value_set=pa.concat_arrays(
        [period_openers, earlier_openers.cast(period_openers.type)])), -1), dtype=np.int64)
    of_period = (opener_pos >= 0) & (opener_pos < n_period)
    where = np.where(of_period, 1, np.where(opener_pos >= n_period, 2, 0)).astype(np.int8)
    ridden = np.bincount(opener_pos[of_period], minlength=n_period)
    unit_pos = np.asarray(pc.index_in(_strings(unit_openers), value_set=period_openers), dtype=np.int64)
    return where, unit_pos, ridden, lambda pos: period_openers.take(pa.array(pos)).to_pylist()


def load_kernels() -> None:
    """Compile (first time after an install) or load from numba's cache the checks' kernels on tiny inputs
    of the real types (``reconcile.engine.load_kernels`` calls this; ``make install`` runs it)."""
    ids = pd.Series(["m1", "m2"], dtype="str")
    _codes_in(_arrow_strings(ids), ["m1"])
    first_occurrence_codes(_arrow_strings(ids))
    raw = pd.Series(["m1", "m2", "m0"], dtype="str")          # m0: the opener of a unit of an earlier month
    _openers(ids, raw, lambda: np.array([False, True, True]), pd.Series(["m1", "m0"], dtype="str"),
             np.array([True, True]), np.array([True, True]))
    totals_by_currency(pd.DataFrame({"currency": ids, "amount": [0.5, 0.25]}), "amount")


# The kernels below read the strings of Arrow buffers eight bytes at a time with the inlined helpers of
# ``reconcile.engine.words`` (uint64 byte positions, a string's key: its length and first 16 bytes).
# Calling a helper that takes many arrays from a loop over rows, even an inlined one, was measured to
# cost several times the work itself: the probing of the hash tables is written out in the loops.


@njit(cache=True, nogil=True, inline="always")
def _same(offsets1, data1, i, offsets2, data2, j):
    """String ``i`` of the first buffers equals string ``j`` of the second."""
    n1, a0, a1 = _key(offsets1, data1, i)
    n2, b0, b1 = _key(offsets2, data2, j)
    return n1 == n2 and a0 == b0 and a1 == b1 and _same_tail(offsets1, data1, i, offsets2, data2, j)


@njit(cache=True, nogil=True)
def _vocabulary_codes(offsets, data, vocab_offsets, vocab_data):
    """Per string, the first equal vocabulary entry (int8), -1 for none. When no entry is longer than
    16 bytes a string's key is compared with every entry's without a branch per entry (the strings of a
    column alternate between a few values: branches would mispredict); otherwise entry by entry."""
    n = offsets.shape[0] - 1
    nv = vocab_offsets.shape[0] - 1
    codes = np.full(n, -1, np.int8)
    longest = 0
    for v in range(nv):
        longest = max(longest, vocab_offsets[v + 1] - vocab_offsets[v])
    if longest > 16:
        for i in range(n):
            for v in range(nv):
                if _same(offsets, data, i, vocab_offsets, vocab_data, v):
                    codes[i] = np.int8(v)
                    break
        return codes
    lengths = np.empty(nv, np.int64)
    words = np.empty((nv, 2), np.uint64)
    for v in range(nv):
        lengths[v], words[v, 0], words[v, 1] = _key(vocab_offsets, vocab_data, v)
    for i in range(n):
        length, w0, w1 = _key(offsets, data, i)
        code = -1
        for v in range(nv - 1, -1, -1):
            same = (length == lengths[v]) & (w0 == words[v, 0]) & (w1 == words[v, 1])
            code = v if same else code
        codes[i] = np.int8(code)
    return codes


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
def _lookup(table, mask, keys, first_row, set_hashes, t_off, t_data, offsets, data, rows):
    """For each string ``rows[k]`` of ``offsets``/``data``, its number in the set (see above;
    ``set_hashes``: the hashes of its distinct strings), -1 when absent.

    In passes over all rows, so that the memory reads of different rows overlap instead of each row
    waiting for its own, and with few unpredictable branches: the hashes; the rows whose bit is set in
    a filter of the set's hashes (:func:`_filter`; most absent strings are dropped here); the table
    probed on the tags alone; every candidate confirmed on the key (and the bytes past 16); an
    unconfirmed one (a tag collision) is looked up again with every candidate compared."""
    n = rows.shape[0]
    hashes = np.empty(n, np.uint64)
    for k in range(n):
        length, w0, w1 = _key(offsets, data, rows[k])
        hashes[k] = _hash(offsets, data, rows[k], length, w0, w1)
    bits, shift = _filter(set_hashes)
    maybe = np.empty(n, np.int64)
    n_maybe = 0
    for k in range(n):
        b = hashes[k] >> shift
        maybe[n_maybe] = k
        n_maybe += np.int64((bits[b >> np.uint64(6)] >> (b & np.uint64(63))) & np.uint64(1))
    found = np.full(n, -1, np.int64)
    for j in range(n_maybe):
        k = maybe[j]
        h = hashes[k]
        tag = _tag(h)
        s = h & mask
        while True:
            word = table[s]
            if word == 0:
                break
            if word >> np.uint64(32) == tag:
                found[k] = np.int64(word & np.uint64(0xFFFFFFFF)) - 1
                break
            s = (s + np.uint64(1)) & mask
    for j in range(n_maybe):
        k = maybe[j]
        d = found[k]
        if d < 0:
            continue
        i = rows[k]
        length, w0, w1 = _key(offsets, data, i)
        if _key_is(keys, d, length, w0, w1) and (
                length <= 16 or _same_tail(offsets, data, i, t_off, t_data, first_row[d])):
            continue
        found[k] = -1                          # a tag collision: every candidate compared
        tag = _tag(hashes[k])
        s = hashes[k] & mask
        while table[s] != 0:
            if table[s] >> np.uint64(32) == tag:
                e = np.int64(table[s] & np.uint64(0xFFFFFFFF)) - 1
                if _key_is(keys, e, length, w0, w1) and (
                        length <= 16 or _same_tail(offsets, data, i, t_off, t_data, first_row[e])):
                    found[k] = e
                    break
            s = (s + np.uint64(1)) & mask
    return found


@njit(cache=True, nogil=True)
def _locate_openers(a_off, a_data, c_off, c_data, rows, c_in_period):
    """A: the units' opening ids, C: the coverage's openers, of which the ``rows`` ride. Returns each A
    row's number among A's distinct ids (first appearance order), the first A row of each distinct id,
    per C row 1 when it is one of ``rows`` and its id is in A (else 0), per distinct A id the number of
    ``rows`` holding it, and the ``rows`` of ``c_in_period`` whose id is not in A (:func:`_string_set`,
    :func:`_lookup`: every match confirmed on the bytes)."""
    unit_pos, table, mask, keys, first_row, hashes = _string_set(a_off, a_data, a_off.shape[0] - 1)
    found = _lookup(table, mask, keys, first_row, hashes, a_off, a_data, c_off, c_data, rows)
    where = np.zeros(c_off.shape[0] - 1, np.int8)
    ridden = np.zeros(first_row.shape[0], np.int64)
    n_ask = 0
    for k in range(rows.shape[0]):
        if found[k] >= 0:
            where[rows[k]] = 1
            ridden[found[k]] += 1
        elif c_in_period[rows[k]]:
            n_ask += 1
    ask = np.empty(n_ask, np.int64)
    n_ask = 0
    for k in range(rows.shape[0]):
        if found[k] < 0 and c_in_period[rows[k]]:
            ask[n_ask] = rows[k]
            n_ask += 1
    return unit_pos, first_row, where, ridden, ask


@njit(cache=True, nogil=True)
def _find_strings(t_off, t_data, offsets, data, rows):
    """For each string ``rows[k]`` of ``offsets``/``data``, whether it is one of the strings of
    ``t_off``/``t_data``."""
    _, table, mask, keys, first_row, hashes = _string_set(t_off, t_data, t_off.shape[0] - 1)
    return _lookup(table, mask, keys, first_row, hashes, t_off, t_data, offsets, data, rows) >= 0


def totals_by_currency(frame: pd.DataFrame, amount: str) -> dict[str, float]:
    """Per currency (in sorted order), the sum of ``amount``: ``frame.groupby("currency")[amount].sum()``
    (missing amounts skipped, rows without a currency left out). For float amounts and a string column
    without nulls the sums are taken by a compiled pass over the currencies' first-occurrence codes
    (:func:`_compensated_sums`: pandas' compensated summation, the same operations in the same order,
    so the same bits) instead of pandas hashing the strings and setting up a groupby."""
    if frame.empty:
        return {}
    currency, values = frame["currency"], frame[amount]
    compiled = COMPILED and isinstance(currency.dtype, pd.StringDtype) and values.dtype == np.float64
    strings = _arrow_strings(currency) if compiled else None
    coded = first_occurrence_codes(strings) if compiled else None          # None: nulls
    if coded is None:
        return {str(k): float(v) for k, v in frame.groupby("currency")[amount].sum(min_count=0).items()}
    codes, first = coded
    sums = _compensated_sums(codes, values.to_numpy(), len(first))
    names = strings.take(pa.array(first)).to_pylist()
    return {name: float(sums[code]) for name, code in sorted(zip(names, range(len(names))))}


@njit(cache=True, nogil=True)
def _compensated_sums(codes, values, n):
    """Per code (``0 .. n - 1``), the sum of its non-NaN ``values`` in row order with Kahan compensation,
    operation for operation as pandas' ``groupby(...).sum()`` of float64 (a compensation made NaN by an
    infinite value is reset to 0)."""
    sums = np.zeros(n)
    compensation = np.zeros(n)
    for i in range(codes.shape[0]):
        v = values[i]
        if v != v:
            continue
        c = codes[i]
        y = v - compensation[c]
        t = sums[c] + y
        compensation[c] = t - sums[c] - y
        if compensation[c] != compensation[c]:
            compensation[c] = 0.0
        sums[c] = t
    return sums


def assert_totals_agree(label: str, expected: dict[str, float], actual: dict[str, float], *,
                        places: int = 4) -> None:
    """Per-currency totals equal to ``places`` decimals (check 3)."""
    keys = {k for k, v in expected.items() if round(v, places)} | {k for k, v in actual.items() if round(v, places)}
    for cur in sorted(keys):
        a, b = expected.get(cur, 0.0), actual.get(cur, 0.0)
        if abs(a - b) > 0.5 * 10 ** -places + 1e-9 * max(abs(a), 1.0):
            raise ConservationError(f"{label}: {cur} totals differ ({a:.6f} vs {b:.6f})")
