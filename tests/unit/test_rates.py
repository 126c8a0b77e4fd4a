"""Unit tests of the rate lookup (rule book section 0 "Rates", section 4 tiers)."""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from reconcile.rules.rates import RateTable, has_rate, lookup_rates, normalise_rates, rate_card_versions


def _rates(rows):
    frame = pd.DataFrame(rows, columns=["effective_from", "market", "currency", "category", "tier_from", "tier_to",
                                        "rate"])
    frame["tier_from"] = frame["tier_from"].astype("Int64")
    frame["tier_to"] = frame["tier_to"].astype("Int64")
    return frame


RATES = _rates([
    (date(2025, 7, 1), "Brazil", "USD", "utility", 1, 5, 0.010),
    (date(2025, 7, 1), "Brazil", "USD", "utility", 6, 10, 0.008),
    (date(2025, 7, 1), "Brazil", "USD", "utility", 11, None, 0.005),
    (date(2025, 10, 1), "Brazil", "USD", "utility", None, None, 0.009),   # new version: untiered
    (date(2025, 7, 1), "Brazil", "EUR", "utility", None, None, 0.0092),
    (date(2025, 7, 1), "India", "USD", "marketing", None, None, 0.011),
])


def test_tiers_by_rank_and_latest_version_at_or_before_the_date():
    days = pd.Series(pd.to_datetime(["2025-07-01", "2025-07-15", "2025-09-30", "2025-10-01", "2025-06-30"]))
    rate, tier, version = lookup_rates(RATES, ["Brazil"] * 5, ["utility"] * 5, ["USD"] * 5, days, [1, 6, 11, 11, 1])
    # rank 1 → 1:5; rank 6 → 6:10; rank 11 → open-ended 11:; Oct 1 → the untiered version; June 30 → nothing
    assert rate[:4].tolist() == [0.010, 0.008, 0.005, 0.009] and np.isnan(rate[4])
    assert tier.tolist() == ["1:5", "6:10", "11:", "", ""]
    assert version.tolist() == ["2025-07-01", "2025-07-01", "2025-07-01", "2025-10-01", ""]


def test_currency_market_and_category_must_all_match():
    day = pd.Series(pd.to_datetime(["2025-08-01"] * 4))
    rate, tier, _ = lookup_rates(RATES, ["Brazil", "Brazil", "India", "Mexico"], ["utility", "utility", "utility",
                                                                                   "utility"],
                                 ["EUR", "GBP", "USD", "USD"], day)
    assert rate[0] == 0.0092 and tier[0] == ""
    assert np.isnan(rate[1:]).all()


def test_dates_as_date_objects_strings_and_tz_aware_values_are_the_same_date():
    as_dates = pd.Series([date(2025, 7, 1), date(2025, 6, 30)], dtype=object)
    as_text = pd.Series(["2025-07-01", "2025-06-30"])
    as_aware = pd.Series(pd.to_datetime(["2025-07-01T23:00:00", "2025-06-30T00:00:00"])).dt.tz_localize(
        "America/Sao_Paulo")
    for days in (as_dates, as_text, as_aware):
        assert has_rate(RATES, ["India"] * 2, ["marketing"] * 2, ["USD"] * 2, days).tolist() == [True, False]
    # the rate card's own dates may be datetime64 of any unit instead of date objects
    alt = RATES.assign(effective_from=pd.to_datetime(RATES["effective_from"]).astype("datetime64[s]"))
    assert has_rate(alt, ["India"], ["marketing"], ["USD"], pd.Series(pd.to_datetime(["2025-07-01"]))).tolist() == [True]


def test_rank_in_a_gap_or_beyond_the_last_tier_is_missing_and_has_version_says_why():
    rates = _rates([(date(2025, 7, 1), "Brazil", "USD", "authentication", 1, 2, 0.02),
                    (date(2025, 7, 1), "Brazil", "USD", "authentication", 5, 6, 0.01)])
    found = RateTable(rates).lookup(["Brazil"] * 4, ["authentication"] * 4, ["USD"] * 4,
                                    pd.Series(pd.to_datetime(["2025-07-02"] * 4)), [2, 3, 6, 7])
    assert found.rate[0] == 0.02 and found.rate[2] == 0.01
    assert np.isnan(found.rate[1]) and np.isnan(found.rate[3])
    assert found.has_version.tolist() == [True, True, True, True]
    assert found.tier.tolist() == ["1:2", "", "5:6", ""]


def test_empty_inputs():
    rate, tier, version = lookup_rates(RATES, [], [], [], pd.Series([], dtype="datetime64[ns]"), [])
    assert len(rate) == len(tier) == len(version) == 0
    empty = RATES.iloc[0:0]
    assert np.isnan(lookup_rates(empty, ["Brazil"], ["utility"], ["USD"], pd.Series(pd.to_datetime(["2025-07-01"])))[0]
                    ).all()


def test_normalise_and_versions_for_run_json():
    r = normalise_rates(RATES.assign(source="rates.csv"))
    assert str(r["effective_from"].dtype) == "datetime64[ns]" and str(r["tier_from"].dtype) == "Int64"
    assert r["version"].tolist()[:1] == ["2025-07-01"]
    versions = rate_card_versions(RATES.assign(source="rates.csv"))
    assert [(v["version"], v["rows"], v["currencies"], v["tiered_rows"]) for v in versions] == [
        ("2025-07-01", 5, ["EUR", "USD"], 3), ("2025-10-01", 1, ["USD"], 0)]
    assert versions[0]["categories"] == ["marketing", "utility"] and versions[0]["markets"] == 2


def test_normalise_untyped_columns_strips_group_strings_only_and_fills_versions():
    rates = pd.DataFrame({"effective_from": [date(2025, 7, 1), "2025-08-01"], "market": [" Brazil ", None],
                          "currency": ["USD", 5], "category": ["utility", "utility"], "tier_from": [1, "a"],
                          "tier_to": [5.0, None], "rate": ["0.1", None], "version": [" v ", ""],
                          "source": [None, "s"]})
    r = normalise_rates(rates)
    assert r["effective_from"].tolist() == [pd.Timestamp("2025-07-01"), pd.Timestamp("2025-08-01")]
    assert r["market"].tolist() == ["Brazil", ""] and r["currency"].tolist() == ["USD", "5"]
    assert r["tier_from"].tolist() == [1, pd.NA] and r["tier_to"].tolist() == [5, pd.NA]
    assert r["rate"].tolist()[0] == 0.1 and np.isnan(r["rate"].tolist()[1])
    assert r["version"].tolist() == [" v ", "2025-08-01"] and r["source"].tolist() == ["", "s"]
    assert [str(r[c].dtype) for c in ("market", "version", "source", "tier_from", "rate")] == [
        "str", "str", "str", "Int64", "float64"]
    # the table keeps the rows with a rate; its version label is the row's own
    table = RateTable(rates)
    assert table.row_version_label.tolist() == [" v "] and table.row_tier.tolist() == ["1:5"]


def test_tier_rows_by_table_and_by_bisection_agree(monkeypatch):
    import reconcile.rules.rates as rates_module
    rates = _rates([(date(2025, 7, 1), "Brazil", "USD", "authentication", 1, 2, 0.02),
                    (date(2025, 7, 1), "Brazil", "USD", "authentication", 5, 6, 0.01),
                    (date(2025, 7, 1), "Brazil", "USD", "authentication", 5, 9, 0.03),     # same from, wider
                    (date(2025, 8, 1), "Brazil", "USD", "authentication", None, None, 0.04),
                    (date(2025, 7, 1), "India", "USD", "authentication", 3, None, 0.05)])
    version = np.array([0, 0, 0, 0, 0, 1, 2, 2, -1, 0])
    rank = np.array([1, 2, 3, 5, 9, 100, 2, 3, 1, 10])
    # version 0 (Brazil 07-01): rows 0 (1:2), 1 (5:6), 2 (5:9); version 1 (Brazil 08-01): row 3; version 2: row 4
    expected = [0, 0, -1, 2, 2, 3, -1, 4, -1, -1]
    table = RateTable(rates)
    assert table._tier_table is not None and table.tier_row(version, rank).tolist() == expected
    monkeypatch.setattr(rates_module, "_TIER_TABLE_MAX", 0)
    bisection = RateTable(rates)
    assert bisection._tier_table is None and bisection.tier_row(version, rank).tolist() == expected
    assert table.row_tier.tolist() == ["1:2", "5:6", "5:9", "", "3:"]
