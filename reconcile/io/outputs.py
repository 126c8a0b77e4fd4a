"""Writers of the run's output tables (CSV and Parquet) in the exact contract formats.

CSV: UTF-8, header, ``,`` separator, empty string for empty values, instants as
``2025-07-01T10:00:00Z``, money as plain decimals with 4 places (half-up, rounded only
here), rows in the contract's fixed order so reruns are byte-identical.
Parquet: money as ``decimal128(18, 6)``, instants as ``timestamp[us, UTC]``.

Both are written through Arrow (CSV via DuckDB's writer, which quotes only when needed);
nothing here loops over rows in Python.
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..contracts import DQ_COLUMNS, UNIT_COLUMNS, VARIANCE_COLUMNS
from ..report.money import money_text

_TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
UNIT_MONEY = ("rate", "amount")
VARIANCE_MONEY = ("expected_amount", "invoiced_amount", "amount_diff")
VARIANCE_INTS = ("expected_quantity", "invoiced_quantity", "quantity_diff")


def instant_strings(values) -> pa.Array:
    """ISO 8601 UTC with ``Z`` and whole seconds; NaT → null (empty)."""
    s = pd.Series(values)
    if not isinstance(s.dtype, pd.DatetimeTZDtype):
        s = pd.to_datetime(s, utc=True)
    arr = pa.array(s.dt.floor("s").dt.tz_convert("UTC"), type=pa.timestamp("s", tz="UTC"))
    return pc.strftime(arr, format=_TS_FORMAT)


def _text(values) -> pa.Array:
    arr = getattr(getattr(values, "array", None), "_pa_array", None)
    if arr is not None and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        # Arrow-backed strings: no Python object per value
        arr = pc.fill_null(arr, "").cast(pa.string())
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    else:
        arr = pa.array(pd.Series(values, dtype=object).where(lambda s: s.notna(), "").astype(str), type=pa.string())
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _ints(values) -> pa.Array:
    return pa.array(pd.Series(values).astype("Int64"), type=pa.int64())


def units_csv_table(units: pd.DataFrame) -> pa.Table:
    cols = {}
    for c in UNIT_COLUMNS:
        if c in ("opened_at", "expires_at"):
            cols[c] = instant_strings(units[c])
        elif c in UNIT_MONEY:
            cols[c] = money_text(units[c])
        elif c == "message_count":
            cols[c] = _ints(units[c])
        else:
            cols[c] = _text(units[c])
    return pa.table(cols)


def variance_csv_table(variance: pd.DataFrame) -> pa.Table:
    cols = {}
    for c in VARIANCE_COLUMNS:
        if c in VARIANCE_MONEY:
            cols[c] = money_text(variance[c])
        elif c in VARIANCE_INTS:
            cols[c] = _ints(variance[c])
        else:
            cols[c] = _text(variance[c])
    return pa.table(cols)


def quality_csv_table(findings: pd.DataFrame) -> pa.Table:
    cols = {c: (_ints(findings[c]) if c == "row" else _text(findings[c])) for c in DQ_COLUMNS}
    return pa.table(cols)


def write_csv(table: pa.Table, path: str) -> None:
    """Write an Arrow table of strings/ints as CSV (quotes only where needed; nulls empty)."""
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = true")
        con.register("out_table", table)
        con.execute(f"COPY out_table TO '{_sql_path(path)}' (HEADER, DELIMITER ',', QUOTE '\"')")
    finally:
        con.close()


def _sql_path(path: str) -> str:
    return path.replace("'", "''")


def units_parquet_table(units: pd.DataFrame) -> pa.Table:
    """Units with money as decimal128(18, 6) and instants as timestamp[us, UTC]."""
    cols = {}
    for c in UNIT_COLUMNS:
        if c in ("opened_at", "expires_at"):
            cols[c] = pa.array(pd.to_datetime(units[c], utc=True), type=pa.timestamp("us", tz="UTC"))
        elif c in UNIT_MONEY:
            cols[c] = decimal_array(units[c])
        elif c == "message_count":
            cols[c] = _ints(units[c])
        else:
            cols[c] = pa.array(units[c].astype(str) if len(units) else [], type=pa.string())
    return pa.table(cols)


def decimal_array(values, precision: int = 18, scale: int = 6) -> pa.Array:
    """float64 → decimal128(precision, scale), exact to ``scale`` places (half-up); NaN → null."""
    x = np.asarray(values, dtype="float64")
    missing = np.isnan(x)
    magnitude = np.floor(np.round(np.abs(np.where(missing, 0.0, x)) * 10.0 ** scale, 3) + 0.5)
    unscaled = pa.array((np.sign(np.where(missing, 0.0, x)) * magnitude).astype("int64"), mask=missing).cast(pa.decimal128(38, 0))
    # a decimal128 buffer holds the unscaled integer: reinterpret it with the wanted scale
    return pa.Array.from_buffers(pa.decimal128(precision, scale), len(unscaled), unscaled.buffers(),
                                 null_count=unscaled.null_count)


def write_parquet(table: pa.Table, path: str) -> None:
    pq.write_table(table, path, compression="zstd")
