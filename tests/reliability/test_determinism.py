"""Determinism: the same inputs in any row order and any file split give byte-identical
``billable_units.csv`` and ``variance.csv`` and the same data-quality counts.

Hypothesis draws a seed and a number of parts per file; every message file of the demo's 2025-07
inputs (CSV.gz, Parquet, webhook JSON Lines, lookback month included) is shuffled row-wise and cut
into that many files of the same format, and the files are passed in a shuffled order. Each example
is a whole CLI run (``--warehouse none``), so the example count is small and derandomised (the same
examples on every machine).
"""
from __future__ import annotations

import gzip
import io
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings, strategies as st

from .conftest import run_cli

RESULTS = {"examples": 0}


def _cuts(n: int, parts: int, rng) -> list[int]:
    inner = sorted(rng.choice(np.arange(1, n), size=min(parts - 1, max(n - 1, 0)), replace=False).tolist()) if n > 1 else []
    return [0, *inner, n]


def split_file(path: str, parts: int, rng, folder: str) -> list[str]:
    """Shuffle the rows of one message file and write them as ``parts`` files of the same format."""
    name = os.path.basename(path)
    out = []
    if name.endswith(".parquet"):
        table = pq.read_table(path)
        table = table.take(rng.permutation(table.num_rows))
        cuts = _cuts(table.num_rows, parts, rng)
        for i in range(len(cuts) - 1):
            p = os.path.join(folder, f"{i}_{name}")
            pq.write_table(table.slice(cuts[i], cuts[i + 1] - cuts[i]), p)
            out.append(p)
    elif name.endswith(".csv.gz") or name.endswith(".csv"):
        raw = open(path, "rb").read()
        text = gzip.decompress(raw) if name.endswith(".gz") else raw
        frame = pd.read_csv(io.BytesIO(text), dtype=str, keep_default_na=False)
        frame = frame.iloc[rng.permutation(len(frame))]
        cuts = _cuts(len(frame), parts, rng)
        for i in range(len(cuts) - 1):
            p = os.path.join(folder, f"{i}_{name}")
            body = frame.iloc[cuts[i]:cuts[i + 1]].to_csv(index=False, lineterminator="\n").encode("utf-8")
            open(p, "wb").write(gzip.compress(body, mtime=0) if name.endswith(".gz") else body)
            out.append(p)
    else:   # JSON Lines (webhook bodies): one event a line
        lines = open(path, "rb").read().decode("utf-8").split("\n")
        lines = [lines[i] for i in rng.permutation(len(lines)) if lines[i].strip()]
        cuts = _cuts(len(lines), parts, rng)
        for i in range(len(cuts) - 1):
            p = os.path.join(folder, f"{i}_{name}")
            open(p, "wb").write(("\n".join(lines[cuts[i]:cuts[i + 1]]) + "\n").encode("utf-8"))
            out.append(p)
    return out


def dq_counts(run) -> dict:
    dq = run.frame("data_quality.csv")
    return dq.groupby(["severity", "code"]).size().to_dict()


@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), parts=st.integers(1, 4))
def test_any_row_order_and_file_split_gives_identical_outputs(seed, parts, demo, tmp_path_factory):
    rng = np.random.default_rng(seed)
    folder = str(tmp_path_factory.mktemp("split"))
    files = []
    for i, path in enumerate(demo.message_files):
        sub = os.path.join(folder, f"f{i}")
        os.makedirs(sub)
        files += split_file(path, parts, rng, sub)
    files = [files[i] for i in rng.permutation(len(files))]
    run = run_cli(os.path.join(folder, "out"), **demo.options(messages=files))
    assert run.exit_code == 0, run.stderr
    assert run.text("billable_units.csv") == demo.reference.text("billable_units.csv")
    assert run.text("variance.csv") == demo.reference.text("variance.csv")
    assert dq_counts(run) == dq_counts(demo.reference)
    RESULTS["examples"] += 1


def test_rerun_is_byte_identical(demo, tmp_path):
    """The same command twice: every CSV identical, and the Parquet too."""
    run = run_cli(str(tmp_path / "again"), **demo.options())
    for name in ("billable_units.csv", "variance.csv", "data_quality.csv", "billable_units.parquet"):
        assert run.text(name) == demo.reference.text(name), name
    units = demo.reference.frame("billable_units.csv")
    print(f"\ndeterminism: {RESULTS['examples']} permuted/split runs identical; reference has "
          f"{len(units)} units, {len(demo.reference.frame('variance.csv'))} variance rows")
    assert len(units) > 100
