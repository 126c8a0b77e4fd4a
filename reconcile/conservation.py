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

from .contracts import Period


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


def _strings(values) -> pa.Array:
    arr = pa.array(values, from_pandas=True)
    return arr.cast(pa.string()) if arr.type != pa.string() else arr


def _is_in(values, pool: pa.Array) -> np.ndarray:
    """Vectorised membership of strings (Arrow hash set; pandas' ``isin`` on str is a Python loop)."""
    return pc.fill_null(pc.is_in(_strings(values), value_set=pool), False).to_numpy(zero_copy_only=False)


def _np(mask) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def message_buckets(coverage: pd.DataFrame, units: pd.DataFrame, raw_units: pd.DataFrame, period: Period,
                    excluded_ids: set[str] | pd.Index) -> dict:
    """Every billable outbound message delivered in the period is in exactly one bucket (check 2).

    The coverage columns are used as Arrow arrays (boolean masks, no filtered copy of the frame)."""
    in_period = _is_in(coverage["billing_month"], pa.array(list(period.months), type=pa.string()))
    period_openers = pc.unique(_strings(units["opening_message_id"]))
    earlier = (raw_units["billing_month"].astype(str) < period.first).to_numpy()
    earlier_openers = pc.unique(_strings(raw_units["opening_message_id"][earlier]))

    outcome = _strings(coverage["outcome"])
    opener = _strings(coverage["unit_opening_message_id"])
    rides_any = _np(pc.is_in(outcome, value_set=pa.array(["unit_opener", "rode_on_unit"], type=pa.string())))
    # one hash pass over the messages that opened or rode on a unit (the others have no opener):
    # position of each one's opener among the period's openers, then the earlier ones
    n_period = len(period_openers)
    riding = np.flatnonzero(rides_any)
    opener_pos = np.full(len(rides_any), -1, dtype=np.int64)
    opener_pos[riding] = np.asarray(pc.fill_null(pc.index_in(opener.take(pa.array(riding)), value_set=pa.concat_arrays(
        [period_openers, earlier_openers.cast(period_openers.type)])), -1), dtype=np.int64)
    opener_of_period = (opener_pos >= 0) & (opener_pos < n_period)
    rides = rides_any & in_period
    in_unit_of_period = rides & opener_of_period
    in_earlier_window = rides & ~in_unit_of_period & (opener_pos >= n_period)
    free = in_period & _np(pc.equal(outcome, "free_not_unit"))
    excluded = in_period & _np(pc.equal(outcome, "excluded"))
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
    unit_pos = np.asarray(pc.index_in(_strings(units["opening_message_id"]), value_set=period_openers),
                          dtype=np.int64)
    counted = np.bincount(unit_pos, weights=units["message_count"].to_numpy(dtype=np.float64), minlength=n_period)
    differs = np.flatnonzero(counted != ridden)
    if len(differs):
        raise ConservationError(f"{len(differs)} units whose message_count differs from the "
                                f"messages covered (e.g. {period_openers.take(pa.array(differs[:3])).to_pylist()})")
    buckets["messages_in_units_of_period"] = int(ridden.sum())
    return buckets


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
