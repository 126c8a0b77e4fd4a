"""One reconciliation run: read → engine → compare → publish.

``run(config)`` is the single entry used by the CLI, the Airflow DAGs and the tests.
The stages are also exposed one by one (``load_inputs``, ``compute``, ``reconcile_variance``,
``publish``) so that the scale-out DAG can run the engine on shards and join the rest.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

import pandas as pd

from . import __version__
from .contracts import DEFAULT_EXCEL_MAX_UNITS, DEFAULT_TOLERANCE, Period, VARIANCE_STATUSES
from .progress import LogProgress, Progress
from .quality import InputError, QualityLog
from .run_settings import run_settings

FULL_SCOPE = "full"


@dataclass
class RunConfig:
    """Everything a run needs; mirrors the ``reconcile run`` command line."""

    messages: list[str]
    accounts: str
    rate_cards: list[str]
    invoices: list[str]
    period: Period
    market_map: str | None = None
    wabas: list[str] = field(default_factory=list)
    out: str | None = None                 # default ./out/<period>
    warehouse: str | None = None           # default duckdb ./reconcile.duckdb; "none" disables
    tolerance: float = DEFAULT_TOLERANCE
    relative_tolerance: float | None = None
    excel_max_units: int = DEFAULT_EXCEL_MAX_UNITS
    fail_on_variance: bool = False
    s3_endpoint_url: str | None = None
    dispute_id: str | None = None          # scope dispute:<id> when set
    dispute_users: list[str] = field(default_factory=list)
    dispute_phone_number_ids: list[str] = field(default_factory=list)

    @property
    def scope(self) -> str:
        return f"dispute:{self.dispute_id}" if self.dispute_id else FULL_SCOPE

    @property
    def out_location(self) -> str:
        return self.out or os.path.join("out", self.period.slug)


@dataclass
class Inputs:
    messages: pd.DataFrame
    accounts: pd.DataFrame
    rates: pd.DataFrame
    market_map: pd.DataFrame
    invoice_lines: pd.DataFrame
    infos: list = field(default_factory=list)
    all_accounts: pd.DataFrame | None = None      # the whole accounts file (``accounts`` = those in scope)
    out_of_scope: dict = field(default_factory=dict)   # invoice lines left out because of --waba
    message_rows: "MessageRows | None" = None


@dataclass
class RunResult:
    run_record: dict
    units: pd.DataFrame
    variance: pd.DataFrame
    quality: QualityLog
    out: str
    exit_code: int


# --------------------------------------------------------------------------- stages
def load_reference(config: RunConfig, quality: QualityLog, all_accounts: pd.DataFrame | None = None) -> Inputs:
    """Read everything but the message logs: accounts (only those of ``--waba`` when given),
    market map, rate cards and invoice lines. Invoice lines of accounts outside ``--waba`` are
    out of scope: left out and counted, not reported as errors. ``all_accounts``: the accounts file
    when the caller has read it already."""
    from .io import locations, tables
    from .rules.markets import load_market_map

    if config.s3_endpoint_url:
        locations.set_default_endpoint(config.s3_endpoint_url)
    if all_accounts is None:
        all_accounts = tables.read_accounts(config.accounts, quality)
    accounts = select_accounts(all_accounts, config)
    market_map = load_market_map(config.market_map)
    rates, rate_infos = tables.read_rate_cards(config.rate_cards, quality)
    invoice_lines, invoice_infos = tables.read_invoice(config.invoices, quality, accounts=all_accounts,
                                                       market_map=market_map, period=config.period)
    in_scope = invoice_lines["waba_id"].isin(accounts["waba_id"])
    account_files = locations.list_files(config.accounts, tables.TABLE_SUFFIXES)  # a file, folder or prefix
    rows_per_file = all_accounts["source"].value_counts()
    infos = [*(tables.InputInfo("accounts", f, int(rows_per_file.get(f, 0)), locations.sha256_of(f))
               for f in account_files), *rate_infos, *invoice_infos]
    inputs = Inputs(pd.DataFrame(), accounts, rates, market_map, invoice_lines[in_scope].reset_index(drop=True),
                    infos)
    inputs.all_accounts = all_accounts
    inputs.out_of_scope["invoice_lines"] = int((~in_scope).sum())
    return inputs


def select_accounts(accounts: pd.DataFrame, config: RunConfig) -> pd.DataFrame:
    """The accounts of ``--waba`` (every account when none is given); an unknown id is exit 2."""
    if not config.wabas:
        return accounts
    unknown = sorted(set(config.wabas) - set(accounts["waba_id"]))
    if unknown:
        raise InputError(f"--waba {', '.join(unknown)} not in the accounts file", source=config.accounts,
                         column="waba_id")
    return accounts[accounts["waba_id"].isin(config.wabas)].reset_index(drop=True)


def load_inputs(config: RunConfig, quality: QualityLog) -> Inputs:
    """Read and validate every input (the `read` stage). The accounts come first (the message readers
    check against them, and an unknown ``--waba`` fails before anything else is read); the rate cards,
    invoices and market map are then read in a second thread while the message logs are read. When
    both fail, the reference files' error is the one raised (as when they were read first)."""
    from .io import locations, tables

    if config.s3_endpoint_url:
        locations.set_default_endpoint(config.s3_endpoint_url)
    all_accounts = tables.read_accounts(config.accounts, quality)
    accounts = select_accounts(all_accounts, config)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile-reference") as pool:
        reference = pool.submit(load_reference, config, quality, all_accounts)
        try:
            messages, message_infos, message_rows = read_message_logs(config, quality, all_accounts, accounts)
        except BaseException:
            if reference.exception() is not None:         # waits for the thread
                raise reference.exception() from None
            raise
    inputs = reference.result()
    inputs.messages, inputs.message_rows = messages, message_rows
    inputs.infos = [*inputs.infos, *message_infos]
    return inputs


def read_message_logs(config: RunConfig, quality: QualityLog, all_accounts: pd.DataFrame,
                      accounts: pd.DataFrame) -> tuple[pd.DataFrame, list, "MessageRows"]:
    """The message logs of the run's accounts, and the ledger of their rows: in the files, rejected by
    the readers (distinct rows with an error finding), left out by ``--waba``."""
    from .engine.prepare import per_category
    from .io import tables

    n_findings = len(quality)
    messages, infos = tables.read_messages(config.messages, quality, accounts=all_accounts)
    rejected_rows = 0
    if len(quality) > n_findings:
        findings = quality.frame()
        rejected = findings[(findings["severity"] == "error") & findings["source"].isin({i.path for i in infos})]
        rejected_rows = int(len(rejected[["source", "row"]].drop_duplicates()))
    # the readers give waba_id as a Categorical: its few categories are checked, the rows take their answer
    wabas = messages["waba_id"]
    in_scope = per_category(wabas, wabas.cat.categories.isin(accounts["waba_id"]))
    if not in_scope.all():
        messages = messages[in_scope].reset_index(drop=True)
    rows = MessageRows(sum(int(i.rows) for i in infos), rejected_rows, int((~in_scope).sum()))
    return messages, infos, rows


def compute(inputs: Inputs, period: Period, quality: QualityLog):
    """Recompute expected charges (the `engine` stage). The messages are handed over to the engine
    (``inputs.messages`` is emptied first) so that it frees them once deduplicated: one copy of the
    rows in memory, not two."""
    from .engine import compute_units

    handover = [inputs.messages]
    inputs.messages = pd.DataFrame()
    return compute_units(handover, inputs.accounts, inputs.rates, inputs.market_map, period, quality)


def reconcile_variance(units: pd.DataFrame, inputs: Inputs, config: RunConfig, quality: QualityLog) -> pd.DataFrame:
    """Compare expected units with invoice lines (the `compare` stage)."""
    from .compare import compare

    return compare(units, inputs.invoice_lines, inputs.accounts, config.period, quality,
                   tolerance=config.tolerance, relative_tolerance=config.relative_tolerance)


def scope_to_dispute(units: pd.DataFrame, config: RunConfig) -> pd.DataFrame:
    """A dispute computes on whole accounts and filters only what it writes."""
    keep = pd.Series(True, index=units.index)
    if config.dispute_users:
        keep &= units["user_wa_id"].isin([u.lstrip("+") for u in config.dispute_users])
    if config.dispute_phone_number_ids:
        keep &= units["phone_number_id"].isin(config.dispute_phone_number_ids)
    return units[keep].reset_index(drop=True)


# --------------------------------------------------------------------------- run
@contextmanager
def timed(progress: Progress, timings: dict, name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    with progress.stage(name):
        yield
    timings[name] = round(time.perf_counter() - t0, 3)


def run(config: RunConfig, progress: Progress | None = None) -> RunResult:
    """The whole run: read → engine → compare → publish. The engine's compiled kernels load from
    numba's cache when first called (inside the engine stage, ~0.3 s per process): loading them in a
    thread beside the read was measured no faster on 2 cores (the loader holds the GIL the read needs)."""
    progress = progress or LogProgress()
    quality = QualityLog()
    clock = RunClock()
    with run_settings():         # reuse of freed memory, a short GIL switch interval (reconcile.run_settings)
        with timed(progress, clock.timings, "read"):
            inputs = load_inputs(config, quality)
        with timed(progress, clock.timings, "engine"):
            result = compute(inputs, config.period, quality)
        return finish_run(config, inputs, result, quality, inputs.message_rows, clock=clock, progress=progress)


@dataclass
class RunClock:
    """When the run started and the seconds per stage so far (``run.json``'s ``timings_s``)."""

    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    t0: float = field(default_factory=time.perf_counter)
    timings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MessageRows:
    """Rows of the message files: in the files, rejected by the readers, left out by ``--waba``."""

    rows_in: int
    rejected_by_readers: int
    out_of_scope: int = 0


def finish_run(config: RunConfig, inputs: Inputs, result, quality: QualityLog, message_rows: MessageRows, *,
               clock: RunClock, progress: Progress, extra_record: dict | None = None) -> RunResult:
    """Compare, check conservation, publish: the part shared by ``run`` and the sharded DAG."""
    units = result.units
    with timed(progress, clock.timings, "compare"):
        if config.dispute_id:
            units = scope_to_dispute(units, config)
        variance = reconcile_variance(result.units, inputs, config, quality)
        if config.dispute_id:
            variance = _dispute_variance(variance, units)
        conservation = check_conservation(result, units, variance, config, quality, message_rows)
    record = build_run_record(config, inputs, result, units, variance, quality, clock.started, clock.timings)
    record["conservation"] = conservation
    record.update(extra_record or {})
    exit_code = 3 if config.fail_on_variance and (variance["status"] != "match").any() else 0
    with progress.stage("publish"):
        publish(config, record, units, variance, quality, inputs, clock.timings, clock.t0)
    return RunResult(record, units, variance, quality, config.out_location, exit_code)


def check_conservation(result, units, variance, config: RunConfig, quality: QualityLog,
                       message_rows: MessageRows) -> dict:
    """Conservation checks of reconcile.conservation; raises ConservationError (nothing is published).

    The findings table (``quality.frame()``, kept by the log for the run record and publishing) is sorted
    by the message buckets in a second thread while they match the opening ids (compiled, without the
    GIL)."""
    from . import conservation as cons

    ledger = cons.row_ledger(message_rows.rows_in, message_rows.rejected_by_readers, result.counts,
                             out_of_scope=message_rows.out_of_scope)
    buckets = cons.message_buckets(result.coverage, result.units, result.raw_units, config.period,
                                   lambda: _error_message_ids(quality.frame()))
    expected = cons.totals_by_currency(units, "amount")
    if not config.dispute_id:
        cons.assert_totals_agree("variance expected vs units", expected,
                                 cons.totals_by_currency(variance, "expected_amount"))
    return {"rows": ledger, "billable_messages_of_period": buckets,
            "unit_totals": {cur: round(v, 6) for cur, v in expected.items()}, "checks": "passed"}


def _error_message_ids(findings: pd.DataFrame) -> pd.Series:
    """The message ids of the ``error`` findings (as the frame's column: no Python set)."""
    return findings["message_id"][(findings["severity"] == "error").to_numpy()]


def _dispute_variance(variance: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """Variance rows of a dispute: the groups that hold at least one disputed unit."""
    from .contracts import VARIANCE_GROUP

    if units.empty:
        return variance.iloc[0:0]
    groups = units[VARIANCE_GROUP].drop_duplicates()
    return variance.merge(groups, on=VARIANCE_GROUP, how="inner").reset_index(drop=True)


_INPUT_KIND_ORDER = {"accounts": 0, "messages": 1, "rate_card": 2, "invoice": 3}


def build_run_record(config, inputs, result, units, variance, quality, started, timings) -> dict:
    from .rules import rates as rate_rules

    counts = dict(result.counts)
    counts["units"] = int(len(units))
    counts["variance_rows"] = int(len(variance))
    by_status = variance["status"].value_counts()
    counts["variance_by_status"] = {s: int(by_status.get(s, 0)) for s in VARIANCE_STATUSES}
    counts["data_quality"] = quality.counts()
    counts["out_of_scope"] = {"message_rows": int(getattr(inputs.message_rows, "out_of_scope", 0) or 0),
                              **inputs.out_of_scope}
    # distinct values first (Arrow for ``str`` columns), then the Python set of those few
    eras = sorted(set(units["era"].unique())) if "era" in units.columns else []
    return {
        "run_id": f"{started.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}",
        "started_at": started.isoformat().replace("+00:00", "Z"),
        "period": str(config.period),
        "months": config.period.months,
        "scope": config.scope,
        "accounts": sorted(inputs.accounts["waba_id"].tolist()),
        "currencies": dict(zip(inputs.accounts["waba_id"], inputs.accounts["currency"])),
        "inputs": [{"kind": i.kind, "path": i.path, "rows": int(i.rows), "sha256": i.sha256}
                   for i in sorted(inputs.infos, key=lambda i: _INPUT_KIND_ORDER.get(i.kind, len(_INPUT_KIND_ORDER)))],
        "eras": eras,
        "rate_card_versions": rate_rules.rate_card_versions(inputs.rates),
        "counts": counts,
        "parameters": {
            "tolerance": config.tolerance, "relative_tolerance": config.relative_tolerance,
            "excel_max_units": config.excel_max_units, "fail_on_variance": config.fail_on_variance,
            "wabas": list(config.wabas), "dispute_users": ["*" * max(0, len(u) - 4) + u[-4:] for u in config.dispute_users],
            "dispute_phone_number_ids": list(config.dispute_phone_number_ids),
            "warehouse": redact_url(config.warehouse),
        },
        "tool_version": __version__,
        "python": platform.python_version(),
        "timings_s": dict(timings),
    }


def redact_url(url: str | None) -> str | None:
    """Hide a password in a SQLAlchemy URL (``postgresql://user:***@host/db``)."""
    if not url or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def publish(config: RunConfig, record: dict, units, variance, quality: QualityLog, inputs: Inputs,
            timings: dict, t_total: float) -> None:
    """Write every output into a staging folder, commit the warehouse slice, then move the files
    into place with the ``_SUCCESS`` manifest last (contracts.md, Publishing)."""
    from .io import locations
    from .io.outputs import (quality_csv_table, units_csv_table, units_parquet_table, variance_csv_table,
                             write_csv, write_parquet)

    t_publish = time.perf_counter()
    findings = quality.frame()
    staging = tempfile.mkdtemp(prefix="reconcile-staging-")
    try:
        # the workbook (openpyxl + zlib) is written in a second thread while the CSV/Parquet files and
        # the warehouse slice are written here; the warehouse commits only once the workbook is whole
        # and checked (its verify step waits for it), so a failed workbook still publishes nothing
        record["timings_s"] = {**timings, "publish": round(time.perf_counter() - t_publish, 3),
                               "total": round(time.perf_counter() - t_total, 3)}   # Run info: timings so far
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile-workbook") as pool:
            workbook = pool.submit(_write_checked_workbook, os.path.join(staging, "report.xlsx"), config,
                                   copy.deepcopy(record), units, variance, findings, inputs.accounts)
            write_csv(units_csv_table(units), os.path.join(staging, "billable_units.csv"))
            _check_written_totals(os.path.join(staging, "billable_units.csv"), units)
            write_parquet(units_parquet_table(units), os.path.join(staging, "billable_units.parquet"))
            write_csv(variance_csv_table(variance), os.path.join(staging, "variance.csv"))
            write_csv(quality_csv_table(findings), os.path.join(staging, "data_quality.csv"))
            warehouse = _open_warehouse(config)
            slices = sorted({(w, m) for w in inputs.accounts["waba_id"] for m in config.period.months})
            if warehouse is not None:
                record["finished_at"] = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
                totals_check = _warehouse_totals_check(units)

                def verify(loaded: dict[str, float]) -> None:
                    workbook.result()          # raises the workbook's error: the slice is rolled back
                    totals_check(loaded)
                warehouse.publish(record, variance, units, scope=config.scope, slices=slices, verify=verify)
            workbook.result()
        # publish is measured up to the run record, the last file written before the move
        timings["publish"] = round(time.perf_counter() - t_publish, 3)
        timings["total"] = round(time.perf_counter() - t_total, 3)
        record["timings_s"] = dict(timings)
        record.setdefault("conservation", {})["totals_agree"] = [
            "billable_units.csv", *([] if config.dispute_id else ["variance.csv", "report.xlsx"]),
            *(["warehouse recon_unit"] if warehouse is not None else [])]
        with open(os.path.join(staging, "run.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
        locations.publish_directory(staging, config.out_location)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_checked_workbook(path: str, config: RunConfig, record: dict, units, variance, findings,
                            accounts) -> None:
    from .report.workbook import write_workbook

    write_workbook(path, variance=variance, units=units, quality_frame=findings, run_record=record,
                   accounts=accounts, max_units=config.excel_max_units)
    _check_workbook_totals(path, units, config)


def _check_written_totals(csv_path: str, units: pd.DataFrame) -> None:
    """The CSV written adds up (per currency) to the units computed, rounded per unit as written."""
    import pyarrow.csv as pacsv

    from . import conservation as cons
    from .report.money import round_half_up

    table = pacsv.read_csv(csv_path, convert_options=pacsv.ConvertOptions(
        column_types={"amount": "float64", "currency": "string"}, include_columns=["amount", "currency"]))
    written = table.to_pandas()
    computed = pd.DataFrame({"currency": units["currency"].astype(str), "amount": round_half_up(units["amount"])})
    cons.assert_totals_agree("billable_units.csv vs units", cons.totals_by_currency(computed, "amount"),
                             cons.totals_by_currency(written, "amount"))


def _check_workbook_totals(path: str, units: pd.DataFrame, config: RunConfig) -> None:
    """What finance reads adds up to the units computed: the workbook's Summary, read back (full runs;
    a dispute's Summary holds whole-account variance rows, not the disputed units)."""
    if config.dispute_id:
        return
    from . import conservation as cons
    from .report.workbook import summary_totals

    cons.assert_totals_agree("report.xlsx Summary vs units", cons.totals_by_currency(units, "amount"),
                             summary_totals(path))


def _warehouse_totals_check(units: pd.DataFrame):
    """A check run inside the warehouse transaction: the loaded recon_unit amounts (numeric, 6 places)
    add up to the units computed; otherwise the slice is rolled back and nothing is published."""
    from . import conservation as cons

    expected = cons.totals_by_currency(units, "amount")

    def verify(loaded: dict[str, float]) -> None:
        cons.assert_totals_agree("warehouse recon_unit vs units", expected, loaded)
    return verify


def _open_warehouse(
config: RunConfig):
    if (config.warehouse or "").lower() == "none":
        return None
    from .report.warehouse import Warehouse

    wh = Warehouse.from_url(config.warehouse)
    wh.ensure_schema()
    return wh
