"""The greedy-window kernel: one compiled pass over the sorted events (rule book sections 0-5).

:func:`window_pass` walks inbound and billable outbound events sorted by key, instant,
direction and ``message_id`` and keeps per-key state: the last inbound instant (customer
service window), the pending entry-point inbound, the free entry point window, and one open
conversation per category slot. Per outbound message it decides, by the strategy of the
regime of its charge date (see :mod:`reconcile.engine.strategies`), whether it opens a unit,
rides on one, is free without being a unit, or is excluded. Windows end at the next era
boundary (00:00 account time of the next named era); the CSW carries over.

:func:`window_units` wraps it: classification and sort (:mod:`.prepare`), the pass, markets,
and the three outputs (raw units, coverage, counts).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd
from numba import njit

from ..memory import release_unused
from ..quality import QualityLog
from . import strategies as S
import pyarrow as pa
import pyarrow.compute as pc

from .buffers import code_type
from .buffers import read_only as _ro
from .prepare import (DAY_NS, NAT_NS, _provenance, _report, arrow_strings, classify_messages, local_days,
                      prepare_events, sorted_codes, str_series)

RAW_UNIT_COLUMNS = [
    "waba_id", "phone_number_id", "user_wa_id", "country", "market", "pricing_model", "category", "pricing_type",
    "opened_at", "expires_at", "opening_message_id", "message_count", "era", "regime_index", "local_date",
    "billing_month", "timezone", "csw_open",
]
COVERAGE_COLUMNS = ["message_id", "waba_id", "charged_at", "billing_month", "outcome", "unit_opening_message_id"]

#: "never" in the pass (no inbound yet, no window open, no expiry): NaT's value, so that the units'
#: expiries convert to instants as they are
_NEG = NAT_NS


@njit(cache=True, nogil=True)
def window_pass(key, t, inbound, entry_point, template, category, regime, next_boundary,
                strategy_of, era_of, fep_ns_of, utility_free_of, csw_ns, reply_ns, conversation_ns):
    """One pass over the sorted events. Returns per-event arrays
    ``(outcome, opener, unit_category, pricing_type, expires, free_form_outside_csw, csw_open)``;
    inbound events keep outcome -1; then the units of :func:`unit_numbers`.
    """
    n = t.shape[0]
    outcome = np.full(n, -1, np.int8)
    opener = np.full(n, -1, np.int64)
    unit_cat = np.full(n, -1, np.int8)
    ptype = np.full(n, -1, np.int8)
    expires = np.full(n, _NEG, np.int64)
    ff_outside = np.zeros(n, np.bool_)
    csw_flag = np.zeros(n, np.bool_)

    slot_end = np.empty(4, np.int64)     # CBP-2: marketing, utility, authentication, service; CBP-1: slot 0
    slot_opener = np.empty(4, np.int64)
    prev_key = -1
    last_in = _NEG
    ep_t = _NEG
    ep_pending = False
    fep_end = _NEG
    fep_opener = -1
    cur_era = -1
    for j in range(n):
        k = key[j]
        tj = t[j]
        if k != prev_key or j == 0:
            prev_key = k
            last_in = _NEG
            ep_t = _NEG
            ep_pending = False
            fep_end = _NEG
            fep_opener = -1
            cur_era = -1
            for s in range(4):
                slot_end[s] = _NEG
                slot_opener[s] = -1
        if inbound[j]:
            last_in = tj
            if entry_point[j]:
                ep_t = tj
                ep_pending = True
            continue

        r = regime[j]
        strat = strategy_of[r]
        if era_of[r] != cur_era:        # windows never cross an era boundary (the CSW does)
            cur_era = era_of[r]
            fep_end = _NEG
            fep_opener = -1
            for s in range(4):
                slot_end[s] = _NEG
                slot_opener[s] = -1
        csw = last_in != _NEG and tj < last_in + csw_ns
        is_tmpl = template[j]
        if not is_tmpl and not csw:
            ff_outside[j] = True
        eff_csw = csw or not is_tmpl     # free-form outside the CSW: treated as open for this message only
        csw_flag[j] = eff_csw

        # ---- free entry point window (section 0)
        in_fep = tj < fep_end
        if ep_pending:
            ep_pending = False          # this is the key's first billable delivery after the entry point
            if (not in_fep) and fep_ns_of[r] > 0 and tj < ep_t + reply_ns:
                end = tj + fep_ns_of[r]
                if next_boundary[j] < end:
                    end = next_boundary[j]
                fep_end = end
                fep_opener = j
                in_fep = True
                for s in range(4):      # earlier conversations keep their charge; nothing rides on them
                    slot_end[s] = _NEG
                    slot_opener[s] = -1
        if in_fep:
            if strat == 1 or strat == 2:          # CBP: one unit per window
                if j == fep_opener:
                    outcome[j] = 0
                    opener[j] = j
                    unit_cat[j] = 7
                    ptype[j] = 1
                    expires[j] = fep_end
                else:
                    outcome[j] = 1
                    opener[j] = fep_opener
            elif is_tmpl or strat == 4:           # PMP: per template; PMP-2: also per free-form
                outcome[j] = 0
                opener[j] = j
                unit_cat[j] = 7
                ptype[j] = 1
            else:
                outcome[j] = 2
            continue

        # ---- outside any free entry point window
        if strat == 0:                            # NBP (section 1)
            if is_tmpl:
                outcome[j] = 0
                opener[j] = j
                unit_cat[j] = 0
                ptype[j] = 0
            else:
                outcome[j] = 2
        elif strat == 1:                          # CBP-1 (section 2)
            if slot_end[0] > tj:
                outcome[j] = 1
                opener[j] = slot_opener[0]
            else:
                end = tj + conversation_ns
                if next_boundary[j] < end:
                    end = next_boundary[j]
                slot_end[0] = end
                slot_opener[0] = j
                outcome[j] = 0
                opener[j] = j
                unit_cat[j] = 1 if eff_csw else 2
                ptype[j] = 0
                expires[j] = end
        elif strat == 2:                          # CBP-2 (section 3)
            if is_tmpl:
                c = category[j]
                if c < 0:
                    outcome[j] = 3
                    continue
                sl = c - 3
            else:
                sl = -1
                best = -1
                for s in range(4):
                    if slot_end[s] > tj and (best < 0 or slot_opener[s] < best):
                        best = slot_opener[s]
                        sl = s
                if sl < 0:
                    sl = 3                        # nothing open: the free-form message opens service
            if slot_end[sl] > tj:
                outcome[j] = 1
                opener[j] = slot_opener[sl]
            else:
                end = tj + conversation_ns
                if next_boundary[j] < end:
                    end = next_boundary[j]
                slot_end[sl] = end
                slot_opener[sl] = j
                outcome[j] = 0
                opener[j] = j
                unit_cat[j] = sl + 3
                ptype[j] = 0
                expires[j] = end
        else:                                     # PMP / PMP-2 (sections 4, 5)
            if is_tmpl:
                c = category[j]
                if c < 0:
                    outcome[j] = 3
                    continue
                outcome[j] = 0
                opener[j] = j
                unit_cat[j] = c
                ptype[j] = 2 if (c == 4 and csw and utility_free_of[r]) else 0
            elif strat == 4:
                outcome[j] = 0
                opener[j] = j
                unit_cat[j] = 6
                ptype[j] = 0
            else:
                outcome[j] = 2
    upos, opener_unit, message_count = unit_numbers(outcome, opener)
    return outcome, opener, unit_cat, ptype, expires, ff_outside, csw_flag, upos, opener_unit, message_count


@njit(cache=True, nogil=True)
def unit_numbers(outcome, opener):
    """The units of a pass, numbered in event order: ``(upos, opener_unit, message_count)`` = the event
    position of each unit's opener (the events of outcome ``unit_opener``, each its own opener), each
    event's opener's unit number (-1: no opener, or one that opens no unit) and each unit's number of
    events. One pass: an opener comes no later than the events riding on it (the pass's order)."""
    n = outcome.shape[0]
    n_units = 0
    for j in range(n):
        n_units += outcome[j] == 0
    upos = np.empty(n_units, np.int64)
    opener_unit = np.empty(n, np.int64)
    message_count = np.zeros(n_units, np.int64)
    u = 0
    for j in range(n):
        o = opener[j]
        if outcome[j] == 0:
            upos[u] = j
            v = u
            u += 1
        elif o >= 0 and outcome[o] == 0:
            v = opener_unit[o]
        else:
            v = -1
        opener_unit[j] = v
        if v >= 0:
            message_count[v] += 1
    return upos, opener_unit, message_count


#: bits of a packed event in :func:`_coverage_codes`: outcome + 1 (3 bits), unit number (31), local day (the rest)
_UNIT_SHIFT, _DAY_SHIFT = 3, 34


@njit(cache=True, nogil=True)
def _coverage_codes(billable, rows, inbound, outcome, opener_unit, opener, local_day, n_units, out_excluded):
    n = billable.shape[0]
    # each event's outcome, unit and local day packed into one word at its row: one scattered write per
    # event, then the billable rows in order
    packed = np.full(n, -1, np.int64)
    orphan = False
    for j in range(rows.shape[0]):
        if inbound[j]:
            continue
        u = opener_unit[j]
        if u < 0:
            orphan |= opener[j] >= 0
            u = n_units
        packed[rows[j]] = (local_day[j] << _DAY_SHIFT) | (u << _UNIT_SHIFT) | (outcome[j] + 1)
    nb = 0
    for i in range(n):
        nb += billable[i]
    bill = np.empty(nb, np.int64)
    outcome_of = np.full(nb, out_excluded, np.int8)      # billable but excluded before the pass
    unit_of = np.full(nb, n_units, np.int32)             # n_units: none
    day = np.zeros(nb, np.int32)
    has_day = np.zeros(nb, np.bool_)
    unit_mask = (np.int64(1) << (_DAY_SHIFT - _UNIT_SHIFT)) - 1
    p = 0
    for i in range(n):
        if billable[i]:
            bill[p] = i
            x = packed[i]
            if x != -1:
                outcome_of[p] = (x & 7) - 1
                unit_of[p] = (x >> _UNIT_SHIFT) & unit_mask
                day[p] = x >> _DAY_SHIFT
                has_day[p] = True
            p += 1
    return bill, outcome_of, unit_of, day, has_day, orphan


def coverage_codes(billable, rows, inbound, outcome, opener_unit, opener, local_day, n_units: int, out_excluded: int):
    """Integer columns of the coverage by two compiled passes: per billable message (in message order)
    its row (int64), outcome (int8; ``out_excluded`` when it never reached the pass), unit number (int32;
    ``n_units`` when none), local day (int32) and whether it has one; and whether an event rides on an
    opener that is not a unit (never: the window pass makes every opener a unit). The events are those
    of the pass (inbound, or of a billable row); unit numbers below 2**31."""
    return _coverage_codes(_ro(billable, np.bool_), _ro(rows, np.int64), _ro(inbound, np.bool_),
                           _ro(outcome, np.int8), _ro(opener_unit, np.int64), _ro(opener, np.int64),
                           _ro(local_day, np.int64), np.int64(n_units), np.int64(out_excluded))


def run_kernel(events):
    """Run :func:`window_pass` on :class:`~reconcile.engine.prepare.PreparedEvents`."""
    sw = S.regime_switches()
    return window_pass(events.key, events.t, events.inbound, events.entry_point, events.template,
                       events.category, events.regime, events.next_boundary, sw.strategy, sw.era, sw.fep_ns,
                       sw.utility_in_csw_free, np.int64(S.CSW_NS), np.int64(S.ENTRY_POINT_REPLY_NS),
                       np.int64(S.CONVERSATION_NS))


# =========================================================================== frames
def _utc(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]")).tz_localize("UTC")


def _vocab(names) -> pa.Array:
    """Names to gather from (a small vocabulary, or the message ids) as a ``large_string`` array (the
    storage of pandas ``str`` columns)."""
    if isinstance(names, (pa.Array, pa.ChunkedArray)):
        if isinstance(names, pa.ChunkedArray):
            names = names.combine_chunks()
        return names if names.type == pa.large_string() else names.cast(pa.large_string())
    return pa.array([str(x) for x in names], type=pa.large_string())


def _gather(vocab: pa.Array, codes: np.ndarray) -> pd.Series:
    """``vocab[codes]`` (integer codes, each a valid position) as a ``str`` Series: no nulls, one Arrow
    gather."""
    return str_series(pc.take(vocab, pa.array(codes)))


def _with_blank(vocab: pa.Array) -> pa.Array:
    """``vocab`` plus a trailing ``""`` (position ``len(vocab)``: the code of "none")."""
    return pa.concat_arrays([vocab, pa.array([""], type=pa.large_string())])


def later(thread_name: str, fn, *args) -> Future:
    """``fn(*args)`` run in a thread of its own (named ``thread_name``), which ends with it: work whose
    compiled passes and Arrow calls release the GIL, beside the caller's."""
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
    try:
        return worker.submit(fn, *args)
    finally:
        worker.shutdown(wait=False)


def users_sorted_codes_later(users: pd.Series) -> Future:
    """``sorted_codes(users)`` computed in a second thread (its compiled pass releases the GIL)."""
    return later("reconcile-users", sorted_codes, users)


def window_units(deduped: pd.DataFrame, accounts: pd.DataFrame, market_map: pd.DataFrame,
                 quality: QualityLog, *, coverage_later: bool = False, dropped: np.ndarray | None = None,
                 user_codes=None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Windows of every era over all the history given → (raw_units, coverage, counts).

    ``raw_units``: one row per unit (no period filter), columns :data:`RAW_UNIT_COLUMNS`,
    ordered by key (phone_number_id, user_wa_id) then ``opened_at``. ``coverage``: one row per
    billable outbound message (delivered/read), :data:`COVERAGE_COLUMNS`, in message order,
    ``outcome`` in ``unit_opener`` / ``rode_on_unit`` / ``free_not_unit`` / ``excluded``.
    ``counts``: ``inbound``, ``non_billable``, ``billable_outbound`` (these three partition the
    messages), ``rejected`` (messages excluded with an error finding here) and ``units``.

    Findings: ``unknown_account``, ``missing_delivery_time``, ``missing_received_time``,
    ``missing_template_category`` (errors, excluded), ``free_form_outside_csw``,
    ``unparseable_number``, ``unknown_calling_code`` (warnings).

    ``dropped``: rows of ``deduped`` that are no messages (the later occurrences of duplicated ids
    and conflicting ids, :func:`~reconcile.engine.prepare.merge_duplicates`): ignored, not counted.

    The coverage is built in a second thread (its compiled pass and Arrow gathers release the GIL)
    while the units are; with ``coverage_later`` it is returned as a ``concurrent.futures.Future`` of
    the frame, so that the caller's own work (the account-level passes) overlaps it as well.

    ``deduped`` may be handed over as a one-element list (emptied): the other columns are then
    freed once the events are prepared (peak memory of a whole run).

    ``user_codes``: ``prepare.sorted_codes(deduped["user_wa_id"])``, or a future of it, when the caller
    started it earlier (:func:`reconcile.engine.compute_units` does, beside the deduplication); else it
    is computed in a second thread beside the classification.

    Columns with a small vocabulary are Categoricals (codes over the distinct names, no per-row
    strings): in the raw units ``waba_id``, ``country``, ``market``, ``pricing_model``, ``category``,
    ``pricing_type``, ``era``, ``billing_month``, ``timezone``; in the coverage ``waba_id``,
    ``billing_month``, ``outcome``. The other string columns (phone ids, user numbers, message ids)
    are ``str``, built by one Arrow gather each: the message ids once for the units, the coverage's
    opener ids from those.
    """
    owned = isinstance(deduped, list)     # handed over as ``[frame]``: free the columns no longer needed
    if owned:
        deduped = deduped.pop()
    deduped = deduped.reset_index(drop=True)
    if user_codes is None:      # the users' sorted codes (a compiled pass over every number) beside the classification
        user_codes = users_sorted_codes_later(deduped["user_wa_id"])
    classes = classify_messages(deduped, accounts, quality, dropped)
    events = prepare_events(deduped, classes, user_codes)          # waits for the users' codes when needed
    if owned:
        deduped = deduped[[c for c in ("message_id", "source", "row") if c in deduped.columns]]
        release_unused()
    (outcome, opener, unit_cat, ptype, expires, ff_outside, csw_flag, upos, opener_unit,
     message_count) = run_kernel(events)
    sw = S.regime_switches()
    rows = events.rows
    message_ids = arrow_strings(deduped["message_id"])

    # ---- findings of the pass
    _report(quality, deduped, _mask(len(deduped), rows[ff_outside]), "warning", "free_form_outside_csw",
            "message_kind", "free-form message delivered with no user message in the previous 24h: "
                            "customer service window treated as open for this message only")
    miss_cat = rows[outcome == S.OUT_EXCLUDED]
    _report(quality, deduped, _mask(len(deduped), miss_cat), "error", "missing_template_category",
            "template_category", "template delivered without a template category in an era that prices by "
                                 "category, outside a free entry point window: excluded")

    # ---- units (event positions ``upos``; unit number of each event's opener: -1 when none)
    urows = rows[upos]
    opening_ids = pc.take(message_ids, pa.array(urows))
    if opening_ids.type != pa.large_string():
        opening_ids = opening_ids.cast(pa.large_string())
    coverage = later("reconcile-coverage", lambda: pd.DataFrame(
        _coverage(classes, events, outcome, opener_unit, opener, opening_ids, message_ids), copy=False))
    uregime = events.regime[upos]
    uacc = events.account[upos]
    uday = events.local_day[upos]
    uuser = events.user[upos]
    country, market = _markets(uuser, urows, events.user_names, deduped, market_map, quality)
    month_codes, month_names = _month_codes(uday)
    raw_columns = {
        "waba_id": _categorical(_vocab(classes.account_ids), uacc),
        "phone_number_id": _gather(_vocab(events.phone_names), events.phone[upos]),
        "user_wa_id": _gather(_vocab(events.user_names), uuser),
        "country": country,
        "market": market,
        "pricing_model": _categorical(_vocab(sw.pricing_model), uregime),
        "category": _categorical(_vocab(S.UNIT_CATEGORIES), unit_cat[upos]),
        "pricing_type": _categorical(_vocab(S.RAW_PRICING_TYPES), ptype[upos]),
        "opened_at": _utc(events.t[upos]),
        "expires_at": _utc(expires[upos]),
        "opening_message_id": str_series(opening_ids),
        "message_count": message_count,
        "era": _categorical(_vocab(sw.era_name), uregime),
        "regime_index": uregime.astype(np.int64),
        "local_date": (uday * DAY_NS).view("M8[ns]"),
        "billing_month": _categorical(_vocab(month_names), month_codes),
        "timezone": _categorical(_vocab(classes.zones), classes.zone_of_account[uacc] if len(uacc) else uacc),
        "csw_open": csw_flag[upos],
    }
    raw_units = pd.DataFrame(raw_columns, copy=False)
    if not coverage_later:
        coverage = coverage.result()
    n_in = int(classes.inbound.sum())
    n_bill = int(classes.billable.sum())
    rejected = int(classes.excluded.sum() + len(miss_cat))
    n_messages = len(deduped) - (int(dropped.sum()) if dropped is not None else 0)
    counts = {"inbound": n_in, "non_billable": int(n_messages - n_in - n_bill), "billable_outbound": n_bill,
              "rejected": rejected, "units": int(len(raw_units))}
    return raw_units, coverage, counts


def _mask(n: int, positions: np.ndarray) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[positions] = True
    return out


#: a day → month table is used when the days span at most this many days (else a datetime conversion)
_MONTH_TABLE_DAYS = 1 << 20


def _month_codes(days: np.ndarray, present: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Billing month (``YYYY-MM``) codes of local days (days since epoch), and the month names (every
    month from the first to the last, code 0 = the first). With ``present``, only those days count and
    the others get the code ``len(names)``. Codes in the smallest integer type that holds them (what a
    Categorical keeps: no copy there)."""
    if present is None:
        present = np.ones(len(days), dtype=bool)
    if not present.any():
        return np.zeros(len(days), dtype=np.int8), []
    lo = int(np.min(days, where=present, initial=np.iinfo(days.dtype).max))
    hi = int(np.max(days, where=present, initial=np.iinfo(days.dtype).min))
    if hi - lo < _MONTH_TABLE_DAYS:       # a table over the span of days (and the code of "none"), one gather
        month = np.arange(lo, hi + 1, dtype=np.int64).astype("M8[D]").astype("M8[M]").astype(np.int64)
        first, last = int(month[0]), int(month[-1])
        table = np.append(month - first, last - first + 1).astype(code_type(last - first + 1))
        at = np.subtract(days, lo, dtype=np.int64 if days.dtype.itemsize > 4 else np.int32)
        np.putmask(at, ~present, len(table) - 1)
        codes = table[at]
    else:
        month = days.astype("M8[D]").astype("M8[M]").astype(np.int64)     # months since 1970-01
        first, last = int(month[present].min()), int(month[present].max())
        codes = np.where(present, month - first, last - first + 1).astype(code_type(last - first + 1))
    names = [f"{1970 + m // 12:04d}-{m % 12 + 1:02d}" for m in range(first, last + 1)]
    return codes, names


def _markets(uuser, urows, user_names, deduped, market_map, quality):
    """Country and market of each unit's user as Categoricals: one resolution per distinct number
    (codes, :func:`~reconcile.rules.markets.resolve_number_codes`), one finding per distinct problem
    number (at the first unit of that number)."""
    from ..rules.markets import PROBLEMS, resolve_number_codes

    if len(uuser) == 0:
        return pd.Series([], dtype="str"), pd.Series([], dtype="str")
    present = np.zeros(len(user_names), dtype=bool)     # user codes index the sorted distinct numbers
    present[uuser] = True
    distinct = np.flatnonzero(present)
    inv = (np.cumsum(present, dtype=np.int32) - 1)[uuser]      # unit → its number among the distinct ones
    answer = resolve_number_codes(user_names, distinct, market_map)
    bad_units = np.flatnonzero(answer.problem[inv] != 0)
    if len(bad_units):
        bad, first = np.unique(inv[bad_units], return_index=True)    # bad numbers and their first unit
        for code, name in enumerate(PROBLEMS[1:], 1):
            sel = answer.problem[bad] == code
            if not sel.any():
                continue
            pos = urows[bad_units[first[sel]]]
            what = "cannot be parsed" if name == "unparseable_number" else "has no known calling code"
            detail = np.array([f"user number {number!r} {what}: market Other"
                               for number in pc.take(user_names, pa.array(distinct[bad[sel]])).to_pylist()],
                              dtype=object)
            quality.add_many("warning", name, source=_provenance(deduped, "source", pos),
                             row=_provenance(deduped, "row", pos), column="user_wa_id",
                             message_id=deduped["message_id"].iloc[pos].to_numpy(dtype=object), detail=detail)
    return (_categorical(_vocab(answer.country_names), answer.country[inv]),
            _categorical(_vocab(answer.market_names), answer.market[inv]))


def _coverage(classes, events, outcome, opener_unit, opener, opening_ids, message_ids) -> dict:
    """The coverage columns: one row per billable outbound message, in
    message order: how it was charged.

    Integer work first on the billable messages only (their position among them by a cumulative
    sum); the string columns are gathered at the end: message ids once, the opener's id from the
    units' opening ids (``opening_ids``, one per unit); ``waba_id``, ``billing_month`` and ``outcome``
    are Categoricals over their small vocabularies (codes, no per-row strings)."""
    billable = classes.billable
    n_units = len(opening_ids)
    bill, outcome_of, unit_of, day, has_day, orphan = coverage_codes(
        billable, events.rows, events.inbound, outcome, opener_unit, opener, events.local_day, n_units,
        S.OUT_EXCLUDED)
    if orphan:                          # pragma: no cover - the kernel makes every opener a unit
        raise RuntimeError("internal error: a message rides on an opener that is not a unit")
    opener_ids = _with_blank(opening_ids)
    pre = np.flatnonzero(billable & classes.excluded)
    known = pre[(classes.account[pre] >= 0) & (classes.charge_ns[pre] != NAT_NS)]
    if len(known):
        at = np.searchsorted(bill, known)
        day[at] = local_days(classes.charge_ns[known], classes.zone_of_account[classes.account[known]], classes.zones)
        has_day[at] = True
    months, month_names = _month_codes(day, has_day)       # len(month_names): the trailing ""
    acc = classes.account[bill]
    accounts = _vocab(classes.account_ids)
    np.putmask(acc, acc < 0, len(accounts))
    return {
        "message_id": _gather(_vocab(message_ids), bill),
        "waba_id": _categorical(_with_blank(accounts), acc),
        "charged_at": _utc(classes.charge_ns[bill]),
        "billing_month": _categorical(_with_blank(_vocab(month_names)), months),
        "outcome": _categorical(_vocab(S.OUTCOMES), outcome_of),
        "unit_opening_message_id": _gather(opener_ids, unit_of),
    }


def _categorical(vocab: pa.Array, codes: np.ndarray) -> pd.Categorical:
    """``vocab[codes]`` as a Categorical over the distinct names of the vocabulary (which may repeat a
    name, e.g. one per regime): no per-row strings."""
    names = pd.Index(pd.array(vocab, dtype="str"))
    if names.is_unique:
        return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(names))
    name_codes, distinct = pd.factorize(names)
    name_codes = name_codes.astype(code_type(len(distinct) - 1))      # gathered in the codes' own type
    return pd.Categorical.from_codes(name_codes[codes], dtype=pd.CategoricalDtype(pd.Index(distinct, dtype="str")))
