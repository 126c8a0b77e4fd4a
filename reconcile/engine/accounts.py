"""Account-level passes over the units the window kernel produced (rule book sections 0-5).

The key-level half of the engine (``prepare`` / ``windows``) turns messages into *raw units*, one row
per unit of the whole history it was given. :func:`finalize_units` then applies every rule that needs
more than one key at a time, in this order:

1. period filter — only units billed in the period are emitted; earlier units only set state (section 0);
2. authentication-international (sections 3, 4): :func:`apply_authentication_international`;
3. free customer service from 2024-11-01 (section 3): :func:`apply_service_free`;
4. free tier per account and billing month (sections 2, 3): :func:`apply_free_tier`;
5. PMP-2 free service allowance per phone number and month (section 5): :func:`apply_service_allowance`;
6. volume-tier ranks (sections 1, 4): :func:`tier_ranks`;
7. rates (section 0 "Rates"): :func:`price_units`, missing rates reported as ``missing_rate``.

Every pass is vectorised (sorts, group cumcounts, searchsorted); the only loops are over regimes.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Mapping, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from ..contracts import FREE_PRICING_TYPES, PRICING_TYPES, UNIT_COLUMNS, UNIT_ORDER, Period
from ..quality import QualityLog
from ..rules.eras import REGIMES, Regime
from ..rules.rates import RateTable

#: columns written after the contract's UNIT_COLUMNS (useful downstream, never required)
EXTRA_UNIT_COLUMNS = ["era", "regime_index", "local_date", "timezone", "portfolio_id", "tier_rank", "rate_version"]
#: minimum history before the period start, in days, below which ``short_lookback`` is reported (section 0)
MIN_LOOKBACK_DAYS = 7
_STRING_COLUMNS = ["waba_id", "phone_number_id", "user_wa_id", "country", "market", "pricing_model", "category",
                   "pricing_type", "opening_message_id", "billing_month", "era", "timezone"]


# --------------------------------------------------------------------------- entry point
def finalize_units(raw_units: pd.DataFrame, accounts: pd.DataFrame, rates: pd.DataFrame | RateTable,
                   period: Period, quality: QualityLog, *,
                   regimes: Sequence[Regime] = REGIMES) -> tuple[pd.DataFrame, dict]:
    """Raw units of the whole history → the period's billable units (``UNIT_COLUMNS`` then
    ``EXTRA_UNIT_COLUMNS``, ordered by ``UNIT_ORDER``) and counts.

    ``counts``: ``units`` (emitted), ``units_free``, ``units_unpriced`` (paid units without a rate),
    ``units_before_period`` / ``units_after_period`` (computed as state, not emitted) and
    ``units_<pricing_type>`` for each pricing type.
    """
    table = rates if isinstance(rates, RateTable) else RateTable(rates)
    units = _normalise_raw_units(raw_units)
    month = units["billing_month"]
    before = month < period.first
    after = month > period.last
    counts = {"units_before_period": int(before.sum()), "units_after_period": int(after.sum())}
    units = units[~before & ~after].reset_index(drop=True)
    units = _join_accounts(units, accounts, quality)
    # one sort into delivery order (section 0 "Ties": instant, then message id); every ranking below
    # is a stable group cumcount over this order
    units = _sorted(units, ["opened_at", "opening_message_id"])

    units = apply_authentication_international(units, table)
    units = apply_service_free(units, regimes)
    units = apply_free_tier(units, regimes)
    units = apply_service_allowance(units, regimes)
    units["tier_rank"] = tier_ranks(units)
    units = price_units(units, table, quality)

    units["unit_id"] = units["opening_message_id"] + ":" + units["category"]
    units = _sorted(units, UNIT_ORDER)
    out = units[UNIT_COLUMNS + EXTRA_UNIT_COLUMNS]

    free = out["pricing_type"].isin(FREE_PRICING_TYPES)
    counts.update({"units": int(len(out)), "units_free": int(free.sum()),
                   "units_unpriced": int((~free & out["amount"].isna()).sum())})
    by_type = out["pricing_type"].value_counts()
    for pt in PRICING_TYPES:
        counts[f"units_{pt}"] = int(by_type.get(pt, 0))
    return out, counts


# --------------------------------------------------------------------------- preparation
def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``frame.sort_values(keys, kind="stable")`` with a fresh index, ordered by one Arrow multi-key sort
    (strings compared as UTF-8 bytes = code points, as pandas does; NaT/NaN last). The keys are
    string, datetime or numeric columns."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(frame) < 2:
        return frame.reset_index(drop=True)
    cols = {}
    for k in keys:
        s = frame[k]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            ns = s.to_numpy(dtype="datetime64[ns]").view(np.int64)
            cols[k] = pa.array(ns, mask=np.isnat(s.to_numpy(dtype="datetime64[ns]")))
        elif pd.api.types.is_numeric_dtype(s.dtype):
            cols[k] = pa.array(s.to_numpy(), from_pandas=True)
        else:
            arr = getattr(s.array, "_pa_array", None)
            cols[k] = arr if arr is not None else pa.array(s.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    order = pc.sort_indices(pa.table(cols), sort_keys=[(k, "ascending", "at_end") for k in keys])
    return frame.take(np.asarray(order, dtype=np.int64)).reset_index(drop=True)


def _normalise_raw_units(raw_units: pd.DataFrame) -> pd.DataFrame:
    """Copy with the dtypes this module relies on (strings without NaN, ns instants, naive local dates)."""
    u = raw_units.copy()
    for c in _STRING_COLUMNS:
        if c not in u.columns:
            u[c] = ""
        u[c] = u[c].fillna("").astype(str)
    for c in ("opened_at", "expires_at"):
        s = pd.to_datetime(u[c], utc=True) if c in u.columns else pd.Series(pd.NaT, index=u.index)
        u[c] = s.astype("datetime64[ns, UTC]")
    ld = u["local_date"]
    if isinstance(ld.dtype, pd.DatetimeTZDtype):
        ld = ld.dt.tz_localize(None)
    u["local_date"] = pd.to_datetime(ld).astype("datetime64[ns]").dt.normalize()
    u["message_count"] = pd.to_numeric(u["message_count"]).fillna(0).astype("int64")
    u["regime_index"] = pd.to_numeric(u["regime_index"]).astype("int64")
    return u


def _join_accounts(units: pd.DataFrame, accounts: pd.DataFrame, quality: QualityLog) -> pd.DataFrame:
    """Attach the account's currency, business country and tier scope (portfolio, default the account)."""
    acc = accounts[["waba_id", "currency", "business_country", "portfolio_id"]].copy()
    for c in acc.columns:
        acc[c] = acc[c].fillna("").astype(str)
    acc["portfolio_id"] = acc["portfolio_id"].where(acc["portfolio_id"] != "", acc["waba_id"])
    acc = acc.drop_duplicates("waba_id").rename(columns={"business_country": "_business_country"})
    units = units.drop(columns=[c for c in ("currency", "portfolio_id") if c in units.columns])
    out = units.merge(acc, on="waba_id", how="left", validate="many_to_one")
    missing = out["currency"].isna()
    if missing.any():
        # the readers exclude such messages already; a unit reaching here is reported, kept, left unpriced
        first = out[missing].groupby("waba_id", sort=True)["opening_message_id"].min()
        quality.add_many("error", "unknown_account", source="engine", column="waba_id",
                         message_id=first.to_numpy(), detail=[f"units of account {w} not in accounts"
                                                              for w in first.index])
    for c in ("currency", "_business_country"):
        out[c] = out[c].fillna("").astype(str)
    out["portfolio_id"] = out["portfolio_id"].fillna(out["waba_id"]).astype(str)
    return out


def _regime_attr(units: pd.DataFrame, regimes: Sequence[Regime], attr: str, dtype=None) -> np.ndarray:
    values = np.array([getattr(r, attr) for r in regimes], dtype=dtype)
    return values[units["regime_index"].to_numpy(np.int64)]


def _rank_within(units: pd.DataFrame, mask: np.ndarray, scope: list[str]) -> np.ndarray:
    """1-based rank of each masked unit within its scope, in delivery order (``opened_at``, ties by
    ``opening_message_id``, rule book section 0 "Ties"); 0 for unmasked units.
    ``units`` must already be in delivery order (``finalize_units`` sorts once)."""
    rank = np.zeros(len(units), dtype=np.int64)
    if not mask.any():
        return rank
    sub = units.loc[mask, scope]
    rank[mask] = sub.groupby(scope, sort=False).cumcount().to_numpy() + 1
    return rank


# --------------------------------------------------------------------------- rules
def apply_authentication_international(units: pd.DataFrame, table: RateTable) -> pd.DataFrame:
    """Sections 3/4 "Authentication-international": an ``authentication`` unit becomes
    ``authentication_international`` when the rate card has an ``authentication_international`` rate for
    the user's market at the unit's local date (in the account currency) AND the account's
    ``business_country`` differs from the user's country. An unknown user country (``""``) or an empty
    business country never counts as different (nothing proves the message crossed a border)."""
    auth = (units["category"] == "authentication").to_numpy()
    if not auth.any():
        return units
    sub = units.loc[auth]
    foreign = ((sub["country"] != "") & (sub["_business_country"] != "")
               & (sub["country"] != sub["_business_country"])).to_numpy()
    has = table.has_rate(sub["market"].to_numpy(), np.full(len(sub), "authentication_international", dtype=object),
                         sub["currency"].to_numpy(), sub["local_date"])
    idx = sub.index[foreign & has]
    units.loc[idx, "category"] = "authentication_international"
    return units


def apply_service_free(units: pd.DataFrame, regimes: Sequence[Regime] = REGIMES) -> pd.DataFrame:
    """Section 3 "From 2024-11-01": in a regime with ``service_free`` every ``service`` unit is
    ``free_customer_service``."""
    free = _regime_attr(units, regimes, "service_free", bool) & (units["category"] == "service").to_numpy() \
        & (units["pricing_type"] == "regular").to_numpy()
    units.loc[free, "pricing_type"] = "free_customer_service"
    return units


def apply_free_tier(units: pd.DataFrame, regimes: Sequence[Regime] = REGIMES) -> pd.DataFrame:
    """Sections 2/3 "Free tier": the first ``free_tier_size`` regular units of the regime's
    ``free_tier_categories`` of each account and billing month (ordered by open instant, ties by opening
    message id) get ``free_tier``. Free entry point units never count (their pricing type is not regular).
    A billing month lies inside one regime (regimes start on the 1st, account time), so the regime of any
    unit of the month gives the size."""
    size = _regime_attr(units, regimes, "free_tier_size", np.int64)
    eligible = (size > 0) & (units["pricing_type"] == "regular").to_numpy()
    eligible &= _category_in(units, regimes, "free_tier_categories")
    rank = _rank_within(units, eligible, ["waba_id", "billing_month"])
    units.loc[eligible & (rank <= size), "pricing_type"] = "free_tier"
    return units


def _category_in(units: pd.DataFrame, regimes: Sequence[Regime], attr: str) -> np.ndarray:
    """Per unit: is its category in the regime's tuple ``attr``? (loop over regimes, not units)"""
    out = np.zeros(len(units), dtype=bool)
    ri = units["regime_index"].to_numpy(np.int64)
    cat = units["category"]
    for i, r in enumerate(regimes):
        allowed = getattr(r, attr)
        if allowed:
            out |= (ri == i) & cat.isin(allowed).to_numpy()
    return out


def apply_service_allowance(units: pd.DataFrame, regimes: Sequence[Regime] = REGIMES) -> pd.DataFrame:
    """Section 5: the regime's ``free_service_messages_per_phone_per_month`` first regular ``service``
    units of each business phone number and billing month (delivery order, ties by message id) are
    ``free_tier``. The registry default is 0 (allowance not confirmed by Meta)."""
    size = _regime_attr(units, regimes, "free_service_messages_per_phone_per_month", np.int64)
    eligible = (size > 0) & (units["category"] == "service").to_numpy() \
        & (units["pricing_type"] == "regular").to_numpy()
    rank = _rank_within(units, eligible, ["phone_number_id", "billing_month"])
    units.loc[eligible & (rank <= size), "pricing_type"] = "free_tier"
    return units


def tier_ranks(units: pd.DataFrame) -> np.ndarray:
    """Sections 1/4 "Volume tiers": rank of each regular (paid) unit in delivery order (ties by opening
    message id) within (tier scope, market, category, billing month); free units get 0 and do not count.
    Tier scope: the account for NBP (section 1), the account's ``portfolio_id`` otherwise (section 4).
    Each unit's billing month is in its own account's timezone (already in ``billing_month``)."""
    paid = (units["pricing_type"] == "regular").to_numpy()
    scope = units["portfolio_id"].where(units["pricing_model"] != "NBP", units["waba_id"])
    tmp = pd.DataFrame({"_scope": scope, "market": units["market"], "category": units["category"],
                        "billing_month": units["billing_month"]}, index=units.index)
    return _rank_within(tmp, paid, ["_scope", "market", "category", "billing_month"])


def price_units(units: pd.DataFrame, table: RateTable, quality: QualityLog) -> pd.DataFrame:
    """Section 0 "Rates": free units get rate 0 and amount 0 without a lookup; paid units take the rate
    of the version in force at their local date and the tier row holding their rank; ``tier`` is the
    row's ``FROM:TO``. A paid unit without a rate keeps ``rate``/``amount`` NaN (never 0) and is
    reported: one ``missing_rate`` error per (account, market, category, currency, billing month), naming
    the first such unit's opening message and the number of units affected."""
    n = len(units)
    paid = (units["pricing_type"] == "regular").to_numpy()
    rate = np.zeros(n, dtype=np.float64)
    tier = np.full(n, "", dtype=object)
    version = np.full(n, "", dtype=object)
    if paid.any():
        sub = units.loc[paid]
        found = table.lookup(sub["market"].to_numpy(), sub["category"].to_numpy(), sub["currency"].to_numpy(),
                             sub["local_date"], units["tier_rank"].to_numpy()[paid])
        rate[paid], tier[paid], version[paid] = found.rate, found.tier, found.version
        _report_missing_rates(sub, found, quality)
    units["rate"] = rate
    units["amount"] = rate * 1.0          # one unit each; full precision, rounded only when written
    units["tier"] = pd.array(tier, dtype="str") if n else pd.Series([], dtype="str")
    units["rate_version"] = pd.array(version, dtype="str") if n else pd.Series([], dtype="str")
    return units


def _report_missing_rates(paid_units: pd.DataFrame, found, quality: QualityLog) -> None:
    miss = np.isnan(found.rate)
    if not miss.any():
        return
    m = paid_units.loc[miss, ["waba_id", "market", "category", "currency", "billing_month", "opened_at",
                              "opening_message_id", "local_date", "tier_rank"]].copy()
    m["_has_version"] = found.has_version[miss]
    m = m.sort_values(["waba_id", "market", "category", "currency", "billing_month", "opened_at",
                       "opening_message_id"], kind="stable")
    keys = ["waba_id", "market", "category", "currency", "billing_month"]
    g = m.groupby(keys, sort=False)
    first = g.head(1).reset_index(drop=True)
    first["n"] = g.size().to_numpy()
    why = np.where(first["_has_version"], "no tier row covers rank " + first["tier_rank"].astype(str),
                   "no rate in force on " + first["local_date"].dt.strftime("%Y-%m-%d"))
    detail = (first["n"].astype(str) + " unit(s) of account " + first["waba_id"] + " in " + first["billing_month"]
              + " without a rate for market=" + first["market"] + " category=" + first["category"]
              + " currency=" + first["currency"] + " (first unit: " + pd.Series(why, index=first.index) + ")")
    quality.add_many("error", "missing_rate", source="rate_card", column="rate",
                     message_id=first["opening_message_id"].to_numpy(), detail=detail.to_numpy())


# --------------------------------------------------------------------------- lookback
def check_lookback(messages_min_instant_per_account: Mapping[str, pd.Timestamp] | pd.Series,
                   accounts: pd.DataFrame, period: Period, quality: QualityLog,
                   min_days: int = MIN_LOOKBACK_DAYS) -> list[str]:
    """Section 0 "Billing month": less than ``min_days`` of history before the period start (00:00 of
    the period's first day in the account's timezone) is a ``short_lookback`` warning per account.
    Accounts with no messages at all are not reported here. Returns the accounts reported."""
    first_seen = pd.Series(messages_min_instant_per_account, dtype=object)
    tz_of = dict(zip(accounts["waba_id"].astype(str), accounts["timezone"].fillna("").astype(str)))
    reported = []
    for waba in sorted(first_seen.index.astype(str)):          # loop over accounts
        instant = first_seen[waba]
        if instant is None or pd.isna(instant):
            continue
        instant = pd.Timestamp(instant)
        instant = instant.tz_localize("UTC") if instant.tzinfo is None else instant.tz_convert("UTC")
        tz = tz_of.get(waba) or "UTC"
        start = pd.Timestamp(datetime(period.start_date.year, period.start_date.month, 1, tzinfo=ZoneInfo(tz)))
        start = start.tz_convert("UTC")
        history = start - instant
        if history < timedelta(days=min_days):
            days = max(history / timedelta(days=1), 0.0)
            quality.add("warning", "short_lookback", source="messages", column="sent_at",
                        detail=f"account {waba}: history starts {instant.strftime('%Y-%m-%dT%H:%M:%SZ')}, "
                               f"{days:.1f} day(s) before the period start {period.start_date.isoformat()} "
                               f"00:00 {tz}; at least {min_days} days are needed for windows to be exact")
            reported.append(waba)
    return reported
