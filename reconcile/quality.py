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


class QualityLog:
    """Collects findings; cheap to add to in bulk; renders the contract's table."""

    def __init__(self) -> None:
        self._singles: list[Finding] = []
        self._frames: list[pd.DataFrame] = []
        self._frame_cache: tuple[tuple[int, int], pd.DataFrame] | None = None   # see frame()

    # ------------------------------------------------------------------ adding
    def add(self, severity: str, code: str, *, source: str = "", row: int | None = None, column: str = "",
            message_id: str = "", detail: str = "") -> None:
        _check(severity, code)
        self._singles.append(Finding(severity, code, source, None if row is None else int(row), column,
                                     message_id or "", detail))

    def add_many(self, severity: str, code: str, *, source=None, row=None, column="", message_id=None,
                 detail="", n: int | None = None) -> None:
        """Add one finding per element. Every argument may be a scalar or an array-like of one length."""
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

        rows = pd.array(col(row, None), dtype="Int64") if row is not None else pd.array([None] * size, dtype="Int64")
        self._frames.append(pd.DataFrame({
            "severity": severity, "code": code, "source": col(source), "row": rows, "column": col(column),
            "message_id": col(message_id), "detail": col(detail),
        }))

    def extend(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            self.add(f.severity, f.code, source=f.source, row=f.row, column=f.column, message_id=f.message_id,
                     detail=f.detail)

    def merge(self, other: "QualityLog") -> None:
        self._singles.extend(other._singles)
        self._frames.extend(other._frames)

    # ------------------------------------------------------------------ reading
    def frame(self) -> pd.DataFrame:
        """All findings in the contract's column order and fixed row order
        (``severity, code, source, row``, then ``column, message_id, detail`` for determinism).

        Findings are only ever appended, so the sorted frame is kept until the next one arrives (a run
        reads it several times: conservation, run record, publishing); each caller gets its own copy."""
        key = (len(self._singles), len(self._frames))
        cached = self._frame_cache
        if cached is None or cached[0] != key:
            cached = self._frame_cache = (key, self._sorted_frame())
        return cached[1].copy(deep=False)

    def _sorted_frame(self) -> pd.DataFrame:
        parts = list(self._frames)
        if self._singles:
            parts.append(pd.DataFrame({
                "severity": [f.severity for f in self._singles], "code": [f.code for f in self._singles],
                "source": [f.source for f in self._singles],
                "row": pd.array([f.row for f in self._singles], dtype="Int64"),
                "column": [f.column for f in self._singles], "message_id": [f.message_id for f in self._singles],
                "detail": [f.detail for f in self._singles],
            }))
        if not parts:
            out = pd.DataFrame({c: pd.Series(dtype=object) for c in DQ_COLUMNS})
            out["row"] = out["row"].astype("Int64")
            return out
        out = pd.concat(parts, ignore_index=True)[DQ_COLUMNS]
        for c in DQ_COLUMNS:
            if c != "row":
                out[c] = out[c].fillna("").astype(str)
        out = out.sort_values(["severity", "code", "source", "row", "column", "message_id", "detail"],
                              kind="stable", na_position="first").reset_index(drop=True)
        return out

    def counts(self) -> dict[str, int]:
        """Number of findings per ``severity:code``."""
        f = self.frame()
        if f.empty:
            return {}
        s = f.groupby(["severity", "code"]).size()
        return {f"{sev}:{code}": int(n) for (sev, code), n in s.items()}

    def __len__(self) -> int:
        return len(self._singles) + sum(len(f) for f in self._frames)

    def has(self, code: str) -> bool:
        return any(f.code == code for f in self._singles) or any((f["code"] == code).any() for f in self._frames)


def _check(severity: str, code: str) -> None:
    if severity not in DQ_SEVERITIES:
        raise ValueError(f"severity {severity!r} not in {DQ_SEVERITIES}")
    if not code or not code.replace("_", "").isalnum() or code.lower() != code:
        raise ValueError(f"data-quality code {code!r} is not snake_case")
