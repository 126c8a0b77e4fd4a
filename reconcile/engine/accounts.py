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

Every pass is vectorised (integer sorts, group counts, lookups per distinct combination of codes) or a
compiled loop over the units (the delivery order's radix sort, ranks within a scope); the only Python
loops are over regimes, accounts and the few distinct names of a column. The raw units' string
columns are read by position (:class:`RawColumns`): pandas ``str`` columns are encoded once for the
units of the period, ``Categorical`` ones are used through their codes (no string is hashed). The
output's costliest string columns are gathered in a second thread while the last passes run
(:meth:`UnitArrays.start_frame`).
"""
from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Callable, Mapping, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from ..contracts import FREE_PRICING_TYPES, PRICING_TYPES, UNIT_COLUMNS, Period
from ..quality import QualityLog
from ..rules.eras import REGIMES, Regime
from ..rules.rates import RateTable
from .buffers import read_only
from .prepare import DAY_NS, arrow_strings, order_ties, str_series, tied_positions
from .sorting import radix_sort_in_place, worker_pool

#: columns written after the contract's UNIT_COLUMNS (useful downstream, never required)
EXTRA_UNIT_COLUMNS = ["era", "regime_index", "local_date", "timezone", "portfolio_id", "tier_rank", "rate_version"]
#: minimum history before the period start, in days, below which ``short_lookback`` is reported (section 0)
MIN_LOOKBACK_DAYS = 7
#: output string columns copied from the raw units as they are (one gather each, in the final order)
_COPIED_STRING_COLUMNS = ("phone_number_id", "user_wa_id", "country", "era", "timezone")
_NAT = np.iinfo(np.int64).min
#: dtype of the codes of a string column (few names; half the memory of int64 for the unit arrays). Tables
#: are read by code with ``table.take(codes)``: numpy's ``table[codes]`` first converts non-intp indices
_CODE = np.int32
#: local day of a unit without a local date (NaT): below every date, so no rate version is in force
_NO_DAY = np.int64(-(1 << 40))
#: a dense table over a packed key is used (instead of a sort) while the key range is below this
#: multiple of the row count (plus a fixed allowance for small inputs)
_DENSE_KEY_FACTOR = 4
_DENSE_KEY_MIN = 1 << 16


# --------------------------------------------------------------------------- entry point
def finalize_units(raw_units: pd.DataFrame, accounts: pd.DataFrame, rates: pd.DataFrame | RateTable,
                   period: Period, quality: QualityLog, *,
                   regimes: Sequence[Regime] = REGIMES) -> tuple[pd.DataFrame, dict]:
    """Raw units of the whole history → the period's billable units (``UNIT_COLUMNS`` then
    ``EXTRA_UNIT_COLUMNS``, ordered by ``UNIT_ORDER``) and counts.

    ``counts``: ``units`` (emitted), ``units_free``, ``units_unpriced`` (paid units without a rate),
    ``units_before_period`` / ``units_after_period`` (computed as state, not emitted) and
    ``units_<pricing_type>`` for each pricing type.

    The raw units' string columns may be pandas ``str`` or ``Categorical`` (see :class:`RawColumns`).
    The passes work on integer arrays in delivery order (:class:`UnitArrays`): string columns are
    small vocabularies with codes (ordered like the strings where an order is needed), rows are
    positions into the raw units. Every output column is gathered once, in the final order.
    """
    table = rates if isinstance(rates, RateTable) else RateTable(rates)
    raw = RawColumns(raw_units)
    month = raw.encoded("billing_month")
    side = _period_side(month, period)
    counts = {"units_before_period": int((side < 0).sum()), "units_after_period": int((side > 0).sum())}
    u = UnitArrays(raw, np.flatnonzero(side == 0), month)
    _join_accounts(u, accounts, quality)

    apply_authentication_international(u, table)
    u.start_frame()                    # categories final: unit ids and the final order are known
    apply_service_free(u, regimes)
    apply_free_tier(u, regimes)
    apply_service_allowance(u, regimes)
    u.tier_rank = tier_ranks(u)
    price_units(u, table, quality)
    out = u.frame()

    free = u.pricing_type.isin(FREE_PRICING_TYPES)
    counts.update({"units": u.n, "units_free": int(free.sum()),
                   "units_unpriced": int((~free & np.isnan(u.rate)).sum())})
    by_type = np.bincount(u.pricing_type.codes, minlength=len(u.pricing_type.names))
    for pt in PRICING_TYPES:
        counts[f"units_{pt}"] = int(by_type[u.pricing_type.names.index(pt)]) if pt in u.pricing_type.names else 0
    return out, counts


# --------------------------------------------------------------------------- string codes
class _Codes:
    """A string column as ``codes`` into ``names``. From :meth:`sorted`, ``names`` are sorted (code point
    order, as pandas and Arrow compare strings), so codes compare like the strings; :meth:`code` may
    append a name (then only equality is meaningful for it)."""

    def __init__(self, codes: np.ndarray, names: list[str]):
        self.codes = codes
        self.names = names

    @classmethod
    def sorted(cls, codes: np.ndarray, names: list[str], order: np.ndarray | None = None) -> "_Codes":
        """``codes`` (any integer dtype) into any list of ``names`` (unsorted, possibly repeated) → codes into the sorted distinct names (one gather through a small rank table; ``order``: of
        ``codes[order]``)."""
        if order is not None:
            codes = codes[order]
        distinct = sorted(set(names))
        if distinct == names:                     # already sorted and distinct: the codes as they are
            return cls(codes.astype(_CODE), distinct)
        index = {name: i for i, name in enumerate(distinct)}
        rank = np.array([index[name] for name in names], dtype=_CODE)
        return cls(rank.take(codes) if len(names) else np.zeros(len(codes), dtype=_CODE), distinct)

    def take(self, positions: np.ndarray) -> "_Codes":
        return _Codes(self.codes[positions], self.names)

    def code(self, name: str) -> int:
        """Code of ``name`` (appended to the names when absent)."""
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name)

    def where(self, test) -> np.ndarray:
        """``test(name)`` per row (evaluated once per name)."""
        return np.array([bool(test(n)) for n in self.names] + [False], dtype=bool).take(self.codes)

    def isin(self, names) -> np.ndarray:
        return self.where(lambda n: n in names)

    def __eq__(self, name) -> np.ndarray:        # type: ignore[override]
        return self.codes == (self.names.index(name) if name in self.names else -1)

    def strings(self, rows=None) -> np.ndarray:
        """Object array of the strings (of ``rows``)."""
        codes = self.codes if rows is None else self.codes[rows]
        return np.asarray(self.names, dtype=object).take(codes) if len(self.names) else np.full(len(codes), "", object)

    def arrow(self, rows=None) -> pa.Array:
        """``large_string`` array of the strings (of ``rows``), see :func:`_vocabulary_take`."""
        return _vocabulary_take(self.names, self.codes if rows is None else self.codes[rows])

    def column(self, rows=None) -> pd.Series:
        """``str`` Series of the strings (of ``rows``)."""
        return str_series(self.arrow(rows))


def _vocabulary_take(names: list[str], codes: np.ndarray) -> pa.Array:
    """``names[codes]`` as a ``large_string`` array (every code a valid position). Names of one byte
    length (account ids, months, currencies) are gathered as fixed-width bytes by numpy, the data
    buffer as it is and the offsets a range; other vocabularies by one Arrow gather."""
    encoded = [name.encode() for name in names]
    width = len(encoded[0]) if encoded else 0
    if width and all(len(b) == width for b in encoded):
        data = np.array(encoded, dtype=f"S{width}").take(codes)
        offsets = np.arange(0, (len(codes) + 1) * width, width, dtype=np.int64)
        return pa.LargeStringArray.from_buffers(len(codes), pa.py_buffer(offsets), pa.py_buffer(data))
    return pc.take(pa.array(names, type=pa.large_string()), pa.array(codes))


def _period_side(month: tuple[np.ndarray, list[str]], period: Period) -> np.ndarray:
    """Per raw unit: -1 billed before the period, 0 in it, 1 after (``month``: codes and names of the
    billing month; decided once per name)."""
    codes, names = month
    side = [-1 if m < period.first else 1 if m > period.last else 0 for m in names]
    return np.array(side, dtype=np.int8).take(codes) if names else np.zeros(len(codes), dtype=np.int8)


# --------------------------------------------------------------------------- raw columns
class RawColumns:
    """The raw units' columns as this module reads them, by position, without normalising the whole
    frame: only the rows asked for are gathered or converted.

    String columns come in three forms: pandas ``str`` (Arrow ``large_string`` without missing values:
    used as it is), ``Categorical`` with string categories (its integer codes and few categories: no
    string is hashed; a missing value reads as ``""``), anything else (object, numbers, NaN): converted
    once like ``fillna("").astype(str)``. A missing string column reads as ``""`` everywhere, missing
    ``opened_at`` / ``expires_at`` as NaT. Instants are int64 ns UTC (NaT = int64 minimum)."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.n = len(frame)
        self._strings: dict[str, pa.Array | tuple[np.ndarray, list[str]]] = {}

    def _string_column(self, name: str) -> pa.Array | tuple[np.ndarray, list[str]]:
        """Arrow strings, or ``(codes, names)`` for a Categorical / missing column (every code a valid
        position)."""
        if name not in self._strings:
            s = self.frame[name] if name in self.frame.columns else None
            if s is None:
                self._strings[name] = (np.zeros(self.n, dtype=np.int8), [""])
            elif _is_string_categorical(s):
                cat = s.array
                codes, names = cat.codes, cat.categories.tolist()
                if len(codes) and codes.min() < 0:          # missing values read as ""
                    codes, names = np.where(codes < 0, len(names), codes), names + [""]
                self._strings[name] = (codes, names)
            else:
                self._strings[name] = arrow_strings(s if _is_plain_str(s) else s.fillna("").astype(str))
        return self._strings[name]

    def strings(self, name: str, rows: np.ndarray) -> pa.Array:
        """The strings of ``rows`` as a ``large_string`` array (one gather: of the strings, or of the
        names by code)."""
        column = self._string_column(name)
        if isinstance(column, tuple):
            codes, names = column
            return _vocabulary_take(names, codes[rows])
        out = column.take(pa.array(rows))
        return out if pa.types.is_large_string(out.type) else out.cast(pa.large_string())

    def encoded(self, name: str, rows: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
        """Codes (into unsorted names) and names of the strings (of ``rows``): a Categorical's own codes,
        else one dictionary encoding of the strings (gathered first, in the order of ``rows``)."""
        column = self._string_column(name)
        if isinstance(column, tuple):
            codes, names = column
            return (codes if rows is None else codes[rows]), names
        enc = pc.dictionary_encode(column if rows is None else column.take(pa.array(rows)))
        return np.asarray(enc.indices), enc.dictionary.to_pylist()

    def codes(self, name: str, rows: np.ndarray | None = None, order: np.ndarray | None = None) -> _Codes:
        """Sorted codes of the strings of ``rows`` (all rows when ``None``), in ``order`` when given
        (the codes of ``rows[order]``: the strings are read in the order of ``rows``)."""
        return _Codes.sorted(*self.encoded(name, rows), order)

    def instants(self, name: str) -> np.ndarray:
        """int64 ns UTC of every row (a ``datetime64[ns, UTC]`` column is read without a copy)."""
        if name not in self.frame.columns:
            return np.full(self.n, _NAT, dtype=np.int64)
        s = self.frame[name]
        if s.dtype != "datetime64[ns, UTC]":
            s = pd.to_datetime(s, utc=True).astype("datetime64[ns, UTC]")
        return s.array.asi8

    def local_days(self, rows: np.ndarray) -> np.ndarray:
        """Local date of ``rows`` as int64 days since 1970-01-01 (the date of a naive instant, the wall
        date of a tz-aware one; NaT → :data:`_NO_DAY`)."""
        ld = self.frame["local_date"]
        if ld.dtype != np.dtype("M8[ns]"):
            if isinstance(ld.dtype, pd.DatetimeTZDtype):
                ld = ld.dt.tz_localize(None)
            ld = pd.to_datetime(ld).astype("datetime64[ns]")
        day = ld.to_numpy().view(np.int64).take(rows)          # a new array: converted in place
        missing = day == _NAT
        day //= DAY_NS
        day[missing] = _NO_DAY
        return day

    def integers(self, name: str, fill_missing: bool = False) -> np.ndarray:
        """int64 values of every row (``fill_missing``: missing values read as 0)."""
        s = self.frame[name]
        if s.dtype == np.int64:
            return s.to_numpy()
        s = pd.to_numeric(s)
        return (s.fillna(0) if fill_missing else s).astype("int64").to_numpy()


def _is_plain_str(s: pd.Series) -> bool:
    """A pandas ``str`` column (Arrow storage, NaN as missing value) without missing values."""
    dtype = s.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow" and isinstance(dtype.na_value, float)):
        return False
    arr = getattr(s.array, "_pa_array", None)
    return arr is not None and arr.null_count == 0 and pa.types.is_large_string(arr.type)


def _is_string_categorical(s: pd.Series) -> bool:
    """A ``Categorical`` column whose categories are all strings."""
    return isinstance(s.dtype, pd.CategoricalDtype) and all(isinstance(c, str) for c in s.dtype.categories)


def _utc(ns: np.ndarray) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC"))


# --------------------------------------------------------------------------- the units as arrays
class UnitArrays:
    """The period's units in delivery order (``opened_at``, ties by ``opening_message_id``; rule book
    section 0 "Ties") as arrays: ``pos`` (row of each unit in the raw units), ``opened`` (ns), ``day``
    (local date in days), ``regime`` (regime index), codes of the string columns the passes read and,
    once joined, the account's currency, business country and tier scope (portfolio) per account name.
    The passes rewrite ``category`` and ``pricing_type`` (codes) and add ``tier_rank``, ``rate``,
    ``tier``, ``rate_version``."""

    def __init__(self, raw: RawColumns, keep: np.ndarray, month: tuple[np.ndarray, list[str]]):
        self.raw = raw
        t = raw.instants("opened_at")[keep]
        order = _order_by_instant(t, lambda rows: raw.strings("opening_message_id", keep[rows]))
        self._keep, self._order = keep, order
        self.pos = keep[order]
        self.n = len(self.pos)
        self.opened = t[order]
        self.regime = raw.integers("regime_index")[self.pos]
        self.day = raw.local_days(self.pos)
        self.month = _Codes.sorted(month[0], month[1], self.pos)
        self.waba = self._codes("waba_id")
        self.category = self._codes("category")
        self.pricing_type = self._codes("pricing_type")
        self.pricing_model = self._codes("pricing_model")
        self.market = self._codes("market")
        self._phone = None
        self._started = None            # (final order, its raw rows, the second thread's columns): start_frame
        # per account name (index = waba code): set by _join_accounts
        self.currency_of: list[str] = []
        self.business_country_of: list[str] = []
        self.portfolio_of: list[str] = []
        self.tier_rank = np.zeros(self.n, dtype=np.int64)
        self.rate = np.zeros(self.n, dtype=np.float64)
        self.tier = _Codes(np.zeros(self.n, dtype=_CODE), [""])
        self.rate_version = _Codes(np.zeros(self.n, dtype=_CODE), [""])

    def _codes(self, column: str) -> _Codes:
        """Codes of a raw string column in delivery order (the kept rows, in row order, are encoded
        — a sequential gather — then the codes are put in delivery order)."""
        return self.raw.codes(column, self._keep, self._order)

    def codes_of(self, column: str, rows: np.ndarray) -> _Codes:
        """Codes of a raw string column for the units ``rows`` only (columns few units need)."""
        return self.raw.codes(column, self.pos[rows])

    @property
    def phone(self) -> _Codes:
        if self._phone is None:
            self._phone = self._codes("phone_number_id")
        return self._phone

    def ids(self, rows) -> pa.Array:
        """Opening message ids of the units ``rows`` (one gather from the raw column)."""
        return self.raw.strings("opening_message_id", self.pos[rows])

    def currency(self, rows=None) -> np.ndarray:
        """Object array of the account currency of each unit (of ``rows``)."""
        return _per_account(self.currency_of, self.waba, rows)

    def currency_codes(self, rows) -> np.ndarray:
        """A code per distinct currency string, of each unit of ``rows``."""
        first: dict[str, int] = {}
        codes = np.array([first.setdefault(c, len(first)) for c in self.currency_of + [""]], dtype=np.int64)
        return codes.take(self.waba.codes[rows])          # a few accounts: no pandas factorize

    def local_date(self, rows) -> pd.Series:
        """Local date of each unit of ``rows`` (naive ``datetime64[ns]`` midnights, NaT when none)."""
        ns = self.day.take(rows)                                # a new array: converted in place
        missing = ns == _NO_DAY
        ns *= DAY_NS
        ns[missing] = _NAT
        return pd.Series(ns.view("M8[ns]"))

    def unit_ids(self, rows) -> pa.Array:
        """Unit ids of the units ``rows``."""
        return _unit_ids(self.ids(rows), self.category.arrow(rows))

    def final_order(self) -> np.ndarray:
        """Units (delivery positions) in ``UNIT_ORDER``: account, billing month, open instant, unit id.

        Delivery order is (opened_at, opening_message_id), NaT last: a stable sort by (account, month)
        keeps it; only rows tied on (account, month, opened_at) are reordered by unit id."""
        key = _combined([self.waba.codes, self.month.codes], [len(self.waba.names), len(self.month.names)])
        f = _stable_order(key)
        return _break_ties(f, [key[f], self.opened[f]], self.unit_ids)

    def frame(self) -> pd.DataFrame:
        """The units as the output frame: ``UNIT_COLUMNS + EXTRA_UNIT_COLUMNS`` in ``UNIT_ORDER``,
        every column gathered once (the costliest string columns in a second thread: :meth:`start_frame`)."""
        f, rows, second = self._started or self._start_text_columns()
        raw = self.raw
        accounts = self.waba.codes[f]
        rate = self.rate[f]
        out = {
            "waba_id": self.waba.column(f),
            "market": self.market.column(f),
            "pricing_model": self.pricing_model.column(f),
            "pricing_type": self.pricing_type.column(f),
            "opened_at": _utc(self.opened[f]),
            "expires_at": _utc(raw.instants("expires_at")[rows]),
            "message_count": raw.integers("message_count", fill_missing=True)[rows],
            "billing_month": self.month.column(f),
            "tier": self.tier.column(f),
            "rate": rate,
            "amount": rate * 1.0,          # one unit each; full precision, rounded only when written
            "currency": _Codes(accounts, self.currency_of).column(),
            "regime_index": self.regime[f],
            "local_date": self.local_date(f),
            "portfolio_id": _Codes(accounts, self.portfolio_of).column(),
            "tier_rank": self.tier_rank[f],
            "rate_version": self.rate_version.column(f),
        }
        out.update(second.result())
        return pd.DataFrame(out, columns=UNIT_COLUMNS + EXTRA_UNIT_COLUMNS, copy=False)   # fresh arrays: no block copies

    def start_frame(self) -> None:
        """Fix the final order and start building the costliest string columns of :meth:`frame` in a
        second thread, while this one goes on with the passes that leave categories (hence unit ids
        and the order) unchanged."""
        self._started = self._start_text_columns()

    def _start_text_columns(self) -> tuple[np.ndarray, np.ndarray, Future]:
        """The final order, its raw rows and the future of :meth:`_id_and_text_columns` (Arrow gathers
        and joins, which release the GIL) run in a second thread; the raw string columns that thread
        reads are resolved here first."""
        f = self.final_order()
        rows = self.pos[f]
        for c in ("opening_message_id",) + _COPIED_STRING_COLUMNS:
            self.raw._string_column(c)
        return f, rows, worker_pool().submit(self._id_and_text_columns, f, rows)

    def _id_and_text_columns(self, f: np.ndarray, rows: np.ndarray) -> dict[str, pd.Series]:
        """``unit_id``, ``opening_message_id``, ``category`` and the copied string columns of the units
        ``f`` (raw rows ``rows``) for :meth:`frame`."""
        ids = self.ids(f)
        category = self.category.arrow(f)
        out = {"unit_id": str_series(_unit_ids(ids, category)), "opening_message_id": str_series(ids),
               "category": str_series(category)}
        for c in _COPIED_STRING_COLUMNS:
            out[c] = str_series(self.raw.strings(c, rows))
        return out


def _unit_ids(ids: pa.Array, category: pa.Array) -> pa.Array:
    """``opening_message_id:category`` per unit (the unit id, section 0)."""
    return pc.binary_join_element_wise(ids, category, pa.scalar(":", type=pa.large_string()))


def _per_account(values: list[str], waba: _Codes, rows=None) -> np.ndarray:
    codes = waba.codes if rows is None else waba.codes[rows]
    return np.asarray(values + [""], dtype=object).take(codes)


# --------------------------------------------------------------------------- orders and groups
def _stable_order(key: np.ndarray) -> np.ndarray:
    """Stable ascending order of non-negative integer keys: a radix sort when they fit 16 bits (re-coded
    densely first when they do not: the distinct keys usually do)."""
    if len(key) and int(key.max()) >= 1 << 16:
        key = _distinct([key])[1]                  # dense codes, ordered like the keys
    if len(key) and int(key.max()) < 1 << 16:
        return np.argsort(key.astype(np.uint16), kind="stable")
    return np.argsort(key, kind="stable")


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


def _order_by_instant(t: np.ndarray, ids_of: Callable[[np.ndarray], pa.Array]) -> np.ndarray:
    """Stable order of rows by instant (NaT last), then id (``ids_of(rows)``: the ids of those rows):
    one integer radix sort, the rows tied on the instant (rare) reordered by id."""
    if len(t) < 2 or int(t.max()) == np.iinfo(np.int64).max:
        return _sort_order([pa.array(t, mask=t == _NAT), ids_of(np.arange(len(t)))])
    key = np.where(t == _NAT, np.iinfo(np.int64).max, t) if int(t.min()) == _NAT else t
    order = _radix_order(key)
    return _break_ties(order, [key[order]], ids_of)


def _radix_order(key: np.ndarray) -> np.ndarray:
    """Stable ascending order of int64 ``key``: the compiled LSD radix sort of :mod:`.sorting` over the
    offsets from the minimum (linear; numpy sorts int64 by comparisons, ~4x slower on 100K instants)."""
    n = len(key)
    order = np.arange(n, dtype=np.int64)
    if n < 2:
        return order
    offsets = key.view(np.uint64) - np.uint64(int(key.min()) % (1 << 64))     # wraps: exact differences
    bits = int(offsets.max()).bit_length()
    if bits:
        radix_sort_in_place(offsets, order, bits)
    return order


def _break_ties(order: np.ndarray, sorted_keys: list[np.ndarray],
                strings_of: Callable[[np.ndarray], pa.Array]) -> np.ndarray:
    """``order`` sorts rows by integer keys (``sorted_keys``: the keys in that order); rows equal on
    every key are put in order of their strings (``strings_of(rows)``, asked for the tied rows only),
    then of the row number (a stable result)."""
    pos, run = tied_positions(sorted_keys)
    return order_ties(order, pos, run, strings_of(order[pos])) if len(pos) else order


def _packed(parts: list[np.ndarray]) -> np.ndarray:
    """One int64 per row, equal exactly where every (non-negative integer) part is equal; ordered like
    the parts (first part most significant)."""
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


def _distinct(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A row of each distinct part combination and each row's combination index (0.., ordered like the
    combinations): an elementwise lookup is made once per combination and spread back with
    ``[inverse]``. Small key ranges use a table over the range instead of a sort."""
    key = _packed(parts)
    n = len(key)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    top = int(key.max())
    if top >= _DENSE_KEY_FACTOR * n + _DENSE_KEY_MIN:
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return first, inverse.reshape(-1)
    present = np.zeros(top + 1, dtype=bool)
    present[key] = True
    inverse = (np.cumsum(present) - 1)[key]
    one = np.empty(int(inverse.max()) + 1, dtype=np.int64)
    one[inverse] = np.arange(n, dtype=np.int64)
    return one, inverse


def _rank_within(mask: np.ndarray, scope: list[_Codes]) -> np.ndarray:
    """1-based rank of each masked unit within its scope (equal codes), in delivery order (the order
    of the arrays, rule book section 0 "Ties"); 0 for unmasked units: one compiled pass counting the
    masked units of each scope so far (no sort)."""
    if not mask.any():
        return np.zeros(len(mask), dtype=np.int64)
    key = _combined([part.codes for part in scope], [len(part.names) for part in scope])
    if int(key.max()) >= _DENSE_KEY_FACTOR * len(key):          # sparse keys: dense codes for the counters
        key = _distinct([key])[1]
    return _running_ranks(read_only(mask, np.bool_), read_only(key, np.int64), np.int64(int(key.max()) + 1))


@njit(cache=True, nogil=True)
def _running_ranks(mask, key, n_keys):
    """Per row: 0 where not ``mask``, else the number of masked rows up to it (itself included) with
    its ``key`` (keys ``0 .. n_keys - 1``)."""
    rank = np.zeros(mask.shape[0], np.int64)
    seen = np.zeros(n_keys, np.int64)
    for i in range(mask.shape[0]):
        if mask[i]:
            k = key[i]
            seen[k] += 1
            rank[i] = seen[k]
    return rank


def _combined(codes: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    """One non-negative int64 per row, equal exactly where every code is equal and ordered like the codes
    (first most significant); ``sizes``: the number of names of each part (its codes are below it)."""
    if np.prod([float(max(size, 1)) for size in sizes]) >= 2.0 ** 62:
        return _packed(codes)
    key = np.zeros(len(codes[0]), dtype=np.int64)
    for part, size in zip(codes, sizes):
        key *= max(size, 1)
        key += part
    return key


def _join_accounts(u: UnitArrays, accounts: pd.DataFrame, quality: QualityLog) -> None:
    """Attach the account's currency, business country and tier scope (portfolio, default the account)
    per account name (the first row of an account counts; missing values read as ``""``); units of an
    account missing from ``accounts`` are reported, kept, left unpriced."""
    columns = [[_text(v) for v in accounts[c].tolist()]
               for c in ("waba_id", "currency", "business_country", "portfolio_id")]
    known: dict[str, tuple[str, str, str]] = {}
    for waba, currency, business, portfolio in zip(*columns):     # loop over accounts
        known.setdefault(waba, (currency, business, portfolio or waba))
    names = u.waba.names
    u.currency_of = [known[w][0] if w in known else "" for w in names]
    u.business_country_of = [known[w][1] if w in known else "" for w in names]
    u.portfolio_of = [known[w][2] if w in known else w for w in names]
    missing = u.waba.where(lambda w: w not in known)
    if missing.any():
        # the readers exclude such messages already; a unit reaching here is reported, kept, left unpriced
        rows = np.flatnonzero(missing)
        sub = pd.DataFrame({"waba_id": pd.array(u.waba.strings(rows), dtype="str"),
                            "opening_message_id": str_series(u.ids(rows))})
        first = sub.groupby("waba_id", sort=True)["opening_message_id"].min()
        quality.add_many("error", "unknown_account", source="engine", column="waba_id",
                         message_id=first.to_numpy(), detail=[f"units of account {w} not in accounts"
                                                              for w in first.index])


def _text(value) -> str:
    """An accounts cell as text, like ``fillna("").astype(str)``: missing → ``""``."""
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _regime_attr(u: UnitArrays, regimes: Sequence[Regime], attr: str, dtype=None) -> np.ndarray:
    values = np.array([getattr(r, attr) for r in regimes], dtype=dtype)
    return values[u.regime]


def _rate_versions(u: UnitArrays, table: RateTable, rows: np.ndarray, category: _Codes) -> np.ndarray:
    """The rate card version (:meth:`RateTable.version_at`, -1 when none) in force for each unit of
    ``rows`` by its market, ``category`` (codes per unit of ``rows``), account currency and local date:
    looked up once per distinct combination (few: the units of a period share few dates)."""
    day = u.day[rows]
    one, spread = _distinct([u.market.codes[rows], category.codes, u.currency_codes(rows), day])
    first = rows[one]
    group = table.group_ids(u.market.strings(first), category.strings(one), u.currency(first))
    return table.version_at(group, day[one])[spread]


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
    country = u.codes_of("country", auth)
    # the account's business country as a code among the users' countries (-1: none of them)
    business = np.array([country.names.index(b) if b in country.names else -1 for b in u.business_country_of]
                        + [-1], dtype=np.int64).take(u.waba.codes[auth])
    has_business = np.array([b != "" for b in u.business_country_of] + [False]).take(u.waba.codes[auth])
    foreign = ~(country == "") & has_business & (country.codes != business)
    international = _Codes(np.zeros(len(auth), dtype=_CODE), ["authentication_international"])
    has = _rate_versions(u, table, auth, international) >= 0
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
    own = np.array([scope_code[w] for w in u.waba.names] + [0], dtype=_CODE)
    portfolio = np.array([scope_code[p] for p in u.portfolio_of] + [0], dtype=_CODE)
    scope = np.where(u.pricing_model == "NBP", own.take(u.waba.codes), portfolio.take(u.waba.codes))
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
    # the version once per distinct (market, category, currency, date); the tier row by rank per unit
    version = _rate_versions(u, table, paid, u.category.take(paid))
    row = table.tier_row(version, u.tier_rank[paid])              # -1: no rate
    u.rate[paid] = np.append(table.row_rate, np.nan)[row]
    u.tier = _row_labels(table.row_tier, row, paid, u.n)
    u.rate_version = _row_labels(table.row_version_label, row, paid, u.n)
    missing = row < 0
    _report_missing_rates(u, paid[missing], version[missing] >= 0, quality)


def _row_labels(labels: np.ndarray, row: np.ndarray, paid: np.ndarray, n: int) -> _Codes:
    """Per unit, the label of its rate row (``labels[row]`` for the units ``paid``; ``""`` for a row -1
    and for the other units), as codes into the few distinct labels."""
    names, code = np.unique(np.append(np.asarray(labels, dtype=object), ""), return_inverse=True)
    code = code.reshape(-1).astype(_CODE)
    codes = np.full(n, code[-1], dtype=_CODE)
    codes[paid] = code[row]
    return _Codes(codes, names.tolist())


def _report_missing_rates(u: UnitArrays, rows: np.ndarray, has_version: np.ndarray, quality: QualityLog) -> None:
    """One ``missing_rate`` error per (account, market, category, currency, billing month) of the units
    ``rows`` (paid units without a rate; ``has_version``: a version was in force, so no tier row held
    the rank)."""
    if len(rows) == 0:
        return
    m = pd.DataFrame({
        "waba_id": pd.array(u.waba.strings(rows), dtype="str"),
        "market": pd.array(u.market.strings(rows), dtype="str"),
        "category": pd.array(u.category.strings(rows), dtype="str"),
        "currency": pd.array(u.currency(rows), dtype="str"),
        "billing_month": pd.array(u.month.strings(rows), dtype="str"),
        "opened_at": _utc(u.opened[rows]),
        "opening_message_id": str_series(u.ids(rows)),
        "local_date": u.local_date(rows),
        "tier_rank": u.tier_rank[rows],
    })
    m["_has_version"] = has_version
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


def load_kernels() -> None:
    """Compile (first time after an install) or load from numba's cache this module's kernel (for
    :func:`reconcile.engine.load_kernels`)."""
    _rank_within(np.ones(1, dtype=bool), [_Codes(np.zeros(1, dtype=_CODE), [""])])


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
