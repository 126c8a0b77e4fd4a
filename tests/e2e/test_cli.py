"""The command line end to end: `reconcile demo` publishes every contract output, `reconcile run`
gives the documented exit codes, reruns are byte-identical."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys

import duckdb
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reconcile.cli import main
from reconcile.contracts import (DQ_COLUMNS, OUTPUT_FILES, SUCCESS_MANIFEST, TIMING_KEYS, UNIT_COLUMNS,
                                 VARIANCE_COLUMNS, VARIANCE_STATUSES)

PERIODS = ("2025-07", "2026-10")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    return out


def _header(path):
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("period", PERIODS)
def test_demo_publishes_every_output(demo_dir, period):
    out = demo_dir / period
    for name in OUTPUT_FILES + (SUCCESS_MANIFEST,):
        assert (out / name).is_file(), f"{name} missing in {out}"
    assert _header(out / "billable_units.csv") == UNIT_COLUMNS
    assert _header(out / "variance.csv") == VARIANCE_COLUMNS
    assert _header(out / "data_quality.csv") == DQ_COLUMNS
    units = _rows(out / "billable_units.csv")
    assert units, "the demo has billable units"
    assert {u["billing_month"] for u in units} == {period}
    assert all(u["opened_at"].endswith("Z") and len(u["opened_at"]) == 20 for u in units)
    assert all(u["amount"] == "" or len(u["amount"].split(".")[1]) == 4 for u in units)
    variance = _rows(out / "variance.csv")
    assert {v["status"] for v in variance} <= set(VARIANCE_STATUSES)
    assert {v["status"] for v in variance} & {"over_billed", "under_billed", "not_expected", "not_invoiced"}


@pytest.mark.parametrize("period", PERIODS)
def test_demo_parquet_types_and_rows(demo_dir, period):
    table = pq.read_table(demo_dir / period / "billable_units.parquet")
    assert table.column_names == UNIT_COLUMNS
    assert table.schema.field("amount").type == pa.decimal128(18, 6)
    assert table.schema.field("rate").type == pa.decimal128(18, 6)
    assert table.schema.field("opened_at").type == pa.timestamp("us", tz="UTC")
    assert table.num_rows == len(_rows(demo_dir / period / "billable_units.csv"))


@pytest.mark.parametrize("period", PERIODS)
def test_demo_manifest_and_run_record(demo_dir, period):
    out = demo_dir / period
    manifest = json.loads((out / SUCCESS_MANIFEST).read_text())
    files = {f["name"]: f for f in manifest["files"]}
    assert set(files) == set(OUTPUT_FILES)
    for name, entry in files.items():
        data = (out / name).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    record = json.loads((out / "run.json").read_text())
    for key in ("period", "accounts", "inputs", "eras", "rate_card_versions", "counts", "tool_version", "timings_s"):
        assert key in record
    assert record["period"] == period
    assert set(TIMING_KEYS) <= set(record["timings_s"])
    assert all(len(i["sha256"]) == 64 for i in record["inputs"])
    assert record["eras"] == (["PMP"] if period == "2025-07" else ["PMP-2"])


@pytest.mark.parametrize("period", PERIODS)
def test_demo_workbook_opens_with_its_sheets(demo_dir, period):
    wb = openpyxl.load_workbook(demo_dir / period / "report.xlsx", read_only=True)
    assert wb.sheetnames == ["Summary", "Variance", "Units", "Data quality", "Run info"]


def test_demo_warehouse_has_both_runs(demo_dir):
    con = duckdb.connect(str(demo_dir / "warehouse.duckdb"), read_only=True)
    try:
        periods = sorted(r[0] for r in con.execute("select period from recon_run").fetchall())
        assert periods == list(PERIODS)
        n_units = con.execute("select count(*) from recon_unit").fetchone()[0]
    finally:
        con.close()
    csv_units = sum(len(_rows(demo_dir / p / "billable_units.csv")) for p in PERIODS)
    assert n_units == csv_units


def _demo_args(demo_dir, period, out, *extra):
    record = json.loads((demo_dir / period / "run.json").read_text())
    args = ["run", "--period", period, "--out", str(out), "--warehouse", str(out) + ".duckdb", "--quiet"]
    flag = {"messages": "--messages", "accounts": "--accounts", "rate_card": "--rate-card", "invoice": "--invoice"}
    for i in record["inputs"]:
        args += [flag[i["kind"]], i["path"]]
    return args + list(extra)


def test_rerun_is_byte_identical(demo_dir, tmp_path):
    args = _demo_args(demo_dir, "2025-07", tmp_path / "a")
    assert main(args) == 0
    for name in ("billable_units.csv", "variance.csv", "data_quality.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (demo_dir / "2025-07" / name).read_bytes(), name


def test_fail_on_variance_exits_3_after_publishing(demo_dir, tmp_path):
    assert main(_demo_args(demo_dir, "2025-07", tmp_path / "b", "--fail-on-variance")) == 3
    assert (tmp_path / "b" / SUCCESS_MANIFEST).is_file()


def test_missing_accounts_file_exits_2_naming_it(demo_dir, tmp_path, capsys):
    args = _demo_args(demo_dir, "2025-07", tmp_path / "c")
    args[args.index("--accounts") + 1] = str(tmp_path / "nope.csv")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "nope.csv" in err
    assert not (tmp_path / "c").exists()


def test_bad_period_is_usage_error(demo_dir, tmp_path, capsys):
    args = _demo_args(demo_dir, "2025-07", tmp_path / "d")
    args[args.index("--period") + 1] = "2025-13"
    assert main(args) == 2
    assert "2025-13" in capsys.readouterr().err


def test_console_script_help():
    exe = os.path.join(os.path.dirname(sys.executable), "reconcile")
    done = subprocess.run([exe, "run", "--help"], capture_output=True, text=True, check=True)
    assert "--fail-on-variance" in done.stdout and "s3://" in done.stdout


def test_accounts_given_as_a_folder_are_read_and_checksummed(demo_dir, tmp_path):
    args = _demo_args(demo_dir, "2025-07", tmp_path / "e")
    accounts_file = args[args.index("--accounts") + 1]
    folder = tmp_path / "accounts"
    folder.mkdir()
    (folder / "accounts.csv").write_bytes(open(accounts_file, "rb").read())
    args[args.index("--accounts") + 1] = str(folder)
    assert main(args) == 0
    record = json.loads((tmp_path / "e" / "run.json").read_text())
    accounts = [i for i in record["inputs"] if i["kind"] == "accounts"]
    assert [a["path"] for a in accounts] == [str(folder / "accounts.csv")]
    assert accounts[0]["rows"] == 4
    assert accounts[0]["sha256"] == hashlib.sha256((folder / "accounts.csv").read_bytes()).hexdigest()
    assert [i["kind"] for i in record["inputs"]][0] == "accounts"
