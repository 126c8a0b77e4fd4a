"""Data-quality findings: the record type and the collector every step reports into.

A finding is one row of ``data_quality.csv``: ``severity`` (``error`` = the row was
excluded, ``warning`` = used with a caveat), ``code`` (snake_case reason), ``source``
(file or object), ``row`` (1-based data row in that source, empty when not row-bound),
``column``, ``message_id`` and ``detail``.

Findings are added one at a time (:meth:`QualityLog.add`) or a whole vector at a time
(:meth:`QualityLog.add_many`, for millions of rows without a Python loop).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .contracts import DQ_COLUMNS, DQ_SEVERITIES


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str
    source: str = ""
    row: int | None = None
    column: str = ""
    message_id: str = ""
    detail: str = ""


class InputError(Exception):
    """An input that cannot be used at all (exit status 2). The message names file, row and column."""

    def __init__(self, message: str, *, source: str = "", row: int | None = None, column: str = ""):
        where = ", ".join(p for p in (source and f"file {source}", row is not None and f"row {row}" or "",
                                      column and f"column {column!r}") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.source, self.row, self.column = source, row, column


#: the order of the findings table (its columns, ``row`` missing first)
_SORT_KEYS = ("severity", "code", "source", "row", "column", "message_id", "detail")


class QualityLog:
    """Collects findings; cheap to add to in bulk; renders the contract's table."""

    def __init__(self) -> None:
        self._singles: list[Finding] = []
        self._chunks: list[dict[str, object]] = []     # per add_many: column -> array (one length)
        self._frame_cache: tuple[tuple[int, int], pd.DataFrame] | None = None   # see frame()

    # ------------------------------------------------------------------ adding
    def add(self, severity: str, code: str, *, source: str = "", row: int | None = None, column: str = "",
            message_id: str = "", detail: str = "") -> None:
        _check(severity, code)
        self._singles.append(Finding(severity, code, source, None if row is None else int(row), column,
                                     message_id or "", detail))

    def add_many(self, severity: str, code: str, *, source=None, row=None, column="", message_id=None,
                 detail="", n: int | None = None) -> None:
        """Add one finding per element. Every argument may be a scalar or an array-like of one length.

        The columns are kept as arrays (``row`` as a nullable ``Int64`` array; integer arrays are taken
        as they are) and become one table only when :meth:`frame` is read: a step's few findings cost
        no DataFrame of their own."""
        _check(severity, code)
        lengths = {len(v) for v in (source, row, message_id, detail, column)
                   if v is not None and not isinstance(v, str) and hasattr(v, "__len__")}
        if n is not None:
            lengths.add(n)
        if len(lengths) > 1:
            raise ValueError(f"add_many({code}): arguments of different lengths {sorted(lengths)}")
        size = lengths.pop() if lengths else 1
        if size == 0:
            return

        def col(value, default=""):
            if value is None:
                return np.full(size, default, dtype=object)
            if isinstance(value, str) or not hasattr(value, "__len__"):
                return np.full(size, value, dtype=object)
            return np.asarray(value, dtype=object)

        if row is None:
            rows = pd.array([None] * size, dtype="Int64")
        elif pd.api.types.is_integer_dtype(getattr(row, "dtype", None)):
            rows = pd.array(row, dtype="Int64")
        else:
            rows = pd.array(col(row, None), dtype="Int64")
        self._chunks.append({"severity": severity, "code": code, "source": col(source), "row": rows,
                             "column": col(column), "message_id": col(message_id), "detail": col(detail)})

    def extend(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            self.add(f.severity, f.code, source=f.source, row=f.row, column=f.column, message_id=f.message_id,
                     detail=f.detail)

    def merge(self, other: "QualityLog") -> None:
        self._singles.extend(other._singles)
        self._chunks.extend(other._chunks)

    # ------------------------------------------------------------------ reading
    def frame(self) -> pd.DataFrame:
        """All findings in the contract's column order and fixed row order
        (``severity, code, source, row``, then ``column, message_id, detail`` for determinism).

        Findings are only ever appended, so the sorted frame is kept until the next one arrives (a run
        reads it several times: conservation, run record, publishing); each caller gets its own copy."""
        key = (len(self._singles), len(self._chunks))
        cached = self._frame_cache
        if cached is None or cached[0] != key:
            cached = self._frame_cache = (key, self._sorted_frame())
        return cached[1].copy(deep=False)

    def _sorted_frame(self) -> pd.DataFrame:
        parts = [{c: pa.repeat(chunk[c], len(chunk["row"])).cast(pa.large_string()) if c in ("severity", "code")
                  else chunk[c] for c in DQ_COLUMNS} for chunk in self._chunks]
        if self._singles:
            parts.append({
                "severity": [f.severity for f in self._singles], "code": [f.code for f in self._singles],
                "source": [f.source for f in self._singles],
                "row": pd.array([f.row for f in self._singles], dtype="Int64"),
                "column": [f.column for f in self._singles], "message_id": [f.message_id for f in self._singles],
                "detail": [f.detail for f in self._singles],
            })
        if not parts:
            out = pd.DataFrame({c: pd.Series(dtype=object) for c in DQ_COLUMNS})
            out["row"] = out["row"].astype("Int64")
            return out
        columns = {c: pa.concat_arrays([_text(part[c]) for part in parts]) for c in DQ_COLUMNS if c != "row"}
        rows, missing = _concat_rows([pd.array(part["row"], dtype="Int64") for part in parts])
        # every column is a key (rows in the same place are equal, so any sort gives one order): dense
        # ranks of the strings by Arrow, then one integer lexsort (Arrow's multi-column sort is slow on
        # ties); a missing row number comes first
        keys = {c: [_string_ranks(columns[c])] for c in columns}
        keys["row"] = [~missing, rows]
        taken = np.lexsort([k for c in reversed(_SORT_KEYS) for k in reversed(keys[c])])
        order = pa.array(taken)
        return pd.DataFrame({c: pd.arrays.IntegerArray(rows[taken], missing[taken]) if c == "row"
                             else pd.Series(pd.array(pc.take(columns[c], order), dtype="str")) for c in DQ_COLUMNS})

    def counts(self) -> dict[str, int]:
        """Number of findings per ``severity:code``."""
        f = self.frame()
        if f.empty:
            return {}
        s = f.groupby(["severity", "code"]).size()
        return {f"{sev}:{code}": int(n) for (sev, code), n in s.items()}

    def __len__(self) -> int:
        return len(self._singles) + sum(len(chunk["row"]) for chunk in self._chunks)

    def has(self, code: str) -> bool:
        return any(f.code == code for f in self._singles) or any(chunk["code"] == code for chunk in self._chunks)


def _text(values) -> pa.Array:
    """``values`` (Arrow strings or objects) as Arrow ``large_string``, ``""`` for None/NaN (pandas'
    ``fillna("").astype(str)``): one Arrow conversion when every value is a string or missing, else by
    pandas (e.g. numbers)."""
    if isinstance(values, pa.Array):
        return values
    values = np.asarray(values, dtype=object)
    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(pd.Series(values, dtype=object).fillna("").astype(str).to_numpy(dtype=object),
                        type=pa.large_string())
    return pc.fill_null(arr, "")


def _string_ranks(arr: pa.Array) -> np.ndarray:
    """Per string, the rank of its value among the distinct values (code point order): the distinct
    values are sorted, not every string (a findings column holds few distinct values)."""
    encoded = pc.dictionary_encode(arr)
    order = np.asarray(pc.sort_indices(encoded.dictionary), dtype=np.int64)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank[np.asarray(encoded.indices, dtype=np.int64)]


def _concat_rows(arrays: list) -> tuple[np.ndarray, np.ndarray]:
    """The ``Int64`` arrays ``arrays`` one after the other: int64 values (0 where missing) and the mask
    of missing values."""
    values = np.concatenate([a.to_numpy(dtype=np.int64, na_value=0) for a in arrays])
    return values, np.concatenate([np.asarray(a.isna(), dtype=bool) for a in arrays])


def _check(severity: str, code: str) -> None:
    if severity not in DQ_SEVERITIES:
        raise ValueError(f"severity {severity!r} not in {DQ_SEVERITIES}")
    if not code or not code.replace("_", "").isalnum() or code.lower() != code:
        raise ValueError(f"data-quality code {code!r} is not snake_case")
