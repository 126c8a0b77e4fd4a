"""Rate cards → one rate table (contracts.md, "rate card").

Two layouts, recognised by the header:

* **long** (header has ``effective_from``): ``effective_from, market, currency, category,
  tier_from, tier_to, rate``, one row per rate;
* **Meta's wide CSV** (first header cell ``Market``): ``Market, Currency, Marketing, Utility,
  Authentication, Authentication-International, Service`` (a header cell may hold a line break
  inside quotes; ``#`` comment lines may stand above the header; ``n/a`` or empty = no rate).
  Its effective date comes from a ``PATH@YYYY-MM-DD`` suffix, else from a comment line
  ``# … effective YYYY-MM-DD …``, else :class:`InputError` (exit 2).

Several files or a folder are concatenated. Output columns: ``RATE_COLUMNS`` + ``source`` +
``version`` (``<file name>@<effective date>``); ``effective_from`` is ``datetime64[ns]`` (naive
midnight = the local date in the account's timezone), ``tier_from`` / ``tier_to`` nullable
``Int64``, ``rate`` float64.

Decision: a rate card is reference data; a wrong cell silently mis-prices every unit of its
market, so every problem is an :class:`InputError` naming file, row and column (unreadable or
negative rate, unknown category or currency, bad date, tier_from > tier_to, overlapping tiers
of one version/market/currency/category). Only ``n/a`` rows of a long card (explicitly "no
rate") are skipped, each reported as a warning ``rate_not_available``.
"""
from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd

from ..contracts import CURRENCIES, RATE_CATEGORIES, RATE_COLUMNS
from ..quality import InputError, QualityLog
from . import locations

RATE_CARD_SUFFIXES = (".csv", ".csv.gz")
_DATE_SUFFIX = re.compile(r"^(?P<path>.+)@(?P<date>\d{4}-\d{2}-\d{2})$")
_EFFECTIVE = re.compile(r"effective\D{0,40}?(\d{4}-\d{2}-\d{2})", re.IGNORECASE)
_NO_RATE = {"n/a", "na", "", "-", "none"}


def split_date_suffix(path: str) -> tuple[str, str | None]:
    """``PATH@YYYY-MM-DD`` → (``PATH``, ``YYYY-MM-DD``); otherwise (path, None)."""
    m = _DATE_SUFFIX.match(str(path))
    return (m.group("path"), m.group("date")) if m else (str(path), None)


def read_rate_cards(paths, quality: QualityLog):
    """Read every rate card of ``paths`` (files, folders, prefixes; ``@date`` suffixes allowed)."""
    from .tables import InputInfo, _as_list, _decompress, _sha256, _text

    frames, infos = [], []
    for given in _as_list(paths):
        base, suffix_date = split_date_suffix(given)
        for path in locations.list_files(base, RATE_CARD_SUFFIXES):
            data = locations.read_bytes(path)
            text = _text(_decompress(data, path), path)
            card = parse_rate_card(text, path, quality, effective=suffix_date)
            frames.append(card)
            infos.append(InputInfo("rate_card", path, len(card), _sha256(data)))
    if not frames:
        raise InputError("no rate card given")
    rates = pd.concat(frames, ignore_index=True)
    _check_tiers(rates)
    return rates.drop(columns="__row").reset_index(drop=True), infos


def _fail(message: str, path: str, row: int | None = None, column: str = ""):
    raise InputError(message, source=path, row=row, column=column)


def parse_rate_card(text: str, path: str, quality: QualityLog, *, effective: str | None = None) -> pd.DataFrame:
    """One rate card's text → rate rows (see the module docstring)."""
    lines = text.splitlines(keepends=True)
    comments, start = [], 0
    while start < len(lines) and (lines[start].lstrip().startswith("#") or not lines[start].strip()):
        comments.append(lines[start])
        start += 1
    body = "".join(lines[start:])
    if not body.strip():
        _fail("rate card without a header", path)
    raw = pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False, skipinitialspace=True)
    raw.columns = [re.sub(r"\s+", "", str(c)).lower().replace("-", "_") for c in raw.columns]
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if "effective_from" in raw.columns:
        out = _long(raw, path, quality)
    elif raw.columns[0] == "market":
        date = effective
        if date is None:
            for c in comments:
                m = _EFFECTIVE.search(c)
                if m:
                    date = m.group(1)
                    break
        if date is None:
            _fail("wide rate card without an effective date: add PATH@YYYY-MM-DD or a comment line "
                  "'# effective YYYY-MM-DD' above the header", path)
        out = _wide(raw, path, _date(date, path, None, "effective_from"))
    else:
        _fail("unknown rate card layout: the header must start with 'Market' (Meta's wide card) or "
              "contain 'effective_from' (long format)", path)
    out["source"] = path
    out["version"] = name + "@" + out["effective_from"].dt.strftime("%Y-%m-%d")
    return out[RATE_COLUMNS + ["source", "version", "__row"]].reset_index(drop=True)


def _date(text: str, path: str, row: int | None, column: str) -> pd.Timestamp:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            raise ValueError
        return pd.Timestamp(text.strip())
    except ValueError:
        _fail(f"{text!r} is not a date YYYY-MM-DD", path, row, column)


def _rate(values: pd.Series, path: str, rows: np.ndarray, column: str) -> np.ndarray:
    num = pd.to_numeric(values.str.strip(), errors="coerce").to_numpy(dtype="float64")
    bad = np.isnan(num) | np.isinf(num)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _fail(f"rate {values.iat[i]!r} is not a number", path, int(rows[i]), column)
    neg = num < 0
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        _fail(f"negative rate {values.iat[i]!r}", path, int(rows[i]), column)
    return num


def _currency(values: pd.Series, path: str, rows: np.ndarray) -> pd.Series:
    cur = values.str.strip().str.upper()
    bad = ~cur.isin(CURRENCIES).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _fail(f"{values.iat[i]!r} is not an ISO 4217 currency", path, int(rows[i]), "currency")
    return cur


def _wide(raw: pd.DataFrame, path: str, effective: pd.Timestamp) -> pd.DataFrame:
    if "currency" not in raw.columns:
        _fail("missing required column", path, None, "Currency")
    categories = [c for c in raw.columns if c not in ("market", "currency")]
    for c in categories:
        if c not in RATE_CATEGORIES:
            _fail(f"unknown rate category column {c!r}", path, None, c)
    rows = np.arange(1, len(raw) + 1)
    currency = _currency(raw["currency"], path, rows)
    parts = []
    for c in categories:
        cell = raw[c].str.strip()
        has = ~cell.str.lower().isin(_NO_RATE).to_numpy()
        if not has.any():
            continue
        rate = _rate(cell[has], path, rows[has], c)
        parts.append(pd.DataFrame({
            "effective_from": effective, "market": raw["market"].str.strip()[has].to_numpy(),
            "currency": currency[has].to_numpy(), "category": c,
            "tier_from": pd.array([pd.NA] * int(has.sum()), dtype="Int64"),
            "tier_to": pd.array([pd.NA] * int(has.sum()), dtype="Int64"), "rate": rate, "__row": rows[has],
        }))
    if not parts:
        return _empty()
    out = pd.concat(parts, ignore_index=True)
    out["effective_from"] = pd.to_datetime(out["effective_from"]).astype("datetime64[ns]")
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"effective_from": pd.Series(dtype="datetime64[ns]"), "market": pd.Series(dtype="str"),
                         "currency": pd.Series(dtype="str"), "category": pd.Series(dtype="str"),
                         "tier_from": pd.Series(dtype="Int64"), "tier_to": pd.Series(dtype="Int64"),
                         "rate": pd.Series(dtype="float64"), "__row": pd.Series(dtype="int64")})


def _long(raw: pd.DataFrame, path: str, quality: QualityLog) -> pd.DataFrame:
    for c in RATE_COLUMNS:
        if c not in raw.columns and c not in ("tier_from", "tier_to"):
            _fail("missing required column", path, None, c)
    raw = raw.copy()
    for c in ("tier_from", "tier_to"):
        if c not in raw.columns:
            raw[c] = ""
    rows = np.arange(1, len(raw) + 1)
    no_rate = raw["rate"].str.strip().str.lower().isin(_NO_RATE - {""}).to_numpy()
    if no_rate.any():
        quality.add_many("warning", "rate_not_available", source=path, row=rows[no_rate], column="rate",
                         detail="rate marked n/a: no rate row")
    raw, rows = raw[~no_rate].reset_index(drop=True), rows[~no_rate]
    if raw.empty:
        return _empty()
    dates = pd.to_datetime(raw["effective_from"].str.strip(), format="%Y-%m-%d", errors="coerce")
    bad = dates.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _fail(f"{raw['effective_from'].iat[i]!r} is not a date YYYY-MM-DD", path, int(rows[i]), "effective_from")
    category = raw["category"].str.strip().str.lower().str.replace(r"[\s\-]+", "_", regex=True)
    bad = ~category.isin(RATE_CATEGORIES).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _fail(f"unknown category {raw['category'].iat[i]!r}", path, int(rows[i]), "category")
    market = raw["market"].str.strip()
    if (market == "").any():
        _fail("empty market", path, int(rows[int(np.flatnonzero((market == "").to_numpy())[0])]), "market")
    tiers = {}
    for c in ("tier_from", "tier_to"):
        text = raw[c].str.strip()
        num = pd.to_numeric(text, errors="coerce")
        bad = ((text != "") & (num.isna() | (num != np.floor(num.fillna(0))) | (num < 1))).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            _fail(f"{c} {text.iat[i]!r} is not a whole number >= 1", path, int(rows[i]), c)
        tiers[c] = num.round().astype("Int64")
    both = tiers["tier_from"].notna() & tiers["tier_to"].notna()
    bad = (both & (tiers["tier_from"] > tiers["tier_to"])).fillna(False).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _fail("tier_from is greater than tier_to", path, int(rows[i]), "tier_from")
    out = pd.DataFrame({
        "effective_from": dates.astype("datetime64[ns]").to_numpy(), "market": market.to_numpy(),
        "currency": _currency(raw["currency"], path, rows).to_numpy(), "category": category.to_numpy(),
        "tier_from": tiers["tier_from"].to_numpy(), "tier_to": tiers["tier_to"].to_numpy(),
        "rate": _rate(raw["rate"], path, rows, "rate"),
    })
    out["tier_from"] = out["tier_from"].astype("Int64")
    out["tier_to"] = out["tier_to"].astype("Int64")
    out["__row"] = rows
    return out


def _check_tiers(rates: pd.DataFrame) -> None:
    """Within one (effective_from, market, currency, category) the tier ranges must not overlap
    (an untiered row covers everything, so it may not share its key with any other row)."""
    if rates.empty:
        return
    key = ["effective_from", "market", "currency", "category"]
    lo = rates["tier_from"].fillna(1).astype("int64").to_numpy()
    hi = rates["tier_to"].fillna(np.iinfo(np.int64).max).astype("int64").to_numpy()
    order = rates.assign(_lo=lo, _hi=hi).sort_values(key + ["_lo"], kind="stable")
    same = np.ones(len(order), dtype=bool)
    for c in key:
        v = order[c].to_numpy()
        same[1:] &= v[1:] == v[:-1]
    same[0] = False
    overlap = same.copy()
    overlap[1:] &= order["_lo"].to_numpy()[1:] <= order["_hi"].to_numpy()[:-1]
    if overlap.any():
        i = int(np.flatnonzero(overlap)[0])
        r = order.iloc[i]
        _fail(f"overlapping rates for {r['market']} / {r['currency']} / {r['category']} from "
              f"{r['effective_from']:%Y-%m-%d}", str(r["source"]), int(r["__row"]), "tier_from")
