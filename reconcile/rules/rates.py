"""Rate and volume-tier lookup by market, category, currency and date (rule book section 0, "Rates").

For a paid unit, among the rate rows of its ``(market, category, currency)`` take those with the
latest ``effective_from`` <= the unit's charge date in the account timezone (one *version*); that
version's tier rows (if any) apply: the unit takes the row whose ``[tier_from, tier_to]`` holds its
rank (rule book sections 1 and 4). A missing rate is ``NaN``, never 0.

Everything here is vectorised: a probe's ``(market, category, currency)`` is matched to a group by
integer codes, its version by a bisection among the group's versions (ordered by day) and its tier row
by one lookup in a table per (version, number of distinct ``tier_from`` <= the rank) built with the
card (a bisection among the version's rows when that table would be large); each bisection pass is one
array operation over all probes, and the few versions per group and rows per version keep the passes
few. No Python loop runs per unit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

_SHIFT = np.int64(1) << np.int64(32)
#: days are offset so that any date after year -900 is a positive 32-bit value
_DAY_OFFSET = np.int64(1) << np.int64(30)
_NO_TIER_FROM = 0          # an untiered row covers every rank >= 0
_OPEN_TIER_TO = np.iinfo(np.int64).max
_GROUP_COLUMNS = ("market", "category", "currency")
#: most entries of the tier-row table (versions x distinct tier_from values); past it, tier rows are
#: found by bisection
_TIER_TABLE_MAX = 1 << 20


def _as_days(values) -> np.ndarray:
    """Dates (``datetime.date`` objects, strings, datetime64 of any unit, tz-aware or not) → int64 days
    since 1970-01-01. A tz-aware value keeps its wall-clock date."""
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        s = pd.to_datetime(s.astype(str).str.slice(0, 10), format="%Y-%m-%d")
    elif isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_dtype(s.dtype):
        s = pd.to_datetime(s)
    return s.to_numpy(dtype="datetime64[D]").astype(np.int64)


def _texts(values: pd.Series, strip: bool = False) -> np.ndarray:
    """Object array of ``values`` as strings, missing → ``""`` (like ``fillna("").astype(str)``, then
    ``.str.strip()`` when ``strip``): each distinct value converted once."""
    codes, distinct = pd.factorize(values)
    names = [str(v).strip() if strip else str(v) for v in distinct]
    return np.array(names + [""], dtype=object).take(codes)


def _tier_bounds(values: pd.Series) -> pd.arrays.IntegerArray:
    """``tier_from`` / ``tier_to`` as nullable ``Int64`` (unreadable values missing)."""
    return pd.array(pd.to_numeric(values, errors="coerce") if len(values) else [], dtype="Int64")


def _versions(rates: pd.DataFrame, days: np.ndarray) -> np.ndarray:
    """Object array of the ``version`` per row: the ISO ``effective_from`` (``days``) where absent or
    empty (formatted for those rows only)."""
    out = _texts(rates["version"]) if "version" in rates.columns else np.full(len(rates), "", dtype=object)
    empty = out == ""
    if empty.any():
        iso = pd.Series(days[empty].astype("datetime64[D]").astype("datetime64[ns]")).dt.strftime("%Y-%m-%d")
        out[empty] = iso.to_numpy(object)
    return out


def _rate_columns(rates: pd.DataFrame) -> dict:
    """The normalised rate columns as arrays (see :func:`normalise_rates`): ``day`` (int64 days of
    ``effective_from``), ``market`` / ``currency`` / ``category`` (stripped strings), ``tier_from`` /
    ``tier_to`` (``Int64``), ``rate`` (float64) and ``version``. Built column by column without a frame:
    :class:`RateTable` reads these arrays directly."""
    n = len(rates)
    day = _as_days(rates["effective_from"]) if n else np.zeros(0, dtype=np.int64)
    rate = rates["rate"]
    if rate.dtype != np.float64:
        rate = pd.to_numeric(rate, errors="coerce").astype("float64")
    out = {"day": day, **{c: _texts(rates[c], strip=True) for c in ("market", "currency", "category")},
           **{c: _tier_bounds(rates[c]) for c in ("tier_from", "tier_to")}, "rate": rate.to_numpy()}
    out["version"] = _versions(rates, day)
    return out


def normalise_rates(rates: pd.DataFrame) -> pd.DataFrame:
    """The rate frame in the shape this module uses: ``effective_from`` as naive ``datetime64[ns]``
    midnight (from ``datetime.date`` objects, strings or datetime64), ``tier_from``/``tier_to`` as
    nullable ``Int64``, ``rate`` float64, strings stripped; ``version`` filled with the ISO
    ``effective_from`` when absent or empty and ``source`` with ``""``."""
    columns = _rate_columns(rates)
    out = rates.copy()
    out["effective_from"] = columns.pop("day").astype("datetime64[D]").astype("datetime64[ns]")
    for c, values in columns.items():
        out[c] = pd.array(values, dtype="str") if values.dtype == object else values
    out["source"] = pd.array(_texts(rates["source"]) if "source" in rates.columns else [""] * len(rates), dtype="str")
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class RateLookup:
    """Result of :meth:`RateTable.lookup`: one element per unit."""

    rate: np.ndarray        # float64, NaN when no rate
    tier: np.ndarray        # object array of str: "FROM:TO", "FROM:" or ""
    version: np.ndarray     # object array of str: the version used, "" when none
    has_version: np.ndarray  # bool: a version of (market, category, currency) is in force at the date


class RateTable:
    """The rate card indexed for vectorised lookups (see module docstring)."""

    def __init__(self, rates: pd.DataFrame):
        columns = _rate_columns(rates)
        has_rate = ~np.isnan(columns["rate"])
        r = {c: values[has_rate] for c, values in columns.items()}
        n = int(has_rate.sum())
        # groups: the distinct (market, category, currency), sorted; each column coded by its sorted
        # distinct values, so that the integer key orders the groups like the strings
        self._key_index: list[dict[str, int]] = []
        key = np.zeros(n, dtype=np.int64)
        for c in _GROUP_COLUMNS:
            names, codes = np.unique(r[c], return_inverse=True) if n else \
                (np.array([], dtype=object), np.zeros(0, dtype=np.int64))
            self._key_index.append({name: i for i, name in enumerate(names.tolist())})
            key = key * (len(names) + 1) + codes.reshape(-1)
        self._group_keys, group_id = np.unique(key, return_inverse=True)
        group_id = group_id.reshape(-1).astype(np.int64)
        day = r["day"]
        # versions: distinct (group, effective_from), sorted
        self._version_keys, version_id = np.unique(group_id * _SHIFT + day + _DAY_OFFSET, return_inverse=True)
        version_id = version_id.reshape(-1).astype(np.int64)
        self._version_group = self._version_keys // _SHIFT
        # tier rows within each version: sorted by (version, from, to), the first of equal ones kept
        tfrom = r["tier_from"].to_numpy(np.int64, na_value=_NO_TIER_FROM)
        tto = r["tier_to"].to_numpy(np.float64, na_value=np.inf)
        order = np.lexsort((tto, tfrom, version_id))
        v, f, t = version_id[order], tfrom[order], tto[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (v[1:] != v[:-1]) | (f[1:] != f[:-1]) | (t[1:] != t[:-1])
        order = order[first]
        # searches run within a group's versions (ascending day) and a version's rows (ascending tier_from):
        # versions of group g are [_group_versions[g], _group_versions[g + 1]), rows of version v likewise
        self._version_day = self._version_keys - self._version_group * _SHIFT          # day + _DAY_OFFSET
        self._group_versions = np.searchsorted(self._version_group, np.arange(len(self._group_keys) + 1))
        self._version_rows = np.searchsorted(version_id[order], np.arange(len(self._version_keys) + 1))
        self._row_from = tfrom[order]
        self._row_to = tto[order]
        self._froms, self._tier_table = _tier_table(self._row_from, version_id[order], self._version_rows)
        # per tier row (the row numbers :meth:`tier_row` returns): rate, version label, tier label
        self.row_rate = r["rate"][order]
        self.row_version_label = r["version"][order]
        bounds = list(zip(r["tier_from"].to_numpy(object, na_value=None)[order].tolist(),
                          r["tier_to"].to_numpy(object, na_value=None)[order].tolist()))
        labels = {b: _tier_label(*b) for b in set(bounds)}           # loop over distinct tier bounds
        self.row_tier = np.array([labels[b] for b in bounds], dtype=object)
        self._rows = (rates, has_rate, order, group_id, day, version_id, tfrom, tto)

    @property
    def rows(self) -> pd.DataFrame:
        """The tier rows in row-number order: the normalised rate rows (with a rate; the first of equal
        ``(version, tier_from, tier_to)``) and their ``group_id``, ``day``, ``version_id``, ``_from``, ``_to``."""
        rates, has_rate, order, group_id, day, version_id, tfrom, tto = self._rows
        r = normalise_rates(rates)[has_rate].reset_index(drop=True)
        return r.iloc[order].reset_index(drop=True).assign(group_id=group_id[order], day=day[order],
                                                           version_id=version_id[order], _from=tfrom[order],
                                                           _to=tto[order])

    # ------------------------------------------------------------------ lookups
    def group_ids(self, market, category, currency) -> np.ndarray:
        """Group of each probe, -1 when the rate card has no rate for its (market, category, currency):
        each column coded against the group columns' few distinct values, then one integer search."""
        key = np.zeros(len(market), dtype=np.int64)
        known = np.ones(len(market), dtype=bool)
        for values, index in zip((market, category, currency), self._key_index):
            codes = _codes_among(np.asarray(values, dtype=object), index)
            known &= codes >= 0
            key = key * (len(index) + 1) + codes
        pos = np.searchsorted(self._group_keys, key)
        found = known & (pos < len(self._group_keys))
        found[found] = self._group_keys[pos[found]] == key[found]
        return np.where(found, pos, -1).astype(np.int64)

    _group_ids = group_ids          # the former private name (tests/unit/test_rate_table_codes.py)

    def version_at(self, group: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Index of the version of ``group`` (from :meth:`group_ids`) in force at ``day`` (int64 days since
        1970-01-01) per probe: the group's latest ``effective_from`` <= the day; -1 when none (group -1, or
        no version starts on or before the day; a day below every date, such as NaT's int64 minimum,
        finds none)."""
        n = len(group)
        if n == 0 or len(self._version_keys) == 0:
            return np.full(n, -1, dtype=np.int64)
        known = group >= 0
        g = np.where(known, group, 0)
        lo = np.where(known, self._group_versions[g], 0)
        hi = np.where(known, self._group_versions[g + 1], 0)
        idx = _last_at_most(self._version_day, lo, hi, np.asarray(day, dtype=np.int64) + _DAY_OFFSET)
        return np.where(idx >= lo, idx, -1)

    def version_index(self, market, category, currency, local_date) -> np.ndarray:
        """Index of the version in force per unit (-1 when none)."""
        gid = self.group_ids(market, category, currency)
        if len(gid) == 0 or len(self._version_keys) == 0:
            return np.full(len(gid), -1, dtype=np.int64)
        return self.version_at(gid, _as_days(local_date))

    def tier_row(self, version: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Per probe, the tier row (index into ``row_rate``, ``row_tier``, ``row_version_label``) of
        ``version`` (from :meth:`version_at`, -1 for none): its last row with ``tier_from`` <= ``rank``,
        if ``rank`` <= that row's ``tier_to``; -1 when none."""
        n = len(version)
        if n == 0 or len(self._row_from) == 0:
            return np.full(n, -1, dtype=np.int64)
        rank = np.asarray(rank, dtype=np.int64)
        has = version >= 0
        if self._tier_table is not None:          # one lookup by (version, distinct tier_from <= rank)
            below = np.searchsorted(self._froms, rank, side="right")
            idx = self._tier_table.take(np.where(has, version * (len(self._froms) + 1) + below, -1))
            return np.where((idx >= 0) & (rank <= self._row_to.take(np.maximum(idx, 0))), idx, -1)
        v = np.where(has, version, 0)
        lo = np.where(has, self._version_rows[v], 0)
        hi = np.where(has, self._version_rows[v + 1], 0)
        idx = _last_at_most(self._row_from, lo, hi, rank)
        ok = (idx >= lo) & (rank <= self._row_to[np.maximum(idx, 0)])
        return np.where(ok, idx, -1)

    def lookup(self, market, category, currency, local_date, rank=None) -> RateLookup:
        """Rate, tier label and version for each unit; ``rank`` (1-based, per tier scope) picks the tier
        row; without ranks every unit is looked up at rank 1."""
        vid = self.version_index(market, category, currency, local_date)
        n = len(vid)
        row = self.tier_row(vid, np.ones(n, dtype=np.int64) if rank is None else rank)
        ok = row >= 0
        rate = np.full(n, np.nan)
        tier = np.full(n, "", dtype=object)
        version = np.full(n, "", dtype=object)
        rate[ok] = self.row_rate[row[ok]]
        tier[ok] = self.row_tier[row[ok]]
        version[ok] = self.row_version_label[row[ok]]
        return RateLookup(rate, tier, version, vid >= 0)

    def has_rate(self, market, category, currency, local_date) -> np.ndarray:
        """True where some version of ``(market, category, currency)`` is in force at the date."""
        return self.version_index(market, category, currency, local_date) >= 0


def _tier_table(row_from: np.ndarray, row_version: np.ndarray, version_rows: np.ndarray):
    """The distinct ``tier_from`` values (ascending) and, when small (at most :data:`_TIER_TABLE_MAX`
    entries), a table of the tier row per ``(version, number of distinct tier_from <= rank)``: entry
    ``version * (len(froms) + 1) + below`` is the version's last row with ``tier_from`` among the
    ``below`` smallest (-1 when none; the last entry, -1, serves probes without a version). Rows are
    sorted by (version, tier_from): one search over the combinations builds it."""
    froms = np.unique(row_from)
    width = len(froms) + 1
    n_versions = len(version_rows) - 1
    if n_versions * width > _TIER_TABLE_MAX:
        return froms, None
    row_key = row_version * width + np.searchsorted(froms, row_from)          # ascending
    probe = np.arange(n_versions * width, dtype=np.int64)
    last = np.searchsorted(row_key, probe - 1, side="right") - 1              # last row key < probe
    table = np.where(last >= np.repeat(version_rows[:-1], width), last, -1)
    return froms, np.append(table, -1).astype(np.int64)


def _last_at_most(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Per probe, the last position ``i`` in ``[lo, hi)`` with ``values[i] <= probe`` (``values`` ascending
    within each range), ``lo - 1`` when none: a vectorised bisection, as many passes as the longest range
    needs (ranges are short: a group's versions, a version's tier rows)."""
    a, b = lo.copy(), hi.copy()
    active = a < b
    while active.any():
        mid = (a + b) >> 1
        right = values[np.where(active, mid, 0)] <= probe
        a = np.where(active & right, mid + 1, a)
        b = np.where(active & ~right, mid, b)
        active = a < b
    return a - 1


def _codes_among(values: np.ndarray, index: dict[str, int]) -> np.ndarray:
    """Position of ``str(value)`` among a group column's names (``index``: name → position) per value
    (-1 when absent): the values are factorised first (a probe column holds few distinct values), and
    only the distinct ones are converted and looked up."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    if pd.isna(distinct).any():        # None and NaN share a code but not a string: one by one
        return np.array([index.get(str(v), -1) for v in values], dtype=np.int64)
    return np.array([index.get(str(v), -1) for v in distinct], dtype=np.int64)[codes]


def _tier_label(tier_from, tier_to) -> str:
    """``FROM:TO`` of a tier row, ``FROM:`` when open-ended, ``""`` for an untiered row (section 4)."""
    f = None if tier_from is None or pd.isna(tier_from) else int(tier_from)
    t = None if tier_to is None or pd.isna(tier_to) else int(tier_to)
    if f is None and t is None:
        return ""
    return f"{1 if f is None else f}:{'' if t is None else t}"


def lookup_rates(rates: pd.DataFrame | RateTable, market, category, currency, local_date, rank=None):
    """Vectorised rate lookup; returns ``(rate float64 NaN if missing, tier str array, version str array)``."""
    table = rates if isinstance(rates, RateTable) else RateTable(rates)
    found = table.lookup(market, category, currency, local_date, rank)
    return found.rate, found.tier, found.version


def has_rate(rates: pd.DataFrame | RateTable, market, category, currency, local_date) -> np.ndarray:
    """Vectorised: does the rate card have a rate for (market, category, currency) at the local date?
    Used for authentication-international (rule book section 3)."""
    table = rates if isinstance(rates, RateTable) else RateTable(rates)
    return table.has_rate(market, category, currency, local_date)


def rate_card_versions(rates: pd.DataFrame) -> list[dict]:
    """The rate card versions for ``run.json``: one entry per (source, version, effective_from) with
    its row count and the currencies, categories and number of markets it covers."""
    r = normalise_rates(rates)
    if r.empty:
        return []
    r["effective_from"] = r["effective_from"].dt.strftime("%Y-%m-%d")
    out = []
    for (source, version, eff), g in r.groupby(["source", "version", "effective_from"], sort=True):
        out.append({"source": source, "version": version, "effective_from": eff, "rows": int(len(g)),
                    "currencies": sorted(g["currency"].unique().tolist()),
                    "categories": sorted(g["category"].unique().tolist()),
                    "markets": int(g["market"].nunique()),
                    "tiered_rows": int(g["tier_from"].notna().sum() + (g["tier_from"].isna()
                                                                       & g["tier_to"].notna()).sum())})
    return out
