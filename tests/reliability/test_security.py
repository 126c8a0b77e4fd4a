"""Security: secrets never leave the process, user numbers are masked for finance, no formula
survives into the workbook, warehouse writes are parameterised, and no key is committed.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import uuid
import zipfile

import pandas as pd
import pytest

from .conftest import BAD, BASE, REPO, run_cli, run_main

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYz9" + uuid.uuid4().hex[:8]
PG_PASSWORD = "Pg-" + uuid.uuid4().hex[:12]
PAYLOADS = ('=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\t=1", "\r=1")
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
HOSTILE = "'); drop table recon_run; --"


def _all_output_text(out: str) -> str:
    """Every output file as text (the workbook's XML parts unzipped)."""
    parts = []
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name)
        if name.endswith(".xlsx"):
            with zipfile.ZipFile(path) as z:
                parts += [z.read(n).decode("utf-8", "replace") for n in z.namelist()]
        elif os.path.isfile(path):
            parts.append(open(path, "rb").read().decode("utf-8", "replace"))
    return "\n".join(parts)


# ====================================================================== secrets
def test_secrets_never_reach_output_logs_or_run_json(s3_bucket, s3_server, pg_schema, tmp_path, monkeypatch, caplog):
    """AWS secret in the environment, Postgres password in the --warehouse argument; inputs read
    from S3 (so the credentials are used); stdout, stderr, every log record (DEBUG) and every output
    file are searched for both secrets."""
    import boto3

    from reconcile.io import locations

    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    for opt, path in BASE.items():
        client.put_object(Bucket=s3_bucket, Key=f"in/{os.path.basename(path)}", Body=open(path, "rb").read())
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    url = f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:5432/test?options=-csearch_path%3D{pg_schema}"
    caplog.set_level(logging.DEBUG)
    out = str(tmp_path / "out")
    try:
        run = run_cli(out, warehouse=url, extra=["--s3-endpoint-url", s3_server],
                      **{k.replace("-", "_"): f"s3://{s3_bucket}/in/{os.path.basename(p)}" for k, p in BASE.items()})
        # a failing warehouse connection (nothing listens on port 1) must not print the password either
        failed = run_cli(str(tmp_path / "failed"), warehouse=url.replace(":5432/", ":1/"))
    finally:
        locations.set_default_endpoint(None)
    assert run.exit_code == 0, run.stderr
    assert failed.exit_code == 1 and "Connection refused" in failed.stderr
    record = json.load(open(os.path.join(out, "run.json")))
    assert record["parameters"]["warehouse"] == \
        f"postgresql+psycopg://postgres:***@127.0.0.1:5432/test?options=-csearch_path%3D{pg_schema}"
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert len(caplog.records) > 0                                  # botocore logged at DEBUG: we searched it
    for secret in (AWS_SECRET, PG_PASSWORD):
        for where, text in (("stdout", run.stdout + failed.stdout), ("stderr", run.stderr + failed.stderr),
                            ("logs", logs), ("outputs", _all_output_text(out))):
            assert secret not in text, f"secret found in {where}"


def test_progress_display_does_not_print_the_warehouse_password(pg_schema, tmp_path):
    url = f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:5432/test?options=-csearch_path%3D{pg_schema}"
    argv = ["run"] + sum([[f"--{k}", v] for k, v in BASE.items()], [])
    argv += ["--period", "2025-07", "--out", str(tmp_path / "out"), "--warehouse", url]   # no --quiet
    run = run_main(argv, str(tmp_path / "out"))
    assert run.exit_code == 0, run.stderr
    assert PG_PASSWORD not in run.stdout + run.stderr


# ====================================================================== masking
def _user_numbers(demo) -> set[str]:
    from reconcile.io import tables
    from reconcile.quality import QualityLog

    messages, _ = tables.read_messages(demo.message_files, QualityLog())
    return set(messages["user_wa_id"]) - {""}


def test_workbook_and_logs_never_show_a_full_user_number(demo):
    users = _user_numbers(demo)
    assert len(users) > 50
    import openpyxl

    wb = openpyxl.load_workbook(os.path.join(demo.reference.out, "report.xlsx"))
    cells = leaks = 0
    units_rows = 0
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.value is None:
                    continue
                cells += 1
                for run in re.findall(r"\d{8,}", str(c.value)):
                    leaks += run in users
        if ws.title == "Units":
            units_rows = ws.max_row
    assert units_rows > 10                       # the Units sheet does show user numbers (masked)
    assert cells > 1000 and leaks == 0
    text = demo.reference.stdout + demo.reference.stderr
    assert not [u for u in users if u in text]
    # the data-engineering CSV keeps them in full (contract), so the check above is meaningful
    assert set(demo.reference.frame("billable_units.csv")["user_wa_id"]) & users


# ====================================================================== formula injection
def test_no_formula_survives_into_the_workbook(tmp_path, monkeypatch):
    """Payloads in every input text field (waba name, invoice markets/ids/categories, message ids,
    categories, entry points, source file names) → every workbook cell is inert text or a number."""
    folder = tmp_path / "in"
    folder.mkdir()
    # source paths that start with a trigger character (given relative, so the cell starts with it)
    names = {"messages": "=1+1.csv", "invoice": "@SUM(A1).csv", "accounts": "+acc.csv", "rate-card": "-rates.csv"}
    shutil.copy(os.path.join(BAD, "messages_injection.csv"), folder / names["messages"])
    shutil.copy(os.path.join(BAD, "invoice_injection.csv"), folder / names["invoice"])
    shutil.copy(os.path.join(BAD, "accounts_injection.csv"), folder / names["accounts"])
    shutil.copy(BASE["rate-card"], folder / names["rate-card"])
    monkeypatch.chdir(folder)
    run = run_cli(str(tmp_path / "out"), messages=names["messages"], invoice=names["invoice"],
                  accounts=names["accounts"], rate_card=names["rate-card"])
    assert run.exit_code == 0, run.stderr
    import openpyxl

    wb = openpyxl.load_workbook(str(tmp_path / "out" / "report.xlsx"))
    formulas, risky, seen = [], [], set()
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.data_type == "f":
                    formulas.append((ws.title, c.coordinate, c.value))
                if isinstance(c.value, str):
                    if c.value.startswith(TRIGGERS):
                        risky.append((ws.title, c.coordinate, c.value))
                    for p in PAYLOADS + tuple(names.values()) + ('=HYPERLINK("http://x","click")',):
                        if p.strip() and p.strip() in c.value:
                            seen.add(p.strip())
    assert formulas == [] and risky == []
    # the payloads did reach the workbook (escaped), so the scan above covered them
    assert {'=HYPERLINK("http://x")', "+1+1", "@SUM(A1)", "=1+1.csv", "@SUM(A1).csv"} <= seen
    assert '=HYPERLINK("http://x","click")' in seen          # the account name


# ====================================================================== warehouse parameters
def _hostile_frames(base_run):
    units = base_run.frame("billable_units.csv")
    variance = base_run.frame("variance.csv")
    for frame in (units, variance):
        frame["waba_id"] = HOSTILE
    units["unit_id"] = HOSTILE + units["unit_id"]
    units["opening_message_id"] = HOSTILE
    units["market"] = HOSTILE
    units["opened_at"] = pd.to_datetime(units["opened_at"], utc=True)
    units["expires_at"] = pd.to_datetime(units["expires_at"].replace("", None), utc=True)
    units["message_count"] = units["message_count"].astype("int64")
    for c in ("rate", "amount"):
        units[c] = units[c].astype(float)
    for c in ("expected_quantity", "invoiced_quantity", "quantity_diff"):
        variance[c] = variance[c].astype("int64")
    for c in ("expected_amount", "invoiced_amount", "amount_diff"):
        variance[c] = variance[c].astype(float)
    record = {"run_id": HOSTILE + "run", "period": "2025-07", "accounts": [HOSTILE],
              "started_at": "2025-08-01T00:00:00Z", "tool_version": HOSTILE, "counts": {"x": HOSTILE}, "inputs": []}
    return record, variance, units


@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_warehouse_writes_are_parameterised(backend, base_run, tmp_path, request):
    from reconcile.report.warehouse import Warehouse

    if backend == "duckdb":
        wh = Warehouse.from_url(str(tmp_path / "w.duckdb"))
    else:
        schema = request.getfixturevalue("pg_schema")
        wh = Warehouse.from_url("postgresql+psycopg://postgres@127.0.0.1:5432/test", schema=schema)
    try:
        wh.ensure_schema()
        record, variance, units = _hostile_frames(base_run)
        wh.publish(record, variance, units, scope="dispute:" + HOSTILE, slices=[(HOSTILE, "2025-07")])
        runs = wh.runs()                                   # recon_run survived
        assert [r["run_id"] for r in runs] == [HOSTILE + "run"] and runs[0]["tool_version"] == HOSTILE
        got = wh.read_slice("recon_unit", HOSTILE, "2025-07", scope="dispute:" + HOSTILE)
        assert sorted(r["unit_id"] for r in got) == sorted(units["unit_id"])
        assert {r["opening_message_id"] for r in got} == {HOSTILE} and {r["market"] for r in got} == {HOSTILE}
        v = wh.read_slice("recon_variance", HOSTILE, "2025-07", scope="dispute:" + HOSTILE)
        assert len(v) == len(variance) == 4
    finally:
        wh.close()


# ====================================================================== repository scan
AWS_KEY = re.compile(r"AKIA[0-9A-Z]{16}")
PRIVATE_KEY = re.compile("-----BEGIN " + r"(?:[A-Z]+ )*" + "PRIVATE KEY-----")


def test_no_credentials_in_tracked_files():
    if not os.path.isdir(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    scanned, hits = 0, []
    for name in filter(None, files):
        path = os.path.join(REPO, name.decode())
        if not os.path.isfile(path):
            continue
        text = open(path, "rb").read().decode("latin-1")
        scanned += 1
        for pattern in (AWS_KEY, PRIVATE_KEY):
            if pattern.search(text):
                hits.append((name.decode(), pattern.pattern))
    assert scanned > 50 and hits == []
