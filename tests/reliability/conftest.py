"""Shared helpers of the reliability suite: the bad-input corpus and an in-process CLI runner.

Every run goes through ``reconcile.cli.main([...])`` in this process (no subprocess: the engine's
compiled kernels are loaded once per session) with ``--warehouse none`` unless a test says
otherwise, and captures stdout/stderr so that a test can assert no traceback ever escapes.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import uuid
from dataclasses import dataclass

import pandas as pd
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BAD = os.path.join(REPO, "tests", "data", "bad")
BASE = {
    "messages": os.path.join(BAD, "base", "messages.csv"),
    "accounts": os.path.join(BAD, "base", "accounts.csv"),
    "rate-card": os.path.join(BAD, "base", "rates.csv"),
    "invoice": os.path.join(BAD, "base", "invoice.csv"),
}
PERIOD = "2025-07"

sys.path.insert(0, BAD)
import make_corpus  # noqa: E402  (tests/data/bad/make_corpus.py)


@dataclass
class CliRun:
    exit_code: int
    stdout: str
    stderr: str
    out: str

    def frame(self, name: str) -> pd.DataFrame:
        return pd.read_csv(os.path.join(self.out, name), dtype=str, keep_default_na=False)

    def text(self, name: str) -> bytes:
        with open(os.path.join(self.out, name), "rb") as fh:
            return fh.read()

    def findings(self) -> list[tuple]:
        """(severity, code, source, row, column, message_id) of every data-quality row, in file order."""
        dq = self.frame("data_quality.csv")
        return [(r.severity, r.code, r.source, int(r.row) if r.row else None, r.column, r.message_id)
                for r in dq.itertuples(index=False)]


def run_cli(out: str, *, period: str = PERIOD, warehouse: str = "none", extra: list[str] | None = None,
            **inputs) -> CliRun:
    """``reconcile run`` on the base inputs with some replaced (keyword = option name with ``_``):
    a value may be a path or a list of paths."""
    chosen = dict(BASE)
    for k, v in inputs.items():
        chosen[k.replace("_", "-")] = v
    argv = ["run"]
    for opt, value in chosen.items():
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            argv.append(f"--{opt}={v}")   # "=" form: a value may start with "-"
    argv += ["--period", period, "--out", out, "--quiet"]
    if warehouse is not None:
        argv += ["--warehouse", warehouse]
    argv += extra or []
    return run_main(argv, out)


def run_main(argv: list[str], out: str = "") -> CliRun:
    from reconcile.cli import main

    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        code = main(argv)
    return CliRun(code, o.getvalue(), e.getvalue(), out)


@pytest.fixture(scope="session")
def base_run(tmp_path_factory) -> CliRun:
    """The clean base inputs, once per session: the reference every bad variant is compared with."""
    out = str(tmp_path_factory.mktemp("base") / "out")
    run = run_cli(out)
    assert run.exit_code == 0, run.stderr
    return run


@dataclass
class Demo:
    inputs: object            # reconcile.demo.DemoPeriodInputs of 2025-07
    message_files: list       # every message file of that period (lookback month included)
    reference: CliRun         # the run on the files as written

    def options(self, messages=None) -> dict:
        return {"messages": messages or self.message_files, "accounts": self.inputs.accounts,
                "rate_card": list(self.inputs.rate_cards), "invoice": list(self.inputs.invoices)}


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Demo:
    """The demo's 2025-07 inputs (CSV.gz + Parquet + webhook JSON Lines, known discrepancies), written
    once per session, and the reference run on them."""
    from reconcile.demo import write_demo_inputs
    from reconcile.io import locations, tables

    root = tmp_path_factory.mktemp("demo")
    inputs = write_demo_inputs(str(root / "inputs"))["2025-07"]
    files = [f for p in inputs.messages for f in locations.list_files(p, tables.TABLE_SUFFIXES)]
    d = Demo(inputs, files, None)
    d.reference = run_cli(str(root / "reference"), **d.options())
    assert d.reference.exit_code == 0, d.reference.stderr
    return d


@pytest.fixture
def pg_admin_schema():
    """A fresh schema in the machine's Postgres (``test`` database) and an autocommit admin connection;
    dropped afterwards. Skips when no server answers."""
    psycopg = pytest.importorskip("psycopg")
    name = f"rel_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True)
    except psycopg.OperationalError as exc:  # pragma: no cover - no server on this machine
        pytest.skip(f"no Postgres at 127.0.0.1:5432: {exc}")
    admin.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name, admin
    finally:
        admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        admin.close()


@pytest.fixture
def pg_schema(pg_admin_schema):
    """The name of a fresh Postgres schema (see :func:`pg_admin_schema`)."""
    return pg_admin_schema[0]
