"""Warehouse on embedded DuckDB: schema, idempotent slices, dispute scope, rollback, precision, docs SQL.

The test functions are shared with test_warehouse_postgres.py, which imports them and provides its own
``warehouse`` fixture (a real PostgreSQL schema)."""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reconcile.contracts import UNIT_COLUMNS, VARIANCE_COLUMNS
from reconcile.report.warehouse import Warehouse, WarehouseError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


@pytest.fixture
def warehouse(tmp_path):
    wh = Warehouse.from_url(str(tmp_path / "test.duckdb"))
    assert wh.ensure_schema() == ["001_recon_tables.sql", "003_recon_run_index.sql"]
    yield wh
    wh.close()


def units_frame(waba="W1", month="2025-07", ids=("m1", "m2"), amount=0.123456, market="Brazil",
                status_offset=0):
    n = len(ids)
    return pd.DataFrame({
        "unit_id": [f"{i}:marketing" for i in ids], "waba_id": waba, "phone_number_id": "P1",
        "user_wa_id": "5511987651234", "country": "BR", "market": market, "pricing_model": "PMP",
        "category": "marketing", "pricing_type": "regular",
        "opened_at": pd.to_datetime([f"{month}-0{k + 1}T10:00:00.123456Z" for k in range(n)], utc=True),
        "expires_at": pd.Series([pd.NaT] * n, dtype="datetime64[ns, UTC]"),
        "opening_message_id": list(ids), "message_count": np.ones(n, dtype="int64"), "billing_month": month,
        "tier": "", "rate": amount, "amount": [amount] + [np.nan] * (n - 1), "currency": "USD",
    })[UNIT_COLUMNS]


def variance_frame(waba="W1", month="2025-07", expected=0.123456, invoiced=1.5, status="over_billed",
                   market="Brazil"):
    return pd.DataFrame({
        "waba_id": [waba], "billing_month": [month], "market": [market], "pricing_model": ["PMP"],
        "category": ["marketing"], "pricing_type": ["regular"], "expected_quantity": np.array([2], dtype="int64"),
        "invoiced_quantity": np.array([3], dtype="int64"), "quantity_diff": np.array([1], dtype="int64"),
        "expected_amount": [expected], "invoiced_amount": [invoiced], "amount_diff": [round(invoiced - expected, 4)],
        "currency": ["USD"], "status": [status],
    })[VARIANCE_COLUMNS]


def record(run_id, accounts=("W1",), period="2025-07"):
    return {"run_id": run_id, "period": period, "accounts": list(accounts), "tool_version": "0.1.0",
            "started_at": "2025-08-01T00:00:00Z", "finished_at": f"2025-08-01T00:0{len(run_id) % 10}:00Z",
            "inputs": [{"path": "messages.csv", "rows": 2, "sha256": "a" * 64}], "counts": {"units": 2}}


def test_ensure_schema_is_idempotent(warehouse):
    assert warehouse.ensure_schema() == []
    names = [r["filename"] for r in warehouse.query("SELECT filename FROM schema_migrations ORDER BY filename")]
    assert names == ["001_recon_tables.sql", "003_recon_run_index.sql"]


def test_rerun_of_a_slice_replaces_it_and_keeps_run_history(warehouse):
    warehouse.publish(record("run-1"), variance_frame(), units_frame(ids=("m1", "m2", "m3")))
    warehouse.publish(record("run-22"), variance_frame(invoiced=2.0), units_frame())
    units = warehouse.read_slice("recon_unit", "W1", "2025-07")
    assert [u["unit_id"] for u in units] == ["m1:marketing", "m2:marketing"]
    assert {u["run_id"] for u in units} == {"run-22"}
    variance = warehouse.read_slice("recon_variance", "W1", "2025-07")
    assert len(variance) == 1 and variance[0]["invoiced_amount"] == Decimal("2.000000")
    runs = warehouse.runs()
    assert [(r["run_id"], r["status"], r["scope"], r["accounts"]) for r in runs] == \
        [("run-1", "published", "full", "W1"), ("run-22", "published", "full", "W1")]


def test_dispute_scope_never_replaces_full(warehouse):
    warehouse.publish(record("run-1"), variance_frame(), units_frame(ids=("m1", "m2")))
    warehouse.publish(record("dispute-1"), variance_frame(invoiced=9.0), units_frame(ids=("m2",)),
                      scope="dispute:case-7")
    full = warehouse.read_slice("recon_unit", "W1", "2025-07", "full")
    dispute = warehouse.read_slice("recon_unit", "W1", "2025-07", "dispute:case-7")
    assert [u["unit_id"] for u in full] == ["m1:marketing", "m2:marketing"]
    assert [(u["unit_id"], u["run_id"]) for u in dispute] == [("m2:marketing", "dispute-1")]
    assert warehouse.read_slice("recon_variance", "W1", "2025-07")[0]["invoiced_amount"] == Decimal("1.500000")


def test_other_slices_are_left_alone(warehouse):
    warehouse.publish(record("run-1", accounts=("W1", "W2")), pd.concat([variance_frame(), variance_frame("W2")]),
                      pd.concat([units_frame(), units_frame("W2", ids=("x1",))]))
    warehouse.publish(record("run-2"), variance_frame(), units_frame(ids=("m9",)))  # W1 only
    assert [u["unit_id"] for u in warehouse.read_slice("recon_unit", "W2", "2025-07")] == ["x1:marketing"]
    assert [u["unit_id"] for u in warehouse.read_slice("recon_unit", "W1", "2025-07")] == ["m9:marketing"]


def test_failure_mid_write_keeps_old_slice_and_records_failed_run(warehouse):
    warehouse.publish(record("run-1"), variance_frame(), units_frame(ids=("m1", "m2")))
    bad = units_frame(ids=("m5", "m6"))
    bad.loc[1, "opened_at"] = pd.NaT  # NOT NULL violation while inserting, after the slice was deleted
    with pytest.raises(Exception, match="(?i)null"):
        warehouse.publish(record("run-2"), variance_frame(invoiced=7.0), bad)
    assert [u["unit_id"] for u in warehouse.read_slice("recon_unit", "W1", "2025-07")] == \
        ["m1:marketing", "m2:marketing"]
    assert warehouse.read_slice("recon_variance", "W1", "2025-07")[0]["run_id"] == "run-1"
    runs = {r["run_id"]: r for r in warehouse.runs()}
    assert runs["run-1"]["status"] == "published"
    assert runs["run-2"]["status"] == "failed" and runs["run-2"]["error"]


def test_duplicate_unit_keys_are_refused_before_writing(warehouse):
    warehouse.publish(record("run-1"), variance_frame(), units_frame(ids=("m1",)))
    with pytest.raises(WarehouseError, match="share a key"):
        warehouse.publish(record("run-2"), variance_frame(), units_frame(ids=("m5", "m5")))
    assert [u["unit_id"] for u in warehouse.read_slice("recon_unit", "W1", "2025-07")] == ["m1:marketing"]
    assert [(r["run_id"], r["status"]) for r in warehouse.runs()] == [("run-1", "published"), ("run-2", "failed")]


def test_rows_outside_the_slices_are_refused(warehouse):
    with pytest.raises(WarehouseError, match="outside the slices"):
        warehouse.publish(record("run-1"), variance_frame(month="2025-06"), units_frame())
    assert [r["status"] for r in warehouse.runs()] == ["failed"]


def test_numeric_precision_and_nulls_round_trip(warehouse):
    warehouse.publish(record("run-1"), variance_frame(expected=0.123456, invoiced=1234567.654321),
                      units_frame(amount=0.123456))
    unit, unpriced = warehouse.read_slice("recon_unit", "W1", "2025-07")
    assert unit["amount"] == Decimal("0.123456") and unit["rate"] == Decimal("0.123456")
    assert unpriced["amount"] is None  # NaN (no rate) stays NULL, never 0
    assert unit["expires_at"] is None
    assert pd.Timestamp(unit["opened_at"]) == pd.Timestamp("2025-07-01T10:00:00.123456Z")
    row = warehouse.read_slice("recon_variance", "W1", "2025-07")[0]
    assert row["expected_amount"] == Decimal("0.123456")
    assert row["invoiced_amount"] == Decimal("1234567.654321")
    assert row["amount_diff"] == Decimal("1234567.530900")


def test_parameterised_values_with_quotes(warehouse):
    weird = "O'Brien\"; DROP TABLE recon_unit; --"
    warehouse.publish(record("run-'1"), variance_frame(market=weird), units_frame(market=weird))
    assert warehouse.read_slice("recon_variance", "W1", "2025-07")[0]["market"] == weird
    assert [r["run_id"] for r in warehouse.runs()] == ["run-'1"]


def docs_sql(name: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(rf"<!-- sql:{name} -->\s*```sql\n(.*?)```", text, re.S)
    assert match, f"query {name} missing from docs/operations.md"
    return match.group(1).strip().rstrip(";")


def test_docs_queries_execute(warehouse):
    warehouse.publish(record("run-1", accounts=("W1", "W2")),
                      pd.concat([variance_frame(), variance_frame(market="India", invoiced=0.2),
                                 variance_frame("W2", market="India", invoiced=5.0)]),
                      pd.concat([units_frame(ids=("m2", "m1")), units_frame(market="India", ids=("i1",)),
                                 units_frame("W2", ids=("x1",), market="India")]))
    warehouse.publish(record("dispute-1"), variance_frame(), units_frame(ids=("m1",)), scope="dispute:7")

    top = warehouse.query(docs_sql("top_over_billed_markets"), {"billing_month": "2025-07"})
    assert [(r["market"], r["over_billed_amount"], r["groups"]) for r in top] == \
        [("India", Decimal("4.953000"), 2), ("Brazil", Decimal("1.376500"), 1)]

    evidence = warehouse.query(docs_sql("units_behind_variance_row"), {
        "waba_id": "W1", "billing_month": "2025-07", "scope": "full", "market": "Brazil", "pricing_model": "PMP",
        "category": "marketing", "pricing_type": "regular"})
    assert [(r["opening_message_id"], r["status"]) for r in evidence] == [("m2", "over_billed"), ("m1", "over_billed")]
    assert evidence[0]["amount"] == Decimal("0.123456") and evidence[1]["amount"] is None

    history = warehouse.query(docs_sql("runs_of_slice"), {"scope": "full", "waba_id": "W2",
                                                          "billing_month": "2025-07"})
    assert [(r["run_id"], r["status"]) for r in history] == [("run-1", "published")]
    assert warehouse.query(docs_sql("runs_of_slice"), {"scope": "dispute:7", "waba_id": "W1",
                                                       "billing_month": "2025-07"})[0]["run_id"] == "dispute-1"


def test_url_forms(tmp_path):
    assert Warehouse.from_url(None).duckdb_path == "./reconcile.duckdb"
    assert Warehouse.from_url(f"duckdb:///{tmp_path}/a.duckdb").duckdb_path == f"{tmp_path}/a.duckdb"
    assert Warehouse.from_url("rel/b.duckdb").duckdb_path == "rel/b.duckdb"
    with pytest.raises(WarehouseError):
        Warehouse.from_url("mysql://x")
    with pytest.raises(WarehouseError):
        Warehouse.from_url("x.duckdb", schema='bad"; drop')


def test_named_schema(tmp_path):
    wh = Warehouse.from_url(str(tmp_path / "s.duckdb"), schema="recon_test")
    wh.ensure_schema()
    wh.publish(record("run-1"), variance_frame(), units_frame())
    rows = wh.query("SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_name = 'recon_unit'")
    assert [(r["table_schema"], r["table_name"]) for r in rows] == [("recon_test", "recon_unit")]
