"""The Airflow DAGs: they import cleanly and cheaply, and `dag.test()` runs of both DAGs against a
real S3 API (moto server mode) and the machine's Postgres (warehouse) publish what a single-process
`pipeline.run` publishes.

Airflow's own metadata DB is SQLite in a temporary AIRFLOW_HOME (migrated once for this module);
the S3 and warehouse connections come from AIRFLOW_CONN_* environment variables, as in production.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
HEAVY_MODULES = ("pandas", "numpy", "duckdb", "openpyxl", "pyarrow", "numba", "reconcile.engine")

# Airflow reads its configuration when it is first imported: the `airflow_db` fixture sets it up
# (temporary AIRFLOW_HOME, SQLite metadata DB) before the first import. This module must be the
# first to import Airflow in its process; nothing under reconcile/ ever does.
if importlib.util.find_spec("airflow") is None:
    pytest.importorskip("airflow")          # skips the whole module when Airflow is not installed
_HOME = os.path.join(tempfile.gettempdir(), f"reconcile-airflow-home-{os.getpid()}-{uuid.uuid4().hex[:6]}")
AIRFLOW_ENV = {
    "AIRFLOW_HOME": _HOME,
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    # the invoice sensor: poke every second, give up after 5 s (production: 30 min / 5 days)
    "AIRFLOW_VAR_RECONCILE_INVOICE_POKE_INTERVAL_S": "1",
    "AIRFLOW_VAR_RECONCILE_INVOICE_TIMEOUT_S": "5",
}

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FULL_SLICE_SQL = "SELECT * FROM recon_variance WHERE scope = 'full' ORDER BY waba_id, market, pricing_model, " \
                 "category, pricing_type"
PERIOD = "2025-07"
DISPUTE_ID = "D-42"
DISPUTED_USER = "5511900000001"


def _run(cmd: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **AIRFLOW_ENV, **(env_extra or {})}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=str(REPO))


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def airflow_db():
    """Airflow's configuration in a temporary AIRFLOW_HOME and its metadata DB (SQLite), migrated
    once for the module; the environment is restored and the folder removed afterwards."""
    import shutil

    saved = {k: os.environ.get(k) for k in AIRFLOW_ENV}
    os.makedirs(_HOME, exist_ok=True)
    os.environ.update(AIRFLOW_ENV)
    try:
        pytest.importorskip("airflow")
        done = _run([sys.executable, "-m", "airflow", "db", "migrate"])
        assert done.returncode == 0, done.stderr[-3000:]
        if str(DAGS) not in sys.path:
            sys.path.insert(0, str(DAGS))
        yield _HOME
    finally:
        _restore(saved)
        shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder")


@pytest.fixture(scope="module")
def warehouse_schema():
    """A uniquely named Postgres schema for the warehouse, dropped at the end."""
    import sqlalchemy as sa

    schema = f"reconcile_dags_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="module")
def stack(airflow_db, s3_server, warehouse_schema, tmp_path_factory):
    """Demo inputs on the S3 server in a fresh bucket; both connections as environment variables."""
    import boto3

    from reconcile import demo

    root = tmp_path_factory.mktemp("dag-demo")
    inputs = demo.write_demo_inputs(str(root / "inputs"))
    bucket = f"reconcile-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    for folder, _, files in os.walk(inputs.directory):
        for name in files:
            path = os.path.join(folder, name)
            client.upload_file(path, bucket, os.path.relpath(path, inputs.directory).replace(os.sep, "/"))
    connections = {
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"}}),
        "AIRFLOW_CONN_RECONCILE_WAREHOUSE": json.dumps({
            "conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test",
            "extra": {"search_path": warehouse_schema}}),
    }
    saved = {k: os.environ.get(k) for k in connections}
    os.environ.update(connections)
    try:
        yield {"bucket": bucket, "client": client, "inputs": inputs, "root": root, "schema": warehouse_schema}
    finally:
        _restore(saved)


def _restore(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _no_retries(dag):
    """A failing task fails the test run at once instead of waiting for its retry delay."""
    for t in dag.tasks:
        t.retries = 0
    return dag


def _prefixes(bucket: str) -> dict:
    s3 = f"s3://{bucket}"
    return {
        "messages_prefix": f"{s3}/messages/{{period}}/", "invoices_prefix": f"{s3}/invoices/{{period}}/",
        "accounts": f"{s3}/reference/accounts.csv", "rate_cards": [f"{s3}/reference/rate_cards/"],
        "work_prefix": f"{s3}/work/{{dag_id}}/{{run_id}}/",
    }


def _keys(client, bucket: str, prefix: str) -> dict[str, dict]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(prefix):]] = obj
    return out


def _warehouse_rows(schema: str, sql: str) -> list[tuple]:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'SET search_path TO "{schema}"'))
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- import checks
def test_dag_files_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {"monthly_reconciliation", "dispute_rerun"}
    monthly = dagbag.dags["monthly_reconciliation"]
    assert set(monthly.task_ids) == {"plan", "wait_for_invoice", "list_message_logs", "prepare_shards",
                                     "window_shard", "finalize_and_publish", "clean_work_prefix"}
    assert monthly.timetable.expression == "0 6 5 * *"
    assert monthly.params["shards"] == 4 and monthly.params["lookback_months"] == 1
    assert monthly.params["aws_conn_id"] == "aws_default"
    assert monthly.params["warehouse_conn_id"] == "reconcile_warehouse"
    assert monthly.params["messages_prefix"] == "s3://reconcile/messages/{period}/"
    sensor = monthly.get_task("wait_for_invoice")
    assert sensor.mode == "reschedule" and sensor.poke_interval == 1 and sensor.timeout == 5
    assert monthly.get_task("window_shard").upstream_task_ids == {"plan", "prepare_shards"}
    assert monthly.get_task("list_message_logs").upstream_task_ids == {"plan", "wait_for_invoice"}
    dispute = dagbag.dags["dispute_rerun"]
    assert dispute.timetable.__class__.__name__ == "NullTimetable"
    assert set(dispute.task_ids) == {"plan", "list_message_logs", "rerun"}
    assert {"dispute_id", "wabas", "period", "user_numbers", "phone_number_ids", "output_prefix"} <= set(dispute.params)
    for dag in dagbag.dags.values():
        assert dag.doc_md and dag.doc_md.strip()


def test_parsing_imports_no_heavy_modules_and_reads_the_schedule_variable(airflow_db):
    """Parsing must stay cheap (no pandas/numpy/duckdb/openpyxl/... at DAG import time) and the
    schedule comes from the Airflow Variable ``reconcile_monthly_schedule``."""
    script = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from airflow.dag_processing.dagbag import BundleDagBag\n"
        "bag = BundleDagBag(dag_folder=%r, bundle_path=Path(%r), bundle_name='dags-folder')\n"
        "print(json.dumps({'errors': list(bag.import_errors), 'dags': sorted(bag.dags),\n"
        "  'schedule': bag.dags['monthly_reconciliation'].timetable.expression,\n"
        "  'heavy': sorted(m for m in %r if m in sys.modules)}))\n" % (str(DAGS), str(DAGS), HEAVY_MODULES))
    done = _run([sys.executable, "-c", script], env_extra={"AIRFLOW_VAR_RECONCILE_MONTHLY_SCHEDULE": "0 7 3 * *"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"errors": [], "dags": ["dispute_rerun", "monthly_reconciliation"], "schedule": "0 7 3 * *",
                      "heavy": []}


def test_plan_of_a_scheduled_run_is_the_previous_month(airflow_db):
    import reconcile_airflow as support

    class Dag:
        dag_id = "monthly_reconciliation"

    params = {**support.MONTHLY_DEFAULTS}
    plan = support.plan_monthly(params, {"logical_date": datetime(2026, 1, 5, 6, tzinfo=timezone.utc),
                                         "run_id": "scheduled__2026-01-05T06:00:00+00:00", "dag": Dag()})
    assert plan["period"] == "2025-12" and plan["months"] == ["2025-11", "2025-12"]
    assert plan["messages"] == ["s3://reconcile/messages/2025-11/", "s3://reconcile/messages/2025-12/"]
    assert plan["invoices"] == ["s3://reconcile/invoices/2025-12/"]
    assert plan["out"] == "s3://reconcile/reports/2025-12/"
    assert plan["work_prefix"] == "s3://reconcile/work/monthly_reconciliation/scheduled__2026-01-05T06_00_00_00_00/"
    assert json.loads(json.dumps(plan)) == plan
    # no logical date (a manual run in Airflow 3): the run's run_after decides
    class Run:
        run_after = datetime(2025, 8, 1, tzinfo=timezone.utc)

    plan = support.plan_monthly({**params, "lookback_months": 2},
                                {"logical_date": None, "dag_run": Run(), "run_id": "manual__x", "dag": Dag()})
    assert plan["period"] == "2025-07" and plan["months"] == ["2025-05", "2025-06", "2025-07"]


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def monthly_run(dagbag, stack):
    dag = _no_retries(dagbag.dags["monthly_reconciliation"])
    conf = {**_prefixes(stack["bucket"]), "report_prefix": f"s3://{stack['bucket']}/reports/{{period}}/",
            "shards": 3}
    run = dag.test(logical_date=datetime(2025, 8, 5, 6, tzinfo=timezone.utc), run_conf=conf)
    return run


@pytest.fixture(scope="module")
def single_process(stack):
    """The same month run by `pipeline.run` in this process (the reference)."""
    from reconcile import pipeline

    out = stack["root"] / "single"
    result = pipeline.run(stack["inputs"][PERIOD].run_config(out=str(out), warehouse="none"))
    return out, result


def test_monthly_dag_publishes_the_report_with_success_last(monthly_run, stack, single_process):
    assert monthly_run.state == "success"
    client, bucket = stack["client"], stack["bucket"]
    objects = _keys(client, bucket, f"reports/{PERIOD}/")
    assert set(objects) == {"billable_units.csv", "billable_units.parquet", "variance.csv", "data_quality.csv",
                            "report.xlsx", "run.json", "_SUCCESS"}
    success = objects.pop("_SUCCESS")
    assert all(success["LastModified"] >= o["LastModified"] for o in objects.values())
    manifest = json.loads(client.get_object(Bucket=bucket, Key=f"reports/{PERIOD}/_SUCCESS")["Body"].read())
    assert {f["name"]: f["size"] for f in manifest["files"]} == {k: o["Size"] for k, o in objects.items()}
    out, _ = single_process
    for name in ("variance.csv", "billable_units.csv"):
        published = client.get_object(Bucket=bucket, Key=f"reports/{PERIOD}/{name}")["Body"].read()
        assert published == (out / name).read_bytes(), name
    record = json.loads(client.get_object(Bucket=bucket, Key=f"reports/{PERIOD}/run.json")["Body"].read())
    assert record["period"] == PERIOD and record["scope"] == "full" and record["shards"] == 3
    assert "testing" not in json.dumps(record)           # no credentials in the run record
    assert record["parameters"]["warehouse"].startswith("postgresql+psycopg://postgres")


def test_monthly_dag_ran_three_mapped_shards_and_cleaned_its_work_prefix(monthly_run, stack):
    tis = {(ti.task_id, ti.map_index): ti.state for ti in monthly_run.get_task_instances()}
    assert sorted(i for (t, i) in tis if t == "window_shard") == [0, 1, 2]
    assert set(tis.values()) == {"success"}
    assert _keys(stack["client"], stack["bucket"], "work/") == {}


def test_monthly_dag_wrote_the_full_slice(monthly_run, stack, single_process):
    _, reference = single_process
    schema = stack["schema"]
    runs = _warehouse_rows(schema, "SELECT scope, period, status FROM recon_run")
    assert runs == [("full", PERIOD, "published")]
    by_status = dict(_warehouse_rows(schema, "SELECT status, count(*) FROM recon_variance WHERE scope = 'full' "
                                             "GROUP BY status"))
    assert by_status == reference.variance["status"].value_counts().to_dict()
    n_units = _warehouse_rows(schema, "SELECT count(*) FROM recon_unit WHERE scope = 'full'")[0][0]
    assert n_units == len(reference.units)


@pytest.fixture(scope="module")
def dispute_run(monthly_run, dagbag, stack):
    from reconcile import demo

    schema = stack["schema"]
    before = _warehouse_rows(schema, FULL_SLICE_SQL)
    dag = _no_retries(dagbag.dags["dispute_rerun"])
    conf = {**_prefixes(stack["bucket"]), "dispute_id": DISPUTE_ID, "period": PERIOD, "wabas": [demo.W_BR],
            "user_numbers": [f"+{DISPUTED_USER}"],
            "output_prefix": f"s3://{stack['bucket']}/disputes/{{dispute_id}}/{{period}}/"}
    run = dag.test(run_conf=conf)
    return run, before


def test_dispute_dag_writes_a_scoped_report_and_slice(dispute_run, stack):
    from reconcile import demo

    run, before = dispute_run
    assert run.state == "success"
    client, bucket, schema = stack["client"], stack["bucket"], stack["schema"]
    objects = _keys(client, bucket, f"disputes/{DISPUTE_ID}/{PERIOD}/")
    assert "_SUCCESS" in objects and "variance.csv" in objects
    units = client.get_object(Bucket=bucket, Key=f"disputes/{DISPUTE_ID}/{PERIOD}/billable_units.csv")["Body"].read()
    lines = units.decode().splitlines()
    assert len(lines) > 1 and all(f",{DISPUTED_USER}," in line for line in lines[1:])
    scopes = _warehouse_rows(schema, "SELECT scope FROM recon_run ORDER BY started_at")
    assert [s for (s,) in scopes] == ["full", f"dispute:{DISPUTE_ID}"]
    # the monthly full slice is untouched by the dispute
    assert _warehouse_rows(schema, FULL_SLICE_SQL) == before
    disputed = _warehouse_rows(schema, "SELECT DISTINCT waba_id, billing_month FROM recon_variance "
                                       f"WHERE scope = 'dispute:{DISPUTE_ID}'")
    assert disputed == [(demo.W_BR, PERIOD)]
    users = _warehouse_rows(schema, f"SELECT DISTINCT user_wa_id FROM recon_unit WHERE scope = 'dispute:{DISPUTE_ID}'")
    assert users == [(DISPUTED_USER,)]


def test_monthly_dag_waits_for_the_invoice_and_gives_up(dispute_run, dagbag, stack):
    """No invoice for 2026-01: the sensor pokes until its timeout, nothing downstream runs and no
    report prefix is created."""
    dag = _no_retries(dagbag.dags["monthly_reconciliation"])
    conf = {**_prefixes(stack["bucket"]), "report_prefix": f"s3://{stack['bucket']}/reports/{{period}}/"}
    run = dag.test(logical_date=datetime(2026, 2, 5, 6, tzinfo=timezone.utc), run_conf=conf)
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["plan"] == "success" and states["wait_for_invoice"] == "failed"
    assert states["list_message_logs"] == "upstream_failed"
    assert _keys(stack["client"], stack["bucket"], "reports/2026-01/") == {}
