"""compare(): each variance status with hand-built units and invoice lines (contracts.md, variance.csv)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reconcile.compare import compare, drilldown, summarise
from reconcile.contracts import UNIT_COLUMNS, VARIANCE_COLUMNS, Period
from reconcile.quality import QualityLog

PERIOD = Period.parse("2025-07")
ACCOUNTS = pd.DataFrame({"waba_id": ["W1", "W2"], "name": ["Acme", "Beta"], "timezone": ["UTC", "UTC"],
                         "currency": ["USD", "EUR"], "business_country": ["BR", "DE"], "portfolio_id": ["", ""]})


def unit(uid, *, waba="W1", market="Brazil", category="marketing", pricing_type="regular", amount=0.0625,
         opened="2025-07-01T10:00:00Z", month="2025-07", model="PMP", user="5511987651234"):
    return {"unit_id": f"{uid}:{category}", "waba_id": waba, "phone_number_id": "P1", "user_wa_id": user,
            "country": "BR", "market": market, "pricing_model": model, "category": category,
            "pricing_type": pricing_type, "opened_at": pd.Timestamp(opened), "expires_at": pd.NaT,
            "opening_message_id": uid, "message_count": 1, "billing_month": month, "tier": "", "rate": amount,
            "amount": amount, "currency": "USD" if waba == "W1" else "EUR"}


def units_frame(rows):
    frame = pd.DataFrame(rows, columns=UNIT_COLUMNS)
    frame["opened_at"] = pd.to_datetime(frame["opened_at"], utc=True)
    frame["expires_at"] = pd.to_datetime(frame["expires_at"], utc=True)
    frame["rate"] = frame["rate"].astype("float64")
    frame["amount"] = frame["amount"].astype("float64")
    return frame.sort_values(["waba_id", "billing_month", "opened_at", "unit_id"]).reset_index(drop=True)


def line(*, waba="W1", month="2025-07", market="Brazil", category="marketing", pricing_type="regular",
         quantity=1, amount=0.0625, currency="USD", model="PMP", row=1):
    return {"invoice_id": "INV1", "waba_id": waba, "phone_number_id": "", "billing_month": month,
            "market": market, "pricing_model": model, "category": category, "pricing_type": pricing_type,
            "quantity": quantity, "amount": amount, "currency": currency, "display_phone_number": "",
            "market_reported": market, "source": "invoice.csv", "row": row}


LINE_COLUMNS = list(line())


def lines_frame(rows):
    frame = pd.DataFrame(rows, columns=LINE_COLUMNS)
    frame["quantity"] = frame["quantity"].astype("int64")
    frame["amount"] = frame["amount"].astype("float64")
    return frame


def run(units, lines, **kw):
    quality = QualityLog()
    variance = compare(units_frame(units), lines_frame(lines), ACCOUNTS, PERIOD, quality, **kw)
    return variance, quality


def only(variance):
    assert len(variance) == 1
    return variance.iloc[0]


def test_match_and_columns():
    variance, quality = run([unit("m1"), unit("m2")], [line(quantity=2, amount=0.125)])
    assert list(variance.columns) == VARIANCE_COLUMNS
    row = only(variance)
    assert (row.expected_quantity, row.invoiced_quantity, row.quantity_diff) == (2, 2, 0)
    assert row.expected_amount == pytest.approx(0.125) and row.amount_diff == 0.0
    assert (row.currency, row.status) == ("USD", "match")
    assert len(quality) == 0


def test_tolerance_edges_exactly_one_cent_matches_and_a_hair_more_is_over_billed():
    # 1.00 expected vs 1.01 invoiced: the float difference is 0.010000000000000009, rounded 0.0100 -> match
    assert only(run([unit("a", amount=1.0)], [line(amount=1.01)])[0]).status == "match"
    over = only(run([unit("a", amount=1.0)], [line(amount=1.0101)])[0])
    assert (over.status, over.amount_diff) == ("over_billed", 0.0101)
    under = only(run([unit("a", amount=1.0)], [line(amount=0.9899)])[0])
    assert (under.status, under.amount_diff) == ("under_billed", -0.0101)
    assert only(run([unit("a", amount=1.0)], [line(amount=0.99)])[0]).status == "match"


def test_amount_diff_rounded_half_up_before_comparison():
    row = only(run([unit("a", amount=1.0)], [line(amount=1.00005)])[0])
    assert row.amount_diff == 0.0001
    # with a zero tolerance the rounded 0.0001 is over-billed, an unrounded 0.00004 is not
    assert only(run([unit("a", amount=1.0)], [line(amount=1.00005)], tolerance=0.0)[0]).status == "over_billed"
    assert only(run([unit("a", amount=1.0)], [line(amount=1.00004)], tolerance=0.0)[0]).status == "match"
    neg = only(run([unit("a", amount=1.0)], [line(amount=0.99995)], tolerance=0.0)[0])
    assert (neg.amount_diff, neg.status) == (-0.0001, "under_billed")


def test_quantity_decides_when_amounts_agree():
    free = dict(pricing_type="free_customer_service", category="utility", amount=0.0)
    over = only(run([unit("a", **free)], [line(category="utility", pricing_type="free_customer_service",
                                                quantity=3, amount=0.0)])[0])
    assert (over.quantity_diff, over.status) == (2, "over_billed")
    under = only(run([unit("a", **free), unit("b", **free)],
                     [line(category="utility", pricing_type="free_customer_service", quantity=1, amount=0.0)])[0])
    assert (under.quantity_diff, under.status) == (-1, "under_billed")


def test_not_invoiced_and_not_expected():
    variance, _ = run([unit("a", market="India")], [line(market="Brazil", quantity=4, amount=0.25)])
    assert variance[["market", "status"]].values.tolist() == [["Brazil", "not_expected"], ["India", "not_invoiced"]]
    brazil, india = variance.iloc[0], variance.iloc[1]
    assert (brazil.expected_quantity, brazil.expected_amount, brazil.invoiced_amount, brazil.amount_diff) == \
        (0, 0.0, 0.25, 0.25)
    assert (india.invoiced_quantity, india.amount_diff, india.quantity_diff) == (0, -0.0625, -1)


def test_unpriced_precedence_and_partial_sum():
    units = [unit("a", amount=0.5), unit("b", amount=np.nan)]
    row = only(run(units, [line(quantity=2, amount=5.0)])[0])
    assert (row.status, row.expected_amount, row.expected_quantity) == ("unpriced", 0.5, 2)
    # not_invoiced wins over unpriced
    assert only(run(units, [line(market="India")])[0].query("market == 'Brazil'")).status == "not_invoiced"


def test_currency_mismatch_excluded_with_finding_empty_currency_is_accounts():
    variance, quality = run([unit("a")], [line(amount=0.0625, currency="", row=1),
                                          line(amount=9.0, currency="EUR", row=2)])
    assert only(variance).status == "match"
    findings = quality.frame()
    assert findings[["severity", "code", "source", "row", "column"]].values.tolist() == \
        [["error", "invoice_currency_mismatch", "invoice.csv", 2, "currency"]]
    assert "EUR" in findings.loc[0, "detail"] and "USD" in findings.loc[0, "detail"]


def test_out_of_period_and_unknown_account_lines():
    variance, quality = run([unit("a")], [line(), line(month="2025-06", row=2), line(waba="W9", row=3)])
    assert only(variance).status == "match"
    assert quality.frame()[["code", "row"]].values.tolist() == \
        [["invoice_out_of_period", 2], ["invoice_unknown_account", 3]]


def test_market_normalised_by_reader_groups_with_units():
    # the reader already mapped country code "BR" to "Brazil"; market_reported keeps the original
    lines = [line(quantity=1, amount=0.0625) | {"market_reported": "BR"}]
    assert only(run([unit("a")], lines)[0]).status == "match"


def test_relative_tolerance():
    units = [unit("a", amount=100.0)]
    assert only(run(units, [line(amount=100.5)])[0]).status == "over_billed"
    assert only(run(units, [line(amount=100.5)], relative_tolerance=0.01)[0]).status == "match"
    assert only(run(units, [line(amount=101.5)], relative_tolerance=0.01)[0]).status == "over_billed"
    # small groups keep the absolute tolerance as a floor
    assert only(run([unit("a", amount=0.1)], [line(amount=0.109)], relative_tolerance=0.01)[0]).status == "match"


def test_currency_is_the_accounts_and_lines_of_several_accounts_are_summed_per_group():
    units = [unit("a"), unit("b", waba="W2", amount=0.05)]
    lines = [line(amount=0.03, quantity=1, row=1), line(amount=0.0325, quantity=0, row=2),
             line(waba="W2", amount=0.05, currency="EUR", row=3)]
    variance, quality = run(units, lines)
    assert variance[["waba_id", "currency", "status", "invoiced_quantity"]].values.tolist() == \
        [["W1", "USD", "match", 1], ["W2", "EUR", "match", 1]]
    assert len(quality) == 0


def test_sorted_by_group_columns():
    units = [unit("a", market="India"), unit("b", market="Brazil", category="utility"), unit("c")]
    variance, _ = run(units, [])
    assert variance[["market", "category"]].values.tolist() == \
        [["Brazil", "marketing"], ["Brazil", "utility"], ["India", "marketing"]]
    assert set(variance.status) == {"not_invoiced"}


def test_drilldown_order_and_status():
    units = [unit("late", market="Brazil", opened="2025-07-20T00:00:00Z"),
             unit("early", market="Brazil", opened="2025-07-02T00:00:00Z"),
             unit("india", market="India", opened="2025-07-01T00:00:00Z"),
             unit("ok", market="Mexico", opened="2025-07-01T00:00:00Z")]
    lines = [line(market="Brazil", quantity=2, amount=9.0), line(market="Mexico", amount=0.0625)]
    variance, _ = run(units, lines)
    assert variance.status.tolist() == ["over_billed", "not_invoiced", "match"]
    evidence = drilldown(units_frame(units), variance)
    assert evidence.opening_message_id.tolist() == ["early", "late", "india"]
    assert evidence.status.tolist() == ["over_billed", "over_billed", "not_invoiced"]
    assert list(evidence.columns) == UNIT_COLUMNS + ["status"]
    assert drilldown(units_frame(units), variance, limit=2).opening_message_id.tolist() == ["early", "late"]
    assert drilldown(units_frame(units), variance, statuses=("match",)).opening_message_id.tolist() == ["ok"]


def test_summarise_per_account_and_month():
    units = [unit("a"), unit("b", market="India"), unit("c", waba="W2", amount=0.05)]
    lines = [line(amount=1.0625), line(waba="W2", amount=0.05, currency="EUR")]
    variance, _ = run(units, lines)
    summary = summarise(variance)
    assert summary[["waba_id", "billing_month", "currency", "groups", "over_billed", "not_invoiced", "match"]] \
        .values.tolist() == [["W1", "2025-07", "USD", 2, 1, 1, 0], ["W2", "2025-07", "EUR", 1, 0, 0, 1]]
    assert summary.loc[0, "amount_diff"] == 0.9375
    assert summary.loc[0, "expected_amount"] == 0.125


def test_empty_inputs():
    variance, _ = run([], [])
    assert list(variance.columns) == VARIANCE_COLUMNS and variance.empty
    assert drilldown(units_frame([]), variance).empty
