"""The billing engine: messages → billable units (rule book sections 0-5).

``compute_units`` runs the steps in order: :func:`merge_duplicates` (duplicates merged into their first
occurrence, the other rows masked: :func:`dedupe_messages` is the same with the rows copied),
:func:`window_units` (billable filter, keys, sort, the compiled window pass of every era,
markets) and ``finalize_units`` (account-level passes: period, authentication-international,
free tier, free customer service, volume tiers, rates; :mod:`reconcile.engine.accounts`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..contracts import WEBHOOK_EVIDENCE_COLUMNS
from ..memory import release_unused
from ..quality import QualityLog
from .prepare import dedupe_messages, merge_duplicates

__all__ = ["EngineResult", "compute_units", "dedupe_messages", "load_kernels", "merge_duplicates", "window_units"]


@dataclass
class EngineResult:
    units: pd.DataFrame       # priced units of the period (billable_units.csv shape)
    raw_units: pd.DataFrame   # every unit the windowing created over all the history given
    coverage: pd.DataFrame    # one row per billable outbound message: how it was charged
    counts: dict              # input_rows, duplicates_merged, conflicting_duplicates, inbound, non_billable,
    #                           billable_outbound, rejected, raw_units (all history), units (period), ...


def __getattr__(name: str):
    # ``window_units`` imports numba (~0.4 s): loaded on first use, so that importing the package
    # (the readers' callers) stays cheap
    if name == "window_units":
        from .windows import window_units
        return window_units
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def compute_units(messages: pd.DataFrame, accounts: pd.DataFrame, rates: pd.DataFrame, market_map: pd.DataFrame,
                  period, quality: QualityLog) -> EngineResult:
    """Dedupe → window → finalize (price) the units of ``period``.

    ``messages`` may also be handed over as a one-element list (``[frame]``), which is emptied:
    the engine then owns the only reference and frees the input rows while deduplicating
    (the pipeline does this to keep one copy of the messages in memory instead of two)."""
    from ..contracts import Period
    from .accounts import check_lookback, finalize_units
    from .windows import users_sorted_codes_later, window_units

    owned = isinstance(messages, list)
    if owned:
        messages = messages.pop()
    if isinstance(period, str):
        period = Period.parse(period)
    check_lookback(_first_instant_per_account(messages), accounts, period, quality)
    # Meta's webhook evidence columns are kept by the readers for analysts; no rule reads them
    unused = [c for c in WEBHOOK_EVIDENCE_COLUMNS if c in messages.columns]
    if unused:
        messages = messages.drop(columns=unused)
    # the users' sorted codes start now, beside the deduplication; they serve the window pass unless the
    # merge rewrote some number (a duplicate filling an empty user_wa_id: then the pass codes them again)
    users = messages["user_wa_id"].array if "user_wa_id" in messages.columns else None
    user_codes = users_sorted_codes_later(messages["user_wa_id"]) if users is not None else None
    merged, keep, counts = merge_duplicates(messages, quality, in_place=owned)
    del messages
    if user_codes is not None and merged["user_wa_id"].array is not users:
        user_codes = None
    del users
    handover = [merged]
    del merged
    raw_units, coverage, window_counts = window_units(handover, accounts, market_map, quality, coverage_later=True,
                                                      dropped=None if keep is None else ~keep, user_codes=user_codes)
    window_counts["raw_units"] = window_counts.pop("units")
    counts.update(window_counts)
    units, final_counts = finalize_units(raw_units, accounts, rates, period, quality)
    coverage = coverage.result()          # built in a second thread while the units were finalised
    release_unused()
    counts.update(final_counts or {})
    counts.setdefault("units", int(len(units)))
    return EngineResult(units=units, raw_units=raw_units, coverage=coverage, counts=counts)


def load_kernels() -> None:
    """Compile (first time after an install) or load from numba's cache every compiled kernel of a run:
    the window pass, id hashing, classify/sort, the conservation checks and the timestamp scan of text
    inputs. ``make install`` and the Airflow image call this once so that no run pays the ~20 s first
    compilation."""
    import pyarrow as pa

    from ..conservation import load_kernels as load_conservation_kernels
    from ..io.instants import load_kernels as load_instant_kernels
    from . import strategies as S
    from .accounts import load_kernels as load_account_kernels
    from .hashing import repeated_candidates
    from .numbers import number_classes
    from .sorting import warm_up as load_prepare_kernels
    from .windows import coverage_codes, window_pass

    repeated_candidates(pa.array(["a", "a"], type=pa.string()))
    load_prepare_kernels()
    load_conservation_kernels()
    load_instant_kernels()
    load_account_kernels()
    number_classes(pa.array(["1"]), np.zeros(1, np.int64))
    i, b = np.zeros(1, np.int64), np.zeros(1, np.bool_)
    sw = S.regime_switches()
    window_pass(i, i, b, b, b, i, i, i, sw.strategy, sw.era, sw.fep_ns, sw.utility_in_csw_free,
                np.int64(S.CSW_NS), np.int64(S.ENTRY_POINT_REPLY_NS), np.int64(S.CONVERSATION_NS))
    coverage_codes(b, i, b, i, i, i, i, 0, 0)


def _first_instant_per_account(messages: pd.DataFrame) -> pd.Series:
    """Earliest instant (sent/delivered/read) per account: how much history the run was given."""
    if messages.empty:
        return pd.Series(dtype=object)
    import pyarrow.compute as pc

    from .prepare import _instants_ns, arrow_strings, category_parts
    from .sorting import code_counts, first_instants

    parts = category_parts(messages["waba_id"])
    if parts is None:
        enc = pc.dictionary_encode(arrow_strings(messages["waba_id"]))   # few distinct accounts: cheap
        parts = enc.indices.to_numpy(zero_copy_only=False), enc.dictionary
    codes, names = parts
    first = first_instants(codes, len(names), *(_instants_ns(messages[c]) for c in ("sent_at", "delivered_at", "read_at")))
    present = code_counts(codes, len(names)) > 0          # code -1: no account, not counted
    out = pd.Series(first.view("M8[ns]"), index=names.to_pylist())[present]
    return out.dt.tz_localize("UTC").sort_index()

