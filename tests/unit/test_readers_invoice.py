"""Invoice reader and the analytics adapters: exact lines and exact data-quality records."""
from __future__ import annotations

import os

import pandas as pd
import pytest

from reconcile.io import tables
from reconcile.quality import QualityLog
from reconcile.rules.markets import load_market_map

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "inputs")
WABA = "102290129340398"


@pytest.fixture
def accounts():
    return pd.DataFrame({"waba_id": [WABA], "timezone": ["America/Sao_Paulo"], "currency": ["BRL"]})


def _records(q):
    return [(r.severity, r.code, os.path.basename(r.source), None if pd.isna(r.row) else int(r.row), r.column)
            for r in q.frame().itertuples()]


def test_invoice_csv_lines_and_findings(accounts):
    q = QualityLog()
    lines, infos = tables.read_invoice([os.path.join(DATA, "invoice", "invoice.csv")], q, accounts=accounts,
                                       market_map=load_market_map())
    assert _records(q) == [
        ("error", "bad_amount", "invoice.csv", 4, "amount"),
        ("error", "bad_billing_month", "invoice.csv", 6, "billing_month"),
        ("error", "bad_quantity", "invoice.csv", 3, "quantity"),
        ("error", "invoice_unknown_account", "invoice.csv", 8, "waba_id"),
        ("error", "negative_amount", "invoice.csv", 7, "amount"),
        ("error", "unknown_currency", "invoice.csv", 5, "currency"),
    ]
    assert lines["row"].tolist() == [1, 2, 9]
    assert lines["market"].tolist() == ["Brazil", "Rest of Latin America", "North America"]
    assert lines["market_reported"].tolist() == ["BR", "Rest of latin america", "US"]
    assert lines["category"].tolist() == ["marketing", "authentication_international", "free_entry_point"]
    assert lines["pricing_type"].tolist() == ["regular", "regular", "free_entry_point"]
    assert lines["pricing_model"].tolist() == ["PMP", "PMP", "PMP"]
    assert lines["quantity"].tolist() == [1520, 3, 4] and str(lines["quantity"].dtype) == "int64"
    assert lines["amount"].tolist() == [95.0, 0.5, 0.0] and str(lines["amount"].dtype) == "float64"
    assert lines["currency"].tolist() == ["BRL", "", "USD"]     # empty stays empty; mismatches kept
    assert lines["billing_month"].tolist() == ["2025-07", "2025-07", "2025-06"]   # out of period kept
    assert infos[0].kind == "invoice" and infos[0].rows == 9


def test_conversation_analytics_mapping(accounts):
    q = QualityLog()
    lines, _ = tables.read_invoice([os.path.join(DATA, "meta", "conversation_analytics.json")], q,
                                   accounts=accounts, market_map=load_market_map())
    assert len(q) == 0
    got = lines[["invoice_id", "billing_month", "market", "market_reported", "pricing_model", "category",
                 "pricing_type", "quantity", "amount", "currency", "display_phone_number"]]
    assert got.values.tolist() == [
        [f"analytics:{WABA}:2023-06", "2023-06", "Brazil", "BR", "CBP", "marketing", "regular", 1840, 110.4, "BRL",
         "551130030000"],
        [f"analytics:{WABA}:2023-06", "2023-06", "Brazil", "BR", "CBP", "service", "regular", 312, 0.0, "BRL",
         "551130030000"],
        [f"analytics:{WABA}:2023-06", "2023-06", "Brazil", "BR", "CBP", "free_entry_point", "free_entry_point", 9,
         0.0, "BRL", "551130030000"],
        [f"analytics:{WABA}:2023-06", "2023-06", "India", "IN", "CBP", "authentication", "regular", 77, 0.2387,
         "BRL", "551130030000"],
    ]


def test_pricing_analytics_mapping(accounts):
    lines, _ = tables.read_invoice([os.path.join(DATA, "meta", "pricing_analytics.json")], QualityLog(),
                                   accounts=accounts, market_map=load_market_map())
    got = lines[["billing_month", "market", "pricing_model", "category", "pricing_type", "quantity", "amount",
                 "currency"]]
    assert got.values.tolist() == [
        ["2025-07", "Brazil", "PMP", "marketing", "regular", 1520, 95.0, "BRL"],
        ["2025-07", "Brazil", "PMP", "utility", "free_customer_service", 430, 0.0, "BRL"],
        ["2025-07", "Brazil", "PMP", "utility", "regular", 2210, 15.028, "BRL"],
        ["2025-07", "India", "PMP", "authentication_international", "regular", 61, 1.708, "BRL"],
        ["2025-07", "Brazil", "PMP", "free_entry_point", "free_entry_point", 12, 0.0, "BRL"],
    ]
    assert set(lines["invoice_id"]) == {f"analytics:{WABA}:2025-07"}


def test_analytics_cbp1_unknown_category_from_direction_sums_groups_and_month_in_timezone(tmp_path):
    # 2022-03-31 22:00 .. 2022-04-01 02:00 UTC: midpoint 2022-04-01 00:00 UTC = 2022-03-31 21:00 in Sao Paulo
    doc = ('{"id": "W", "conversation_analytics": {"data": [{"data_points": ['
           '{"start": 1648764000, "end": 1648778400, "conversation": 2, "phone_number": "1", "country": "JM",'
           ' "conversation_type": "REGULAR", "conversation_direction": "USER_INITIATED", "cost": 0.5},'
           '{"start": 1648764000, "end": 1648778400, "conversation": 3, "phone_number": "1", "country": "JM",'
           ' "conversation_type": "UNKNOWN", "conversation_direction": "USER_INITIATED",'
           ' "conversation_category": "UNKNOWN", "cost": 0.25},'
           '{"start": 1648764000, "end": 1648778400, "conversation": 1, "phone_number": "1", "country": "JM",'
           ' "conversation_type": "FREE_ENTRY", "conversation_direction": "USER_INITIATED", "cost": 0}]}]}}')
    (tmp_path / "a.json").write_text(doc)
    acc = pd.DataFrame({"waba_id": ["W"], "timezone": ["America/Sao_Paulo"], "currency": ["USD"]})
    lines, _ = tables.read_invoice([str(tmp_path / "a.json")], QualityLog(), accounts=acc,
                                   market_map=load_market_map())
    assert lines[["billing_month", "market", "category", "pricing_type", "quantity", "amount"]].values.tolist() == [
        ["2022-03", "Rest of Latin America", "user_initiated", "regular", 5, 0.75],
        ["2022-03", "Rest of Latin America", "free_entry_point", "free_entry_point", 1, 0.0],
    ]


def test_analytics_of_account_not_in_run_is_left_out():
    q = QualityLog()
    acc = pd.DataFrame({"waba_id": ["other"], "timezone": ["UTC"], "currency": ["USD"]})
    lines, _ = tables.read_invoice([os.path.join(DATA, "meta", "pricing_analytics.json")], q, accounts=acc,
                                   market_map=load_market_map())
    assert lines.empty
    assert _records(q) == [("error", "invoice_unknown_account", "pricing_analytics.json", None, "id")]
