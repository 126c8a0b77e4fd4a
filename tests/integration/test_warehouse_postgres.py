"""Warehouse on the machine's real PostgreSQL (127.0.0.1:5432, user postgres, database test): the same
cases as the DuckDB tests, in a schema created for this test session and dropped at the end."""
from __future__ import annotations

import uuid

import pytest

from test_warehouse_duckdb import (record, test_docs_queries_execute, test_duplicate_unit_keys_are_refused_before_writing, test_dispute_scope_never_replaces_full,  # noqa: F401
                                   test_failure_mid_write_keeps_old_slice_and_records_failed_run,
                                   test_numeric_precision_and_nulls_round_trip, test_other_slices_are_left_alone,
                                   test_parameterised_values_with_quotes, test_rerun_of_a_slice_replaces_it_and_keeps_run_history,
                                   test_rows_outside_the_slices_are_refused, units_frame, variance_frame)

from reconcile.report.warehouse import Warehouse

pytestmark = pytest.mark.postgres
URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def pg_session_schema():
    """A unique schema prefix for the session; every schema made with it is dropped at the end."""
    from sqlalchemy import create_engine, text

    engine = create_engine(URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 not reachable: {error}")
    prefix = f"recon_t_{uuid.uuid4().hex[:10]}"
    made: list[str] = []
    yield prefix, made
    with engine.begin() as conn:
        for schema in made:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def warehouse(pg_session_schema):
    prefix, made = pg_session_schema
    schema = f"{prefix}_{len(made)}"
    made.append(schema)
    wh = Warehouse.from_url(URL, schema=schema)
    assert wh.ensure_schema() == ["001_recon_tables.sql", "002_recon_unit_keys.postgresql.sql",
                                  "003_recon_run_index.sql"]
    yield wh
    wh.close()


def test_ensure_schema_again_applies_nothing_and_tables_live_in_the_schema(warehouse):
    assert warehouse.ensure_schema() == []
    rows = warehouse.query("SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
                           "ORDER BY table_name", {"s": warehouse.schema})
    assert [r["table_name"] for r in rows] == ["recon_run", "recon_unit", "recon_variance", "schema_migrations"]
    indexes = warehouse.query("SELECT indexname FROM pg_indexes WHERE schemaname = :s ORDER BY indexname",
                              {"s": warehouse.schema})
    assert {"recon_unit_opening_message_idx", "recon_unit_user_idx", "recon_unit_group_idx"} <= \
        {r["indexname"] for r in indexes}


def test_primary_key_still_guards_the_unit_table(warehouse):
    warehouse.publish(record("run-1"), variance_frame(), units_frame(ids=("m1",)))
    with pytest.raises(Exception, match="(?i)duplicate key"):
        warehouse.query("INSERT INTO recon_unit SELECT * FROM recon_unit")
    assert len(warehouse.read_slice("recon_unit", "W1", "2025-07")) == 1


def test_postgres_url_spellings():
    for url in ("postgresql://postgres@127.0.0.1/test", "postgresql+psycopg://postgres@127.0.0.1/test",
                "postgres://postgres@127.0.0.1/test"):
        wh = Warehouse.from_url(url)
        assert wh.dialect == "postgresql" and wh.engine.url.drivername == "postgresql+psycopg"
        wh.close()
