"""Golden: billing month in the account timezone, the period filter, output shape and order, lookback
(rule book section 0 "Billing month")."""
from __future__ import annotations

import pandas as pd

from reconcile.contracts import UNIT_COLUMNS, Period
from reconcile.engine.accounts import EXTRA_UNIT_COLUMNS, check_lookback, finalize_units
from reconcile.quality import QualityLog
from test_accounts_builders import accounts, rate_card, raw_unit, raw_units

SP, KOLKATA = "America/Sao_Paulo", "Asia/Kolkata"
RATES = rate_card(("2025-06-01", "Brazil", "marketing", 0.06), ("2025-06-01", "India", "marketing", 0.01))


def test_month_end_in_sao_paulo_and_kolkata_and_period_filter():
    acc = accounts({"waba_id": "SP", "timezone": SP}, {"waba_id": "IN", "timezone": KOLKATA, "business_country": "IN"})
    rows = [
        # Sao Paulo is UTC-3: 2025-08-01T02:59:59Z is July 31 23:59:59 local → 2025-07, kept
        raw_unit("sp-july", "2025-08-01T02:59:59Z", waba_id="SP", timezone=SP),
        # 2025-08-01T03:00:00Z is August 1 00:00 local → 2025-08, after the period → dropped
        raw_unit("sp-aug", "2025-08-01T03:00:00Z", waba_id="SP", timezone=SP),
        # Kolkata is UTC+5:30: 2025-06-30T18:29:59Z is June 30 23:59:59 local → 2025-06, lookback → dropped
        raw_unit("in-june", "2025-06-30T18:29:59Z", waba_id="IN", timezone=KOLKATA, market="India", country="IN"),
        # 2025-06-30T18:30:00Z is July 1 00:00 local → 2025-07, kept
        raw_unit("in-july", "2025-06-30T18:30:00Z", waba_id="IN", timezone=KOLKATA, market="India", country="IN"),
        # a plain lookback unit (June in UTC terms too) → dropped
        raw_unit("sp-old", "2025-06-10T12:00:00Z", waba_id="SP", timezone=SP),
    ]
    units, counts = finalize_units(raw_units(rows), acc, RATES, Period.parse("2025-07"), QualityLog())
    assert units["opening_message_id"].tolist() == ["in-july", "sp-july"]  # ordered by waba_id, month, instant
    assert units["billing_month"].tolist() == ["2025-07", "2025-07"]
    assert units["local_date"].tolist() == [pd.Timestamp("2025-07-01"), pd.Timestamp("2025-07-31")]
    assert counts == {"units_before_period": 2, "units_after_period": 1, "units": 2, "units_free": 0,
                      "units_unpriced": 0, "units_regular": 2, "units_free_tier": 0,
                      "units_free_customer_service": 0, "units_free_entry_point": 0}


def test_output_columns_dtypes_and_order_are_the_contract():
    rows = [raw_unit("b", "2025-07-02T00:00:00Z", waba_id="W2", phone_number_id="P9"),
            raw_unit("a", "2025-07-02T00:00:00Z", waba_id="W2", phone_number_id="P9", category="utility"),
            raw_unit("c", "2025-07-01T00:00:00Z", waba_id="W2", phone_number_id="P9"),
            raw_unit("z", "2025-07-05T00:00:00Z", expires_at="2025-07-06T00:00:00Z", pricing_model="CBP",
                     message_count=3)]
    rates = rate_card(("2025-06-01", "Brazil", "marketing", 0.06), ("2025-06-01", "Brazil", "utility", 0.008))
    units, _ = finalize_units(raw_units(rows), accounts({"waba_id": "W1"}, {"waba_id": "W2"}), rates,
                              Period.parse("2025-07"), QualityLog())
    assert units.columns.tolist() == UNIT_COLUMNS + EXTRA_UNIT_COLUMNS
    # waba_id, billing_month, opened_at, then unit_id ("a:utility" < "b:marketing" at the same instant)
    assert units["unit_id"].tolist() == ["z:marketing", "c:marketing", "a:utility", "b:marketing"]
    assert str(units["opened_at"].dtype) == "datetime64[ns, UTC]"
    assert str(units["expires_at"].dtype) == "datetime64[ns, UTC]"
    assert units["expires_at"].isna().tolist() == [False, True, True, True]
    assert units["message_count"].tolist() == [3, 1, 1, 1] and units["message_count"].dtype == "int64"
    assert units["rate"].dtype == "float64" and units["amount"].dtype == "float64"
    assert units["currency"].tolist() == ["USD"] * 4
    assert units["era"].tolist() == ["PMP"] * 4


def test_empty_raw_units_give_an_empty_contract_frame():
    empty = raw_units([raw_unit("x", "2025-07-01T00:00:00Z")]).iloc[0:0]
    units, counts = finalize_units(empty, accounts({}), RATES, Period.parse("2025-07"), QualityLog())
    assert units.columns.tolist() == UNIT_COLUMNS + EXTRA_UNIT_COLUMNS and len(units) == 0
    assert counts["units"] == 0


def test_short_lookback_is_a_warning_per_account_in_its_timezone():
    acc = accounts({"waba_id": "A", "timezone": SP}, {"waba_id": "B"}, {"waba_id": "C"})
    first_seen = pd.Series({
        # Period 2025-07 starts at 2025-07-01T03:00Z in Sao Paulo: 2025-06-24T03:00Z is exactly 7 days → fine
        "A": pd.Timestamp("2025-06-24T03:00:00Z"),
        # UTC account, history from 2025-06-25 → 6 days → warning
        "B": pd.Timestamp("2025-06-25T00:00:00Z"),
        # history starts inside the period → 0 days → warning
        "C": pd.Timestamp("2025-07-03T00:00:00Z"),
    })
    q = QualityLog()
    assert check_lookback(first_seen, acc, Period.parse("2025-07"), q) == ["B", "C"]
    dq = q.frame()
    assert dq["code"].tolist() == ["short_lookback"] * 2 and set(dq["severity"]) == {"warning"}
    assert dq["detail"].tolist() == [
        "account B: history starts 2025-06-25T00:00:00Z, 6.0 day(s) before the period start 2025-07-01 00:00 UTC; "
        "at least 7 days are needed for windows to be exact",
        "account C: history starts 2025-07-03T00:00:00Z, 0.0 day(s) before the period start 2025-07-01 00:00 UTC; "
        "at least 7 days are needed for windows to be exact"]
    # one second less history in Sao Paulo → warning
    q2 = QualityLog()
    assert check_lookback({"A": pd.Timestamp("2025-06-24T03:00:01Z")}, acc, Period.parse("2025-07"), q2) == ["A"]
