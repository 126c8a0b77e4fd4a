"""The reconciliation warehouse: DDL migrations and idempotent slice publishing (contracts.md,
"warehouse tables").

A *slice* is ``(waba_id, billing_month, scope)``; a full run has scope ``full``, a dispute rerun
``dispute:<id>``. :meth:`Warehouse.publish` replaces the run's slices in ONE transaction (insert the
``recon_run`` row, delete the slices' rows in ``recon_variance`` / ``recon_unit``, insert the new rows),
so a reader sees either the old slice or the new one; on failure the transaction is rolled back and a
``recon_run`` row with status ``failed`` is recorded in a separate transaction. Because the scope is
part of the slice key, a dispute rerun never deletes ``full`` rows.

Back ends:

* embedded DuckDB (``None`` → ``duckdb:///./reconcile.duckdb``, ``*.duckdb`` paths, ``duckdb:///path``):
  the duckdb Python API, frames loaded natively from Arrow;
* PostgreSQL (``postgresql://…``, ``postgresql+psycopg://…``): a SQLAlchemy 2 engine on psycopg 3; rows are
  bulk-loaded with ``COPY … FROM STDIN`` (CSV rendered by Arrow) inside the publishing transaction.

DDL lives in ordered plain SQL files under ``sql/`` (``NNN_name.sql`` for both dialects,
``NNN_name.postgresql.sql`` / ``NNN_name.duckdb.sql`` for one); ``schema_migrations`` records the applied
files. Values are always bound parameters; the only identifiers formatted into SQL are the fixed column
names of this module and a schema name validated against ``[a-z_][a-z0-9_]*``.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..contracts import UNIT_COLUMNS, VARIANCE_COLUMNS, Period
from .money import round_half_up

DEFAULT_URL = "duckdb:///./reconcile.duckdb"
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
MONEY_TYPE = pa.decimal128(18, 6)
MONEY_PLACES = 6
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION = re.compile(r"^(\d{3,})_[A-Za-z0-9_]+(?:\.(postgresql|duckdb))?\.sql$")

RUN_COLUMNS = ["run_id", "started_at", "finished_at", "period", "accounts", "scope", "tool_version",
               "input_checksums", "status", "counts", "error"]
VARIANCE_TABLE_COLUMNS = VARIANCE_COLUMNS + ["run_id", "scope"]
UNIT_TABLE_COLUMNS = UNIT_COLUMNS + ["run_id", "scope"]
_VARIANCE_MONEY = ("expected_amount", "invoiced_amount", "amount_diff")
_UNIT_MONEY = ("rate", "amount")
_INTEGERS = {"expected_quantity": pa.int64(), "invoiced_quantity": pa.int64(), "quantity_diff": pa.int64(),
             "message_count": pa.int32()}
_INSTANTS = ("opened_at", "expires_at")


class WarehouseError(RuntimeError):
    """A publish that cannot be done (bad URL, rows outside the declared slices, …)."""


# --------------------------------------------------------------------------- frames → Arrow
def to_arrow(frame: pd.DataFrame, columns: Sequence[str], *, run_id: str, scope: str,
             money: Iterable[str]) -> pa.Table:
    """The warehouse shape of ``frame``: strings, int64/int32, ``timestamp[us, UTC]``, money as
    ``decimal128(18, 6)`` (rounded half-up to 6 places; NaN → NULL, never 0)."""
    money = set(money)
    arrays, fields = [], []
    n = len(frame)
    for name in columns:
        if name == "run_id":
            array = pa.array(np.full(n, run_id, dtype=object), type=pa.string())
        elif name == "scope":
            array = pa.array(np.full(n, scope, dtype=object), type=pa.string())
        elif name in money:
            values = round_half_up(frame[name].to_numpy(dtype="float64", na_value=np.nan), MONEY_PLACES)
            array = pc.cast(pa.array(values, from_pandas=True), MONEY_TYPE)
        elif name in _INTEGERS:
            array = pa.array(frame[name].to_numpy(dtype="int64"), type=pa.int64()).cast(_INTEGERS[name])
        elif name in _INSTANTS:
            instants = pd.to_datetime(frame[name], utc=True)
            array = pa.array(instants.dt.as_unit("us") if n else instants, type=pa.timestamp("us", tz="UTC"),
                             from_pandas=True)
        else:
            values = frame[name]
            try:
                array = pa.array(values, type=pa.string(), from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # non-string objects: render them as text
                array = pa.array(values.astype(str).to_numpy(dtype=object), type=pa.string())
            if isinstance(array, pa.ChunkedArray):
                array = array.combine_chunks()
            array = pc.fill_null(array, "")
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _json(value: Any) -> str:
    return json.dumps(value if value is not None else {}, sort_keys=True, default=str)


def _instant(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def run_row(run_record: dict, *, scope: str, status: str, error: str = "") -> dict:
    """The ``recon_run`` row of a run record (run.json)."""
    accounts = run_record.get("accounts") or []
    if not isinstance(accounts, str):
        accounts = ",".join(str(a) for a in accounts)
    inputs = [{k: item.get(k) for k in ("path", "rows", "sha256")} if isinstance(item, dict) else item
              for item in (run_record.get("inputs") or [])]
    return {
        "run_id": str(run_record["run_id"]),
        "started_at": _instant(run_record.get("started_at")),
        "finished_at": _instant(run_record.get("finished_at")) or datetime.now(timezone.utc),
        "period": str(run_record.get("period", "")),
        "accounts": accounts,
        "scope": scope,
        "tool_version": str(run_record.get("tool_version", "")),
        "input_checksums": _json(inputs),
        "status": status,
        "counts": _json(run_record.get("counts")),
        "error": error[:4000],
    }


# --------------------------------------------------------------------------- the warehouse
class Warehouse:
    """Writer (and small reader) of the reconciliation tables on DuckDB or PostgreSQL."""

    def __init__(self, *, dialect: str, duckdb_path: str | None = None, engine=None, schema: str | None = None,
                 sql_dir: Path | str | None = None, url: str = ""):
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise WarehouseError(f"schema name {schema!r} is not a lower-case SQL identifier")
        self.dialect, self.duckdb_path, self.engine, self.schema = dialect, duckdb_path, engine, schema
        self.sql_dir = Path(sql_dir) if sql_dir else SQL_DIR
        self.url = url

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_url(cls, url: str | None, *, schema: str | None = None, sql_dir: Path | str | None = None) -> "Warehouse":
        """``None`` → ``duckdb:///./reconcile.duckdb``; ``*.duckdb`` or ``duckdb:///path`` → embedded DuckDB;
        ``postgresql://`` / ``postgresql+psycopg://`` / ``postgres://`` → PostgreSQL via psycopg 3."""
        url = url or DEFAULT_URL
        if url.startswith("duckdb://"):
            path = url[len("duckdb://"):]
            path = path[1:] if path.startswith("/") else path  # duckdb:///rel → rel, duckdb:////abs → /abs
            return cls(dialect="duckdb", duckdb_path=path or ":memory:", schema=schema, sql_dir=sql_dir, url=url)
        if url.endswith(".duckdb") and "://" not in url:
            return cls(dialect="duckdb", duckdb_path=url, schema=schema, sql_dir=sql_dir, url=url)
        if re.match(r"^postgres(ql)?(\+psycopg)?://", url):
            from sqlalchemy import create_engine

            sa_url = re.sub(r"^postgres(ql)?(\+psycopg)?://", "postgresql+psycopg://", url)
            connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
            engine = create_engine(sa_url, connect_args=connect_args, pool_pre_ping=True)
            return cls(dialect="postgresql", engine=engine, schema=schema, sql_dir=sql_dir, url=url)
        raise WarehouseError(f"unsupported warehouse URL {url!r}: use a .duckdb path, duckdb:///PATH or "
                             f"postgresql://…")

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    # ------------------------------------------------------------------ connections
    @contextmanager
    def _transaction(self):
        """Yields ``(execute, load)``: ``execute(sql, params)`` with ``:name`` parameters, and
        ``load(table, arrow_table)`` to bulk-insert; committed at the end, rolled back on error."""
        if self.dialect == "duckdb":
            import duckdb

            if self.duckdb_path not in (":memory:",):
                Path(self.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(self.duckdb_path)
            try:
                if self.schema:
                    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    con.execute(f"SET schema = '{self.schema}'")
                con.execute("BEGIN TRANSACTION")

                def execute(sql: str, params: dict | None = None):
                    return con.execute(re.sub(r"(?<!:):([a-z_]+)", r"$\1", sql), params or {})

                def load(table: str, data: pa.Table):
                    name = f"incoming_{table}"
                    con.register(name, data)
                    columns = ", ".join(data.column_names)
                    con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {name}")
                    con.unregister(name)  # (on error the connection is closed, which drops the view)

                try:
                    yield execute, load
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            finally:
                con.close()
        else:
            from sqlalchemy import text

            with self.engine.begin() as conn:
                def execute(sql: str, params: dict | None = None):
                    return conn.execute(text(sql), params or {})

                def load(table: str, data: pa.Table):
                    # COPY straight into the table: it is inside the publishing transaction, right after the
                    # slice's rows were deleted, so nobody sees a half-loaded slice (a staging temp table
                    # would only add a second copy of every row).
                    raw = conn.connection.driver_connection
                    columns = ", ".join(data.column_names)
                    buffer = io.BytesIO()
                    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=True))
                    with raw.cursor() as cursor:
                        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                            view = buffer.getbuffer()
                            for start in range(0, len(view), 1 << 22):
                                copy.write(view[start:start + (1 << 22)])

                yield execute, load

    # ------------------------------------------------------------------ schema
    def migration_files(self) -> list[Path]:
        """The ordered DDL files of this dialect (``NNN_name.sql`` plus ``NNN_name.<dialect>.sql``)."""
        if not self.sql_dir.is_dir():
            raise WarehouseError(f"DDL folder {self.sql_dir} not found")
        files = []
        for path in sorted(self.sql_dir.iterdir()):
            match = _MIGRATION.match(path.name)
            if match and match.group(2) in (None, self.dialect):
                files.append(path)
        return files

    def ensure_schema(self) -> list[str]:
        """Create the schema (if named) and apply the DDL files not yet in ``schema_migrations``;
        returns the names of the files applied now."""
        if self.dialect == "postgresql" and self.schema:
            from sqlalchemy import text

            with self.engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
        applied_now = []
        with self._transaction() as (execute, _):
            if self.dialect == "postgresql":
                execute("SELECT pg_advisory_xact_lock(:key)", {"key": 7_201_987_001})
            execute("CREATE TABLE IF NOT EXISTS schema_migrations (filename text PRIMARY KEY, sha256 text NOT NULL, "
                    "applied_at timestamptz NOT NULL)")
            done = {row[0] for row in execute("SELECT filename FROM schema_migrations").fetchall()}
            for path in self.migration_files():
                if path.name in done:
                    continue
                sql = path.read_text(encoding="utf-8")
                for statement in _statements(sql):
                    execute(statement)
                execute("INSERT INTO schema_migrations (filename, sha256, applied_at) VALUES (:f, :h, :t)",
                        {"f": path.name, "h": hashlib.sha256(sql.encode()).hexdigest(),
                         "t": datetime.now(timezone.utc)})
                applied_now.append(path.name)
        return applied_now

    # ------------------------------------------------------------------ publishing
    def publish(self, run_record: dict, variance: pd.DataFrame, units: pd.DataFrame, *, scope: str = "full",
                slices: Sequence[tuple[str, str]] | None = None,
                verify: Callable[[dict[str, float]], None] | None = None) -> None:
        """Replace the run's slices ``(waba_id, billing_month, scope)`` in one transaction.

        ``slices`` defaults to every account of ``run_record["accounts"]`` × every month of
        ``run_record["period"]`` (so an account-month that has no rows any more is emptied), or, when the
        record lacks them, to the ``(waba_id, billing_month)`` pairs present in the frames. Rows outside the
        slices are refused. ``run_record["run_id"]`` is generated (and stored back) when missing.
        On failure: rollback, a ``failed`` recon_run row (best effort), and the error is re-raised.
        ``verify``, when given, receives the unit amounts per currency as loaded (read back inside the
        transaction, before the commit); raising from it rolls the slice back.
        """
        if not scope:
            raise WarehouseError("scope must not be empty ('full' or 'dispute:<id>')")
        run_record.setdefault("run_id", uuid.uuid4().hex)
        try:
            wanted = _slices(run_record, variance, units, slices)
            _check_within(variance, wanted, "variance")
            _check_within(units, wanted, "units")
            _check_unique(units, ["waba_id", "billing_month", "unit_id"], "units")
            _check_unique(variance, ["waba_id", "billing_month", "market", "pricing_model", "category",
                                     "pricing_type"], "variance")
            variance_rows = to_arrow(variance, VARIANCE_TABLE_COLUMNS, run_id=run_record["run_id"], scope=scope,
                                     money=_VARIANCE_MONEY)
            unit_rows = to_arrow(units, UNIT_TABLE_COLUMNS, run_id=run_record["run_id"], scope=scope,
                                 money=_UNIT_MONEY)
            with self._transaction() as (execute, load):
                self._insert_run(execute, run_row(run_record, scope=scope, status="published"))
                for waba_id, billing_month in wanted:
                    params = {"waba_id": waba_id, "billing_month": billing_month, "scope": scope}
                    for table in ("recon_variance", "recon_unit"):
                        execute(f"DELETE FROM {table} WHERE waba_id = :waba_id AND billing_month = :billing_month "
                                f"AND scope = :scope", params)
                if variance_rows.num_rows:
                    load("recon_variance", variance_rows)
                if unit_rows.num_rows:
                    load("recon_unit", unit_rows)
                if verify is not None:
                    loaded = execute("SELECT currency, SUM(amount) FROM recon_unit WHERE run_id = :run_id "
                                     "GROUP BY currency", {"run_id": run_record["run_id"]}).fetchall()
                    verify({str(cur): float(total) for cur, total in loaded if total is not None})
        except Exception as error:
            try:
                self.record_failed_run(run_record, scope=scope, error=f"{type(error).__name__}: {error}")
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            raise

    def record_failed_run(self, run_record: dict, *, scope: str | None = None, error: str = "") -> None:
        """Record (or turn into) a ``failed`` recon_run row, in its own transaction."""
        run_record.setdefault("run_id", uuid.uuid4().hex)
        row = run_row(run_record, scope=scope or run_record.get("scope") or "full", status="failed", error=error)
        with self._transaction() as (execute, _):
            self._insert_run(execute, row)

    @staticmethod
    def _insert_run(execute, row: dict) -> None:
        columns = ", ".join(RUN_COLUMNS)
        values = ", ".join(f":{c}" for c in RUN_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS if c != "run_id")
        execute(f"INSERT INTO recon_run ({columns}) VALUES ({values}) ON CONFLICT (run_id) DO UPDATE SET {updates}",
                row)

    # ------------------------------------------------------------------ reading (tests, operations)
    def query(self, sql: str, params: dict | None = None) -> list[dict]:
        """Run a read query (``:name`` parameters); rows as dicts with database types (numeric → Decimal)."""
        with self._transaction() as (execute, _):
            result = execute(sql, params)
            if self.dialect == "duckdb":
                columns = [d[0] for d in result.description]
                return [dict(zip(columns, row)) for row in result.fetchall()]
            return [dict(row._mapping) for row in result.fetchall()]

    def read_slice(self, table: str, waba_id: str, billing_month: str, scope: str = "full") -> list[dict]:
        if table not in ("recon_variance", "recon_unit"):
            raise WarehouseError(f"unknown table {table!r}")
        order = "market, pricing_model, category, pricing_type" if table == "recon_variance" else "opened_at, unit_id"
        return self.query(f"SELECT * FROM {table} WHERE waba_id = :w AND billing_month = :m AND scope = :s "
                          f"ORDER BY {order}", {"w": waba_id, "m": billing_month, "s": scope})

    def runs(self) -> list[dict]:
        return self.query("SELECT * FROM recon_run ORDER BY finished_at, run_id")


# --------------------------------------------------------------------------- helpers
def _statements(sql: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _slices(run_record: dict, variance: pd.DataFrame, units: pd.DataFrame,
            slices: Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
    if slices is not None:
        return sorted({(str(w), str(m)) for w, m in slices})
    accounts, period = run_record.get("accounts"), run_record.get("period")
    if accounts and period:
        accounts = accounts.split(",") if isinstance(accounts, str) else accounts
        return sorted({(str(w), m) for w in accounts for m in Period.parse(str(period)).months})
    pairs = set()
    for frame in (variance, units):
        if len(frame):
            pairs |= set(map(tuple, frame[["waba_id", "billing_month"]].drop_duplicates().astype(str).to_numpy()))
    return sorted(pairs)


def _check_unique(frame: pd.DataFrame, key: list[str], what: str) -> None:
    if frame.empty:
        return
    duplicated = frame.duplicated(subset=key, keep=False)
    if duplicated.any():
        example = frame.loc[duplicated, key].head(1).to_dict("records")[0]
        raise WarehouseError(f"{what}: {int(duplicated.sum())} rows share a key {key}, e.g. {example}")


def _check_within(frame: pd.DataFrame, slices: list[tuple[str, str]], what: str) -> None:
    if frame.empty:
        return
    present = frame[["waba_id", "billing_month"]].drop_duplicates().astype(str)
    outside = [tuple(p) for p in present.to_numpy() if tuple(p) not in set(slices)]
    if outside:
        raise WarehouseError(f"{what} rows outside the slices being published: {sorted(outside)[:5]}")
