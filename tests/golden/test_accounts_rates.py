"""Golden: rate lookup, missing rates and authentication-international (rule book sections 0, 3, 4)."""
from __future__ import annotations

import math

from reconcile.contracts import Period
from reconcile.engine.accounts import finalize_units
from reconcile.quality import QualityLog
from test_accounts_builders import accounts, rate_card, raw_unit, raw_units

KOLKATA = "Asia/Kolkata"


def test_missing_rate_leaves_nan_and_reports_one_finding_per_account_market_category_month():
    rates = rate_card(("2025-07-01", "Brazil", "marketing", 0.06))
    rows = [raw_unit("ok", "2025-07-01T10:00:00Z"),
            # Germany has no marketing rate: both July units NaN, one finding naming the first (g1) and "2 unit(s)"
            raw_unit("g2", "2025-07-09T10:00:00Z", market="Germany", country="DE"),
            raw_unit("g1", "2025-07-02T10:00:00Z", market="Germany", country="DE"),
            # August is another month: a second finding
            raw_unit("g3", "2025-08-02T10:00:00Z", market="Germany", country="DE"),
            # a free unit in the same market looks nothing up: rate 0, no finding
            raw_unit("fep", "2025-07-03T10:00:00Z", market="Germany", country="DE", category="free_entry_point",
                     pricing_type="free_entry_point")]
    q = QualityLog()
    units, counts = finalize_units(raw_units(rows), accounts({}), rates, Period.parse("2025-07..2025-08"), q)
    by_id = units.set_index("opening_message_id")
    for mid in ("g1", "g2", "g3"):
        assert math.isnan(by_id.loc[mid, "rate"]) and math.isnan(by_id.loc[mid, "amount"])
        assert by_id.loc[mid, "tier"] == ""
    assert by_id.loc["fep", ["rate", "amount"]].tolist() == [0.0, 0.0]
    assert by_id.loc["ok", "amount"] == 0.06
    assert counts["units_unpriced"] == 3
    dq = q.frame()
    assert dq[["severity", "code", "source", "column", "message_id"]].values.tolist() == [
        ["error", "missing_rate", "rate_card", "rate", "g1"], ["error", "missing_rate", "rate_card", "rate", "g3"]]
    assert dq["detail"].tolist() == [
        "2 unit(s) of account W1 in 2025-07 without a rate for market=Germany category=marketing currency=USD "
        "(first unit: no rate in force on 2025-07-02)",
        "1 unit(s) of account W1 in 2025-08 without a rate for market=Germany category=marketing currency=USD "
        "(first unit: no rate in force on 2025-08-02)"]


def test_rank_beyond_the_last_tier_is_a_missing_rate_not_zero():
    # tiers 1:1 only: the second utility message of the month has no tier row
    rates = rate_card(("2025-07-01", "Brazil", "utility", 0.01, 1, 1))
    rows = [raw_unit("u1", "2025-07-01T10:00:00Z", category="utility"),
            raw_unit("u2", "2025-07-01T11:00:00Z", category="utility")]
    q = QualityLog()
    units, _ = finalize_units(raw_units(rows), accounts({}), rates, Period.parse("2025-07"), q)
    assert units["rate"].tolist()[0] == 0.01 and math.isnan(units["rate"].tolist()[1])
    assert q.frame()["message_id"].tolist() == ["u2"]
    assert q.frame()["detail"].str.endswith("(first unit: no tier row covers rank 2)").all()


def test_rate_version_switches_at_local_midnight():
    rates = rate_card(("2025-07-01", "Brazil", "marketing", 0.06), ("2025-08-01", "Brazil", "marketing", 0.07))
    rows = [
        # 2025-07-31T18:29:59Z = 23:59:59 IST on July 31 → July's version 0.06
        raw_unit("before", "2025-07-31T18:29:59Z", timezone=KOLKATA),
        # 2025-07-31T18:30:00Z = 00:00 IST on August 1 → 0.07, billing month 2025-08
        raw_unit("after", "2025-07-31T18:30:00Z", timezone=KOLKATA),
    ]
    units, _ = finalize_units(raw_units(rows), accounts({"timezone": KOLKATA}), rates,
                              Period.parse("2025-07..2025-08"), QualityLog())
    got = units.set_index("opening_message_id")[["billing_month", "rate", "rate_version"]]
    assert got.loc["before"].tolist() == ["2025-07", 0.06, "2025-07-01"]
    assert got.loc["after"].tolist() == ["2025-08", 0.07, "2025-08-01"]


AUTH_RATES = rate_card(("2024-06-01", "India", "authentication_international", 0.03),
                       ("2023-06-01", "India", "authentication", 0.01),
                       ("2023-06-01", "Brazil", "authentication", 0.02),
                       ("2023-06-01", "India", "authentication", 0.011, None, None, "EUR"))


def _auth(mid, at, **kw):
    return raw_unit(mid, at, category="authentication", market=kw.pop("market", "India"),
                    country=kw.pop("country", "IN"), **kw)


def test_authentication_international_when_rate_exists_and_countries_differ():
    acc = accounts({"waba_id": "W1", "business_country": "BR"}, {"waba_id": "W2", "business_country": "IN"},
                   {"waba_id": "W3", "business_country": "BR", "currency": "EUR"},
                   {"waba_id": "W4", "business_country": "BR", "timezone": KOLKATA})
    rows = [
        _auth("yes", "2024-07-10T10:00:00Z"),                             # BR business, IN user, rate → intl
        _auth("same-country", "2024-07-10T11:00:00Z", waba_id="W2"),        # IN business, IN user → domestic
        _auth("no-market-rate", "2024-07-10T12:00:00Z", market="Brazil", country="AR"),  # no intl rate for Brazil
        _auth("before-date", "2024-05-31T12:00:00Z"),                      # intl rate starts 2024-06-01
        _auth("other-currency", "2024-07-10T13:00:00Z", waba_id="W3"),      # intl rate only in USD
        # 2024-05-31T18:30Z = 2024-06-01 00:00 IST: the rate card date is read in the account timezone
        _auth("local-midnight", "2024-05-31T18:30:00Z", waba_id="W4", timezone=KOLKATA),
        _auth("unknown-country", "2024-07-10T14:00:00Z", country=""),      # nothing proves a border crossing
    ]
    units, _ = finalize_units(raw_units(rows), acc, AUTH_RATES, Period.parse("2024-05..2024-07"), QualityLog())
    got = units.set_index("opening_message_id")[["unit_id", "category", "rate"]]
    assert got.loc["yes"].tolist() == ["yes:authentication_international", "authentication_international", 0.03]
    assert got.loc["same-country"].tolist() == ["same-country:authentication", "authentication", 0.01]
    assert got.loc["no-market-rate"].tolist() == ["no-market-rate:authentication", "authentication", 0.02]
    assert got.loc["before-date"].tolist() == ["before-date:authentication", "authentication", 0.01]
    assert got.loc["other-currency"].tolist() == ["other-currency:authentication", "authentication", 0.011]
    assert got.loc["local-midnight"].tolist() == ["local-midnight:authentication_international",
                                                  "authentication_international", 0.03]
    assert got.loc["unknown-country"].tolist() == ["unknown-country:authentication", "authentication", 0.01]
    assert units.set_index("opening_message_id").loc["other-currency", "currency"] == "EUR"


def test_authentication_international_has_its_own_tier_ranking_in_pmp():
    rates = rate_card(("2025-07-01", "India", "authentication", 0.01, 1, 1),
                      ("2025-07-01", "India", "authentication", 0.005, 2, None),
                      ("2025-07-01", "India", "authentication_international", 0.03, 1, 1),
                      ("2025-07-01", "India", "authentication_international", 0.02, 2, None))
    acc = accounts({"waba_id": "W1", "business_country": "BR", "portfolio_id": "PF"},
                   {"waba_id": "W2", "business_country": "IN", "portfolio_id": "PF"})
    rows = [_auth("i1", "2025-07-01T10:00:00Z"), _auth("d1", "2025-07-01T11:00:00Z", waba_id="W2"),
            _auth("i2", "2025-07-01T12:00:00Z"), _auth("d2", "2025-07-01T13:00:00Z", waba_id="W2")]
    units, _ = finalize_units(raw_units(rows), acc, rates, Period.parse("2025-07"), QualityLog())
    got = units.set_index("opening_message_id")[["category", "tier", "rate"]]
    # W1 (BR business) → international ranks i1=1, i2=2; W2 (IN business) → domestic ranks d1=1, d2=2
    assert got.loc["i1"].tolist() == ["authentication_international", "1:1", 0.03]
    assert got.loc["i2"].tolist() == ["authentication_international", "2:", 0.02]
    assert got.loc["d1"].tolist() == ["authentication", "1:1", 0.01]
    assert got.loc["d2"].tolist() == ["authentication", "2:", 0.005]


def test_version_mixing_untiered_and_tier_rows_uses_only_the_tier_rows():
    # One version (2025-07-01) for Brazil utility holds an untiered row (0.05) AND tier rows 1:1 (0.01)
    # and 3: (0.02). decisions.md 9: the tier rows win; rank 1 → 0.01 (tier "1:1"), rank 2 falls in the
    # gap between the tiers → missing_rate (NaN, never the untiered 0.05 and never 0), rank 3 → 0.02 ("3:").
    rates = rate_card(("2025-07-01", "Brazil", "utility", 0.05),
                      ("2025-07-01", "Brazil", "utility", 0.01, 1, 1),
                      ("2025-07-01", "Brazil", "utility", 0.02, 3, None))
    rows = [raw_unit("u1", "2025-07-01T10:00:00Z", category="utility"),
            raw_unit("u2", "2025-07-01T11:00:00Z", category="utility"),
            raw_unit("u3", "2025-07-01T12:00:00Z", category="utility")]
    q = QualityLog()
    units, _ = finalize_units(raw_units(rows), accounts({}), rates, Period.parse("2025-07"), q)
    got = units.set_index("opening_message_id")
    assert got.loc["u1", ["rate", "tier"]].tolist() == [0.01, "1:1"]
    assert math.isnan(got.loc["u2", "rate"]) and got.loc["u2", "tier"] == ""
    assert got.loc["u3", ["rate", "tier"]].tolist() == [0.02, "3:"]
    assert q.frame()[["code", "message_id"]].values.tolist() == [["missing_rate", "u2"]]
