"""The rate searches finalize_units uses (``RateTable.version_at`` / ``tier_row``, bisections within a
group's versions and a version's tier rows) agree with a direct reading of the rule (section 0 "Rates"):
the latest ``effective_from`` <= the date, then the row whose ``[tier_from, tier_to]`` holds the rank."""
from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from reconcile.rules.rates import RateTable, normalise_rates


def _card(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for market in ("Brazil", "India", "Mexico"):
        for category in ("marketing", "utility"):
            starts = sorted(set(rng.integers(0, 60, rng.integers(1, 6)).tolist()))
            for s in starts:
                eff = date(2025, 6, 1) + timedelta(days=int(s))
                if rng.random() < 0.4:
                    rows.append((eff, market, category, None, None, float(rng.random())))
                    continue
                bounds = sorted(set(rng.integers(2, 40, rng.integers(1, 7)).tolist()))
                lo = int(rng.integers(1, 3))
                for b in bounds:
                    if rng.random() < 0.2:
                        lo = b + 1           # a gap: ranks between two rows have no rate
                        continue
                    rows.append((eff, market, category, lo, b, float(rng.random())))
                    lo = b + 1
                if rng.random() < 0.5:
                    rows.append((eff, market, category, lo, None, float(rng.random())))
    frame = pd.DataFrame(rows, columns=["effective_from", "market", "category", "tier_from", "tier_to", "rate"])
    frame["currency"] = "USD"
    frame["tier_from"] = frame["tier_from"].astype("Int64")
    frame["tier_to"] = frame["tier_to"].astype("Int64")
    return frame


def _direct(rows: list[tuple], market, category, day, rank) -> float:
    """``rows``: ``(market, category, effective_from, tier_from, tier_to, rate)`` of the normalised card."""
    mine = [r for r in rows if r[0] == market and r[1] == category and r[2] <= day]
    if not mine:
        return np.nan
    latest = max(r[2] for r in mine)
    tiers = sorted({(r[3], r[4]): r[5] for r in reversed(mine) if r[2] == latest}.items())  # first of equal rows
    held = [(bounds, rate) for bounds, rate in tiers if bounds[0] <= rank]
    if not held or rank > held[-1][0][1]:
        return np.nan
    return held[-1][1]


@pytest.mark.parametrize("seed", range(4))
def test_lookup_matches_the_rule_read_directly(seed):
    rates = _card(seed)
    table = RateTable(rates)
    rng = np.random.default_rng(100 + seed)
    n = 300
    market = rng.choice(np.array(["Brazil", "India", "Mexico", "Chile"], dtype=object), n)
    category = rng.choice(np.array(["marketing", "utility"], dtype=object), n)
    days = [date(2025, 5, 25) + timedelta(days=int(d)) for d in rng.integers(0, 80, n)]
    rank = rng.integers(1, 50, n)
    found = table.lookup(market, category, ["USD"] * n, pd.Series(pd.to_datetime(days)), rank)
    r = normalise_rates(rates)
    rows = list(zip(r["market"], r["category"], r["effective_from"].dt.date, r["tier_from"].fillna(0).astype(int),
                    r["tier_to"].astype("float64").fillna(np.inf), r["rate"]))
    expected = [_direct(rows, m, c, d, k) for m, c, d, k in zip(market, category, days, rank)]
    np.testing.assert_array_equal(found.rate, np.array(expected))


def test_version_at_and_tier_row_edges():
    rates = _card(9)
    table = RateTable(rates)
    group = table.group_ids(np.array(["Brazil", "Chile"], dtype=object), np.array(["marketing"] * 2, dtype=object),
                            np.array(["USD"] * 2, dtype=object))
    assert group[0] >= 0 and group[1] == -1
    nat = np.iinfo(np.int64).min
    far = (np.datetime64("2099-01-01") - np.datetime64("1970-01-01")).astype(np.int64)
    version = table.version_at(np.array([group[0], group[0], group[1]]), np.array([nat, far, far]))
    assert version[0] == -1 and version[1] >= 0 and version[2] == -1
    assert table.tier_row(np.array([-1, version[1]]), np.array([1, 10**9])).tolist()[0] == -1
    empty = RateTable(rates.iloc[:0])
    assert empty.version_at(np.array([-1]), np.array([far])).tolist() == [-1]
    assert empty.tier_row(np.array([-1]), np.array([1])).tolist() == [-1]
