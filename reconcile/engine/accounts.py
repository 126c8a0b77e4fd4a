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
import pyarrow as pa
import pyarrow.compute as pc

from ..contracts import FREE_PRICING_TYPES, PRICING_TYPES, UNIT_COLUMNS, UNIT_ORDER, Period
from ..quality import QualityLog
from ..rules.eras import REGIMES, Regime
from ..rules.rates import RateLookup, RateTable
from .prepare import DAY_NS, arrow_strings, order_ties, str_series, tied_positions

#: columns written after the contract's UNIT_COLUMNS (useful downstream, never required)
EXTRA_UNIT_COLUMNS = ["era", "regime_index", "local_date", "timezone", "portfolio_id", "tier_rank", "rate_version"]
#: minimum history before the period start, in days, below which ``short_lookback`` is reported (section 0)
MIN_LOOKBACK_DAYS = 7
_STRING_COLUMNS = ["waba_id", "phone_number_id", "user_wa_id", "country", "market", "pricing_model", "category",
                   "pricing_type", "opening_message_id", "billing_month", "era", "timezone"]
_NAT = np.iinfo(np.int64).min


# --------------------------------------------------------------------------- entry point
def finalize_units(raw_units: pd.DataFrame, accounts: pd.DataFrame, rates: pd.DataFrame | RateTable,
                   period: Period, quality: QualityLog, *,
                   regimes: Sequence[Regime] = REGIMES) -> tuple[pd.DataFrame, dict]:
    """Raw units of the whole history → the period's billable units (``UNIT_COLUMNS`` then
    ``EXTRA_UNIT_COLUMNS``, ordered by ``UNIT_ORDER``) and counts.

    ``counts``: ``units`` (emitted), ``units_free``, ``units_unpriced`` (paid units without a rate),
    ``units_before_period`` / ``units_after_period`` (computed as state, not emitted) and
    ``units_<pricing_type>`` for each pricing type.

    The passes work on integer arrays in delivery order (:class:`UnitArrays`): string columns are
    small vocabularies with codes (ordered like the strings where an order is needed), rows are
    positions into the raw units. Every output column is gathered once, in the final order.
    """
    table = rates if isinstance(rates, RateTable) else RateTable(rates)
    units = _normalise_raw_units(raw_units)
    month = _Codes.of(units["billing_month"])
    before = month.where(lambda m: m < period.first)
    after = month.where(lambda m: m > period.last)
    counts = {"units_before_period": int(before.sum()), "units_after_period": int(after.sum())}
    u = UnitArrays(units, np.flatnonzero(~before & ~after), month)
    _join_accounts(u, accounts, quality)

    apply_authentication_international(u, table)
    apply_service_free(u, regimes)
    apply_free_tier(u, regimes)
    apply_service_allowance(u, regimes)
    u.tier_rank = tier_ranks(u)
    price_units(u, table, quality)
    out = u.frame()

    free = out["pricing_type"].isin(FREE_PRICING_TYPES)
    counts.update({"units": int(len(out)), "units_free": int(free.sum()),
                   "units_unpriced": int((~free & out["amount"].isna()).sum())})
    by_type = np.bincount(u.pricing_type.codes, minlength=len(u.pricing_type.names))
    for pt in PRICING_TYPES:
        counts[f"units_{pt}"] = int(by_type[u.pricing_type.names.index(pt)]) if pt in u.pricing_type.names else 0
    return out, counts


# --------------------------------------------------------------------------- preparation
def _normalise_raw_units(raw_units: pd.DataFrame) -> pd.DataFrame:
    """The raw units with the dtypes this module relies on (strings without NaN, ns instants, naive
    local dates); columns already in that form are taken as they are (no copy)."""
    u = pd.DataFrame(index=raw_units.index)
    for c in _STRING_COLUMNS:
        s = raw_units[c] if c in raw_units.columns else pd.Series("", index=raw_units.index, dtype="str")
        u[c] = s if _is_plain_str(s) else s.fillna("").astype(str)
    for c in ("opened_at", "expires_at"):
        s = raw_units[c] if c in raw_units.columns else pd.Series(pd.NaT, index=raw_units.index)
        u[c] = s if s.dtype == "datetime64[ns, UTC]" else pd.to_datetime(s, utc=True).astype("datetime64[ns, UTC]")
    ld = raw_units["local_date"]
    if not (ld.dtype == np.dtype("M8[ns]") and _midnights(ld.to_numpy().view(np.int64))):
        if isinstance(ld.dtype, pd.DatetimeTZDtype):
            ld = ld.dt.tz_localize(None)
        ld = pd.to_datetime(ld).astype("datetime64[ns]").dt.normalize()
    u["local_date"] = ld
    mc = raw_units["message_count"]
    u["message_count"] = mc if mc.dtype == np.int64 else pd.to_numeric(mc).fillna(0).astype("int64")
    ri = raw_units["regime_index"]
    u["regime_index"] = ri if ri.dtype == np.int64 else pd.to_numeric(ri).astype("int64")
    return u.reset_index(drop=True)


def _is_plain_str(s: pd.Series) -> bool:
    """A pandas ``str`` column (Arrow storage, NaN as missing value) without missing values."""
    dtype = s.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow" and isinstance(dtype.na_value, float)):
        return False
    arr = getattr(s.array, "_pa_array", None)
    return arr is not None and arr.null_count == 0 and pa.types.is_large_string(arr.type)


def _midnights(ns: np.ndarray) -> bool:
    ok = ns != _NAT
    return bool(np.all(ns[ok] % DAY_NS == 0)) if len(ns) else True


def _utc(ns: np.ndarray) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC"))


class _Codes:
    """A string column as ``codes`` into ``names``. From :meth:`of`, ``names`` are sorted (code point
    order, as pandas and Arrow compare strings), so codes compare like the strings; :meth:`code` may
    append a name (then only equality is meaningful for it)."""

    def __init__(self, codes: np.ndarray, names: list[str]):
        self.codes = codes
        self.names = names

    @classmethod
    def of(cls, column: pd.Series | pa.Array) -> "_Codes":
        enc = pc.dictionary_encode(column if isinstance(column, pa.Array) else arrow_strings(column))
        dictionary = enc.dictionary
        order = np.asarray(pc.sort_indices(dictionary), dtype=np.int64)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order), dtype=np.int64)
        codes = rank[np.asarray(enc.indices, dtype=np.int64)] if len(enc) else np.zeros(0, dtype=np.int64)
        return cls(codes, pc.take(dictionary, pa.array(order)).to_pylist())

    def take(self, positions: np.ndarray) -> "_Codes":
        return _Codes(self.codes[positions], self.names)

    def code(self, name: str) -> int:
        """Code of ``name`` (appended to the names when absent)."""
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name)

    def where(self, test) -> np.ndarray:
        """``test(name)`` per row (evaluated once per name)."""
        return np.array([bool(test(n)) for n in self.names] + [False], dtype=bool)[self.codes]

    def isin(self, names) -> np.ndarray:
        return self.where(lambda n: n in names)

    def __eq__(self, name) -> np.ndarray:        # type: ignore[override]
        return self.codes == (self.names.index(name) if name in self.names else -1)

    def strings(self, rows=None) -> np.ndarray:
        """Object array of the strings (of ``rows``)."""
        codes = self.codes if rows is None else self.codes[rows]
        return np.asarray(self.names, dtype=object)[codes] if len(self.names) else np.full(len(codes), "", object)

    def column(self, rows: np.ndarray) -> pd.Series:
        """``str`` Series of the strings of ``rows`` (one Arrow gather from the names)."""
        vocab = pa.array(self.names, type=pa.large_string())
        return str_series(pc.take(vocab, pa.array(self.codes[rows])))


class UnitArrays:
    """The period's units in delivery order (``opened_at``, ties by ``opening_message_id``; rule book
    section 0 "Ties") as arrays: ``pos`` (row of each unit in the normalised raw units), codes of the
    string columns the passes read, ``regime`` (regime index) and, once joined, the account's currency,
    business country and tier scope (portfolio) per account name. The passes rewrite ``category`` and
    ``pricing_type`` (codes) and add ``tier_rank``, ``rate``, ``tier``, ``rate_version``."""

    def __init__(self, units: pd.DataFrame, keep: np.ndarray, month: _Codes):
        self.raw = units
        opened = units["opened_at"].array.asi8
        ids = arrow_strings(units["opening_message_id"])
        t = opened[keep]
        kept_ids = ids.take(pa.array(keep))
        order = _order_by_instant(t, kept_ids)
        self.pos = keep[order]
        self.n = len(self.pos)
        self.ids = kept_ids.take(pa.array(order))
        self.opened = t[order]
        self.regime = units["regime_index"].to_numpy(np.int64)[self.pos]
        self.local_date = units["local_date"].to_numpy()[self.pos]
        self._keep, self._order = pa.array(keep), order
        self.month = month.take(self.pos)
        self.waba = self._codes("waba_id")
        self.category = self._codes("category")
        self.pricing_type = self._codes("pricing_type")
        self.pricing_model = self._codes("pricing_model")
        self.market = self._codes("market")
        self._country = None
        self._phone = None
        # per account name (index = waba code): set by _join_accounts
        self.currency_of: list[str] = []
        self.business_country_of: list[str] = []
        self.portfolio_of: list[str] = []
        self.tier_rank = np.zeros(self.n, dtype=np.int64)
        self.rate = np.zeros(self.n, dtype=np.float64)
        self.tier = _Codes(np.zeros(self.n, dtype=np.int64), [""])
        self.rate_version = _Codes(np.zeros(self.n, dtype=np.int64), [""])

    def _codes(self, column: str) -> _Codes:
        """Codes of a raw string column in delivery order (the kept rows, in row order, are encoded
        — a sequential gather — then the codes are put in delivery order)."""
        return _Codes.of(arrow_strings(self.raw[column]).take(self._keep)).take(self._order)

    @property
    def country(self) -> _Codes:
        if self._country is None:
            self._country = self._codes("country")
        return self._country

    @property
    def phone(self) -> _Codes:
        if self._phone is None:
            self._phone = self._codes("phone_number_id")
        return self._phone

    def currency(self, rows=None) -> np.ndarray:
        """Object array of the account currency of each unit (of ``rows``)."""
        return _per_account(self.currency_of, self.waba, rows)

    def currency_codes(self, rows) -> np.ndarray:
        """A code per distinct currency string, of each unit of ``rows``."""
        codes, _ = pd.factorize(np.asarray(self.currency_of + [""], dtype=object))
        return np.asarray(codes, dtype=np.int64)[self.waba.codes[rows]]

    def days(self, rows) -> np.ndarray:
        """Local date of each unit of ``rows`` as an integer (days; NaT below every date)."""
        ns = self.local_date[rows].view(np.int64)
        return np.where(ns == _NAT, np.int64(-(1 << 40)), ns // DAY_NS)

    def frame(self) -> pd.DataFrame:
        """The units as the output frame: ``UNIT_COLUMNS + EXTRA_UNIT_COLUMNS`` in ``UNIT_ORDER``
        (account, billing month, open instant, unit id), every column gathered once."""
        raw = self.raw
        vocab = pa.array(self.category.names, type=pa.large_string())
        unit_id = pc.binary_join_element_wise(self.ids, pc.take(vocab, pa.array(self.category.codes)),
                                               pa.scalar(":", type=pa.large_string()))
        if not pa.types.is_large_string(unit_id.type):
            unit_id = unit_id.cast(pa.large_string())
        key = self.waba.codes * max(len(self.month.names), 1) + self.month.codes   # both ordered like the strings
        # delivery order is (opened_at, opening_message_id), NaT last: a stable sort by (account, month)
        # keeps it; only rows tied on (account, month, opened_at) are reordered by unit_id
        f = np.argsort(key.astype(np.uint16) if len(key) and key.max() < 1 << 16 else key, kind="stable")
        f = _break_ties(f, [key[f], self.opened[f]], unit_id)
        rows = self.pos[f]
        fa = pa.array(f)
        raw_rows = pa.array(rows)

        def raw_str(c):
            return str_series(arrow_strings(raw[c]).take(raw_rows))

        def raw_ns(c):
            return raw[c].array.asi8[rows] if c != "local_date" else raw[c].to_numpy().view(np.int64)[rows]

        accounts = self.waba.take(f)
        out = {
            "unit_id": str_series(unit_id.take(fa)),
            "waba_id": self.waba.column(f),
            "phone_number_id": raw_str("phone_number_id"),
            "user_wa_id": raw_str("user_wa_id"),
            "country": raw_str("country"),
            "market": self.market.column(f),
            "pricing_model": self.pricing_model.column(f),
            "category": self.category.column(f),
            "pricing_type": self.pricing_type.column(f),
            "opened_at": _utc(raw_ns("opened_at")),
            "expires_at": _utc(raw_ns("expires_at")),
            "opening_message_id": str_series(self.ids.take(fa)),
            "message_count": raw["message_count"].to_numpy(np.int64)[rows],
            "billing_month": self.month.column(f),
            "tier": self.tier.column(f),
            "rate": self.rate[f],
            "amount": self.rate[f] * 1.0,          # one unit each; full precision, rounded only when written
            "currency": _Codes(accounts.codes, self.currency_of).column(np.arange(self.n)),
            "era": raw_str("era"),
            "regime_index": self.regime[f],
            "local_date": pd.Series(raw_ns("local_date").view("M8[ns]")),
            "timezone": raw_str("timezone"),
            "portfolio_id": _Codes(accounts.codes, self.portfolio_of).column(np.arange(self.n)),
            "tier_rank": self.tier_rank[f],
            "rate_version": self.rate_version.column(f),
        }
        return pd.DataFrame(out, columns=UNIT_COLUMNS + EXTRA_UNIT_COLUMNS)


def _per_account(values: list[str], waba: _Codes, rows=None) -> np.ndarray:
    codes = waba.codes if rows is None else waba.codes[rows]
    return np.asarray(values + [""], dtype=object)[codes]


def _sort_order(keys: list[pa.Array]) -> np.ndarray:
    """Stable ascending order of rows by the keys (Arrow multi-key sort; strings by code point, as
    pandas compares them; nulls — NaT instants — last)."""
    n = len(keys[0])
    if n < 2:
        return np.arange(n, dtype=np.int64)
    names = [f"k{i}" for i in range(len(keys))]
    order = pc.sort_indices(pa.table(dict(zip(names, keys))),
                            sort_keys=[(k, "ascending", "at_end") for k in names])
    return np.asarray(order, dtype=np.int64)


def _order_by_instant(t: np.ndarray, ids: pa.Array) -> np.ndarray:
    """Stable order of rows by instant (NaT last), then id: one integer argsort, the rows tied on the
    instant (rare) reordered by id."""
    if len(t) < 2 or int(t.max()) == np.iinfo(np.int64).max:
        return _sort_order([pa.array(t, mask=t == _NAT), ids])
    key = np.where(t == _NAT, np.iinfo(np.int64).max, t)
    order = np.argsort(key)
    return _break_ties(order, [key[order]], ids)


def _break_ties(order: np.ndarray, sorted_keys: list[np.ndarray], strings: pa.Array) -> np.ndarray:
    """``order`` sorts rows by integer keys (``sorted_keys``: the keys in that order); rows equal on
    every key are put in order of ``strings`` (per row), then of the row number (a stable result)."""
    pos, run = tied_positions(sorted_keys)
    return order_ties(order, pos, run, strings.take(pa.array(order[pos]))) if len(pos) else order


def _join_accounts(u: UnitArrays, accounts: pd.DataFrame, quality: QualityLog) -> None:
    """Attach the account's currency, business country and tier scope (portfolio, default the account)
    per account name; units of an account missing from ``accounts`` are reported, kept, left unpriced."""
    acc = accounts[["waba_id", "currency", "business_country", "portfolio_id"]].copy()
    for c in acc.columns:
        acc[c] = acc[c].fillna("").astype(str)
    acc["portfolio_id"] = acc["portfolio_id"].where(acc["portfolio_id"] != "", acc["waba_id"])
    acc = acc.drop_duplicates("waba_id")
    known = dict(zip(acc["waba_id"].tolist(), zip(acc["currency"].tolist(), acc["business_country"].tolist(),
                                                   acc["portfolio_id"].tolist())))
    names = u.waba.names
    u.currency_of = [known[w][0] if w in known else "" for w in names]           # loop over accounts
    u.business_country_of = [known[w][1] if w in known else "" for w in names]
    u.portfolio_of = [known[w][2] if w in known else w for w in names]
    missing = u.waba.where(lambda w: w not in known)
    if missing.any():
        # the readers exclude such messages already; a unit reaching here is reported, kept, left unpriced
        sub = pd.DataFrame({"waba_id": pd.array(u.waba.strings(missing), dtype="str"),
                            "opening_message_id": str_series(u.ids.filter(pa.array(missing)))})
        first = sub.groupby("waba_id", sort=True)["opening_message_id"].min()
        quality.add_many("error", "unknown_account", source="engine", column="waba_id",
                         message_id=first.to_numpy(), detail=[f"units of account {w} not in accounts"
                                                              for w in first.index])


def _regime_attr(u: UnitArrays, regimes: Sequence[Regime], attr: str, dtype=None) -> np.ndarray:
    values = np.array([getattr(r, attr) for r in regimes], dtype=dtype)
    return values[u.regime]


def _packed(parts: list[np.ndarray]) -> np.ndarray:
    """One int64 per row, equal exactly where every (non-negative integer) part is equal."""
    key = np.zeros(len(parts[0]) if parts else 0, dtype=np.int64)
    for part in parts:
        if len(part) == 0:
            return key
        part = part - int(part.min())
        size = int(part.max()) + 1
        if int(key.max()) >= (np.iinfo(np.int64).max - size) // size:      # would not fit: re-code first
            key = np.unique(key, return_inverse=True)[1].astype(np.int64).reshape(-1)
        key = key * size + part
    return key


def _rank_within(mask: np.ndarray, scope: list[_Codes]) -> np.ndarray:
    """1-based rank of each masked unit within its scope (equal codes), in delivery order (the order
    of the arrays, rule book section 0 "Ties"); 0 for unmasked units."""
    rank = np.zeros(len(mask), dtype=np.int64)
    rows = np.flatnonzero(mask)
    if len(rows) == 0:
        return rank
    key = _packed([part.codes[rows] for part in scope])
    order = np.argsort(key, kind="stable")
    k = key[order]
    start = np.r_[True, k[1:] != k[:-1]]
    idx = np.arange(len(k), dtype=np.int64)
    first = np.maximum.accumulate(np.where(start, idx, 0))
    rank[rows[order]] = idx - first + 1
    return rank


def _distinct(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the distinct part combinations (first occurrence) and each row's combination index:
    an elementwise lookup is made once per combination and spread back with ``[inverse]``."""
    _, first, inverse = np.unique(_packed(parts), return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


# --------------------------------------------------------------------------- rules
def apply_authentication_international(u: UnitArrays, table: RateTable) -> None:
    """Sections 3/4 "Authentication-international": an ``authentication`` unit becomes
    ``authentication_international`` when the rate card has an ``authentication_international`` rate for
    the user's market at the unit's local date (in the account currency) AND the account's
    ``business_country`` differs from the user's country. An unknown user country (``""``) or an empty
    business country never counts as different (nothing proves the message crossed a border)."""
    auth = np.flatnonzero(u.category == "authentication")
    if len(auth) == 0:
        return
    country = u.country.strings(auth)
    business = _per_account(u.business_country_of, u.waba, auth)
    foreign = (country != "") & (business != "") & (country != business)
    # has_rate is elementwise: asked once per distinct (market, currency, local date)
    one, spread = _distinct([u.market.codes[auth], u.currency_codes(auth), u.days(auth)])
    rows = auth[one]
    has = table.has_rate(u.market.strings(rows), np.full(len(rows), "authentication_international", dtype=object),
                         u.currency(rows), pd.Series(u.local_date[rows]))[spread]
    u.category.codes[auth[foreign & has]] = u.category.code("authentication_international")


def apply_service_free(u: UnitArrays, regimes: Sequence[Regime] = REGIMES) -> None:
    """Section 3 "From 2024-11-01": in a regime with ``service_free`` every ``service`` unit is
    ``free_customer_service``."""
    free = _regime_attr(u, regimes, "service_free", bool) & (u.category == "service") \
        & (u.pricing_type == "regular")
    if free.any():
        u.pricing_type.codes[free] = u.pricing_type.code("free_customer_service")


def apply_free_tier(u: UnitArrays, regimes: Sequence[Regime] = REGIMES) -> None:
    """Sections 2/3 "Free tier": the first ``free_tier_size`` regular units of the regime's
    ``free_tier_categories`` of each account and billing month (ordered by open instant, ties by opening
    message id) get ``free_tier``. Free entry point units never count (their pricing type is not regular).
    A billing month lies inside one regime (regimes start on the 1st, account time), so the regime of any
    unit of the month gives the size."""
    size = _regime_attr(u, regimes, "free_tier_size", np.int64)
    eligible = (size > 0) & (u.pricing_type == "regular")
    eligible &= _category_in(u, regimes, "free_tier_categories")
    rank = _rank_within(eligible, [u.waba, u.month])
    free = eligible & (rank <= size)
    if free.any():
        u.pricing_type.codes[free] = u.pricing_type.code("free_tier")


def _category_in(u: UnitArrays, regimes: Sequence[Regime], attr: str) -> np.ndarray:
    """Per unit: is its category in the regime's tuple ``attr``? (loop over regimes, not units)"""
    out = np.zeros(u.n, dtype=bool)
    for i, r in enumerate(regimes):
        allowed = getattr(r, attr)
        if allowed:
            out |= (u.regime == i) & u.category.isin(allowed)
    return out


def apply_service_allowance(u: UnitArrays, regimes: Sequence[Regime] = REGIMES) -> None:
    """Section 5: the regime's ``free_service_messages_per_phone_per_month`` first regular ``service``
    units of each business phone number and billing month (delivery order, ties by message id) are
    ``free_tier``. The registry default is 0 (allowance not confirmed by Meta)."""
    size = _regime_attr(u, regimes, "free_service_messages_per_phone_per_month", np.int64)
    eligible = (size > 0) & (u.category == "service") & (u.pricing_type == "regular")
    if not eligible.any():
        return
    rank = _rank_within(eligible, [u.phone, u.month])
    free = eligible & (rank <= size)
    if free.any():
        u.pricing_type.codes[free] = u.pricing_type.code("free_tier")


def tier_ranks(u: UnitArrays) -> np.ndarray:
    """Sections 1/4 "Volume tiers": rank of each regular (paid) unit in delivery order (ties by opening
    message id) within (tier scope, market, category, billing month); free units get 0 and do not count.
    Tier scope: the account for NBP (section 1), the account's ``portfolio_id`` otherwise (section 4).
    Each unit's billing month is in its own account's timezone (already in ``billing_month``)."""
    paid = u.pricing_type == "regular"
    scopes = sorted(set(u.waba.names) | set(u.portfolio_of))          # accounts and portfolios: few names
    scope_code = {s: i for i, s in enumerate(scopes)}
    own = np.array([scope_code[w] for w in u.waba.names] + [0], dtype=np.int64)
    portfolio = np.array([scope_code[p] for p in u.portfolio_of] + [0], dtype=np.int64)
    scope = np.where(u.pricing_model == "NBP", own[u.waba.codes], portfolio[u.waba.codes])
    return _rank_within(paid, [_Codes(scope, scopes), u.market, u.category, u.month])


def price_units(u: UnitArrays, table: RateTable, quality: QualityLog) -> None:
    """Section 0 "Rates": free units get rate 0 and amount 0 without a lookup; paid units take the rate
    of the version in force at their local date and the tier row holding their rank; ``tier`` is the
    row's ``FROM:TO``. A paid unit without a rate keeps ``rate``/``amount`` NaN (never 0) and is
    reported: one ``missing_rate`` error per (account, market, category, currency, billing month), naming
    the first such unit's opening message and the number of units affected."""
    paid = np.flatnonzero(u.pricing_type == "regular")
    if len(paid) == 0:
        return
    # the lookup is elementwise: asked once per distinct (market, category, currency, local date, rank)
    one, spread = _distinct([u.market.codes[paid], u.category.codes[paid], u.currency_codes(paid), u.days(paid),
                             u.tier_rank[paid]])
    rows = paid[one]
    found = table.lookup(u.market.strings(rows), u.category.strings(rows), u.currency(rows),
                         pd.Series(u.local_date[rows]), u.tier_rank[rows])
    found = RateLookup(found.rate[spread], found.tier[spread], found.version[spread], found.has_version[spread])
    u.rate[paid] = found.rate
    for codes, values in ((u.tier, found.tier), (u.rate_version, found.version)):     # few distinct labels
        labels, names = pd.factorize(values)
        codes.codes[paid] = np.asarray([codes.code(n) for n in names], dtype=np.int64)[labels]
    _report_missing_rates(u, paid, found, quality)


def _report_missing_rates(u: UnitArrays, paid: np.ndarray, found, quality: QualityLog) -> None:
    miss = np.isnan(found.rate)
    if not miss.any():
        return
    rows = paid[miss]
    m = pd.DataFrame({
        "waba_id": pd.array(u.waba.strings(rows), dtype="str"),
        "market": pd.array(u.market.strings(rows), dtype="str"),
        "category": pd.array(u.category.strings(rows), dtype="str"),
        "currency": pd.array(u.currency(rows), dtype="str"),
        "billing_month": pd.array(u.month.strings(rows), dtype="str"),
        "opened_at": _utc(u.opened[rows]),
        "opening_message_id": str_series(u.ids.take(pa.array(rows))),
        "local_date": pd.Series(u.local_date[rows]),
        "tier_rank": u.tier_rank[rows],
    })
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
