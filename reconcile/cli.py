"""Command line: ``reconcile run`` and ``reconcile demo`` (contracts.md, Command line).

Exit status: 0 run completed (variances are findings, not errors); 3 with
``--fail-on-variance`` when some group is not ``match`` (outputs are published first);
2 bad usage or unusable input (the message names file, row and column); 1 anything else.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Sequence

from . import __version__
from .contracts import DEFAULT_EXCEL_MAX_UNITS, DEFAULT_TOLERANCE, VARIANCE_STATUSES, Period, PeriodError
from .quality import InputError

if TYPE_CHECKING:                   # the pipeline (pandas, pyarrow) is imported only when a run starts
    from .pipeline import RunConfig

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_VARIANCE = 0, 1, 2, 3

DESCRIPTION = """\
Recompute what Meta should charge for the WhatsApp Business Platform from your
platform's message logs, compare it with Meta's invoice (or its analytics exports),
and publish variance reports: report.xlsx for finance, CSV/Parquet for data
engineering, and warehouse tables (DuckDB file by default, Postgres in production).
"""

RUN_EPILOG = """\
Every PATH may be a local file, a folder (every matching file under it) or an
s3://bucket/prefix. Messages: CSV, CSV.gz, Parquet or JSON Lines (plain rows or raw
Meta webhook bodies, detected automatically). Invoice: invoice-lines CSV or Meta
conversation_analytics / pricing_analytics JSON exports. Rate card: long format, or
Meta's wide CSV with its effective date given as PATH@YYYY-MM-DD or in a
'# ... effective YYYY-MM-DD' comment line.

Give the period's messages plus the whole previous month as lookback: windows opened
before the period still cover messages in it.

Examples:
  reconcile run --messages s3://logs/2025/06/ --messages s3://logs/2025/07/ \\
      --accounts accounts.csv --rate-card rates/ --invoice invoices/2025-07.csv \\
      --period 2025-07 --out s3://reports/2025-07/ \\
      --warehouse postgresql+psycopg://recon@db/warehouse
  reconcile run ... --period 2025-07 --waba 102290129340398 \\
      --dispute-id TICKET-123 --dispute-user 5511987650001

Exit status: 0 done (variances are findings), 3 with --fail-on-variance when a group
is not 'match', 2 unusable input or bad usage, 1 anything else.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reconcile", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,demo}")

    run = sub.add_parser("run", help="reconcile one period", description=DESCRIPTION, epilog=RUN_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    inputs = run.add_argument_group("inputs")
    inputs.add_argument("--messages", action="append", required=True, metavar="PATH",
                        help="message log file/folder/s3 prefix (repeatable)")
    inputs.add_argument("--accounts", required=True, metavar="PATH", help="accounts CSV (one row per WABA)")
    inputs.add_argument("--rate-card", action="append", required=True, metavar="PATH",
                        help="rate card(s): long CSV, or Meta wide CSV with PATH@YYYY-MM-DD (repeatable)")
    inputs.add_argument("--invoice", action="append", required=True, metavar="PATH",
                        help="invoice lines CSV or Meta analytics JSON export(s) (repeatable)")
    inputs.add_argument("--market-map", metavar="PATH", help="country→market CSV replacing the built-in map")
    what = run.add_argument_group("what to reconcile")
    what.add_argument("--period", required=True, metavar="YYYY-MM[..YYYY-MM]",
                      help="billing month(s), in each account's timezone")
    what.add_argument("--waba", action="append", default=[], metavar="ID", nargs="+",
                      help="only these accounts (default: every account in the accounts file)")
    what.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="AMOUNT",
                      help=f"absolute tolerance per variance line, in its currency (default {DEFAULT_TOLERANCE})")
    what.add_argument("--relative-tolerance", type=float, default=None, metavar="FRACTION",
                      help="also accept a line within this fraction of the expected amount (e.g. 0.005)")
    disp = run.add_argument_group("dispute rerun (computes on whole accounts, writes only the dispute)")
    disp.add_argument("--dispute-id", metavar="ID", help="write warehouse slices with scope dispute:ID")
    disp.add_argument("--dispute-user", action="append", default=[], metavar="NUMBER",
                      help="user number(s) in dispute (E.164 digits)")
    disp.add_argument("--dispute-phone-number-id", action="append", default=[], metavar="ID",
                      help="business phone number id(s) in dispute")
    outp = run.add_argument_group("outputs")
    outp.add_argument("--out", metavar="DIR_OR_S3_PREFIX", help="output folder or s3 prefix (default ./out/<period>)")
    outp.add_argument("--warehouse", metavar="SQLALCHEMY_URL",
                      help="warehouse URL (default: DuckDB file ./reconcile.duckdb; 'none' to skip)")
    outp.add_argument("--excel-max-units", type=int, default=DEFAULT_EXCEL_MAX_UNITS, metavar="N",
                      help=f"cap of the workbook's Units sheet (default {DEFAULT_EXCEL_MAX_UNITS:,})")
    outp.add_argument("--fail-on-variance", action="store_true",
                      help="exit 3 when some group is not 'match' (after publishing)")
    _common(run)

    demo = sub.add_parser("demo", help="generate demo inputs with known discrepancies and reconcile them",
                          description="Write synthetic inputs under DIR/inputs/, reconcile 2025-07 and 2026-10 "
                                      "into DIR/<period>/ with the warehouse DIR/warehouse.duckdb.")
    demo.add_argument("--out", default="demo-out", metavar="DIR", help="demo folder (default ./demo-out)")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the demo data (default 7)")
    _common(demo)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--s3-endpoint-url", metavar="URL", help="S3 endpoint (MinIO etc.); default from AWS config/env")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


# --------------------------------------------------------------------------- display
class RichProgress:
    """Stage display on stderr: a spinner while a stage runs, a tick and its duration after."""

    def __init__(self, console) -> None:
        self.console = console

    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        t0 = time.perf_counter()
        with self.console.status(f"[bold]{name}[/] {detail}"):
            yield
        self.console.print(f"  [green]✓[/] {name:<8} {time.perf_counter() - t0:6.2f} s {detail}")

    def note(self, text: str) -> None:
        self.console.print(f"  {text}")


class QuietProgress:
    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        yield

    def note(self, text: str) -> None:
        pass


def print_summary(console, result) -> None:
    """One screen: per account and month, expected vs invoiced and status counts."""
    from rich.table import Table

    from .compare import summarise

    summary = summarise(result.variance)
    table = Table(title=f"Reconciliation {result.run_record['period']} ({result.run_record['scope']})",
                  show_lines=False)
    for col in ("account", "month", "currency", "expected", "invoiced", "difference", "not match"):
        table.add_column(col, justify="right" if col in ("expected", "invoiced", "difference", "not match") else "left")
    not_match_cols = [c for c in VARIANCE_STATUSES if c != "match" and c in summary.columns]
    for row in summary.itertuples(index=False):
        r = row._asdict()
        not_match = sum(int(r[c]) for c in not_match_cols)
        diff = float(r["amount_diff"])
        style = "red" if diff > 0 else ("blue" if diff < 0 else "")
        table.add_row(str(r["waba_id"]), str(r["billing_month"]), str(r["currency"]),
                      f"{r['expected_amount']:,.4f}", f"{r['invoiced_amount']:,.4f}",
                      f"[{style}]{diff:+,.4f}[/]" if style else f"{diff:+,.4f}", str(not_match))
    console.print(table)
    by_status = result.run_record["counts"].get("variance_by_status", {})
    console.print("variance rows: " + ", ".join(f"{k} {v}" for k, v in by_status.items() if v))
    dq = result.run_record["counts"].get("data_quality", {})
    if dq:
        console.print("data quality: " + ", ".join(f"{k} {v}" for k, v in sorted(dq.items())))


def print_outputs(console, out: str, warehouse: str | None) -> None:
    console.print(f"outputs in [bold]{out}[/]: report.xlsx, billable_units.csv/.parquet, variance.csv, "
                  f"data_quality.csv, run.json")
    if warehouse:
        console.print(f"warehouse: {warehouse}")


# --------------------------------------------------------------------------- commands
def _config_from_args(args) -> "RunConfig":
    from .pipeline import RunConfig

    return RunConfig(
        messages=args.messages, accounts=args.accounts, rate_cards=args.rate_card, invoices=args.invoice,
        period=Period.parse(args.period), market_map=args.market_map,
        wabas=[w for group in args.waba for w in group], out=args.out, warehouse=args.warehouse,
        tolerance=args.tolerance, relative_tolerance=args.relative_tolerance,
        excel_max_units=args.excel_max_units, fail_on_variance=args.fail_on_variance,
        s3_endpoint_url=args.s3_endpoint_url, dispute_id=args.dispute_id, dispute_users=args.dispute_user,
        dispute_phone_number_ids=args.dispute_phone_number_id,
    )


def cmd_run(args, console) -> int:
    from .pipeline import redact_url, run

    config = _config_from_args(args)
    if (config.dispute_users or config.dispute_phone_number_ids) and not config.dispute_id:
        raise UsageError("--dispute-user/--dispute-phone-number-id need --dispute-id")
    if args.excel_max_units < 0:
        raise UsageError("--excel-max-units must be ≥ 0")
    progress = QuietProgress() if args.quiet else RichProgress(console)
    result = run(config, progress)
    if not args.quiet:
        print_summary(console, result)
        print_outputs(console, result.out, redact_url(config.warehouse) or "reconcile.duckdb")
    return result.exit_code


def cmd_demo(args, console) -> int:
    from .demo import write_demo_inputs
    from .pipeline import RunConfig, run

    os.makedirs(args.out, exist_ok=True)
    progress = QuietProgress() if args.quiet else RichProgress(console)
    with progress.stage("demo inputs", os.path.join(args.out, "inputs")):
        demo = write_demo_inputs(os.path.join(args.out, "inputs"), seed=args.seed)
    warehouse = os.path.join(args.out, "warehouse.duckdb")
    for period, inputs in demo.periods.items():
        config = RunConfig(messages=inputs.messages, accounts=inputs.accounts, rate_cards=inputs.rate_cards,
                           invoices=inputs.invoices, period=Period.parse(period),
                           out=os.path.join(args.out, period), warehouse=warehouse,
                           s3_endpoint_url=args.s3_endpoint_url)
        if not args.quiet:
            console.rule(f"period {period}")
        result = run(config, progress)
        if not args.quiet:
            print_summary(console, result)
            print_outputs(console, result.out, None)
    if not args.quiet:
        print_planted_discrepancies(console)
        console.rule("demo done")
        console.print(f"inputs:    {os.path.join(args.out, 'inputs')}")
        for period in demo.periods:
            console.print(f"{period}:   {os.path.join(args.out, period, 'report.xlsx')} (+ CSVs, Parquet, run.json)")
        console.print(f"warehouse: {warehouse}  (tables recon_run, recon_variance, recon_unit)")
    return EXIT_OK


def print_planted_discrepancies(console) -> None:
    """What the demo planted in its invoices, so the summary above can be checked by eye."""
    from rich.table import Table

    from .demo import DEMO_DISCREPANCIES

    table = Table(title="Discrepancies planted in the demo invoices (the run should find each)")
    for col in ("month", "account", "market", "category", "expected finding", "what was planted"):
        table.add_column(col)
    for d in DEMO_DISCREPANCIES:
        finding = d["status"] or ""
        if d.get("quality_code"):
            finding = f"{finding} data quality: {d['quality_code']}".strip()
        table.add_row(d["billing_month"], d["waba_id"], d["market"], d["category"], finding, d["detail"])
    console.print(table)


class UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs and CI: do not truncate account ids
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = cmd_run(args, console) if args.command == "run" else cmd_demo(args, console)
    except (InputError, PeriodError, UsageError) as exc:
        if args.debug:
            console.print_exception()
        print(f"reconcile: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("reconcile: interrupted; nothing was published", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a CLI
        if args.debug:
            console.print_exception()
        print(f"reconcile: failed: {type(exc).__name__}: {exc} (nothing was published; rerun with --debug "
              f"for the traceback)", file=sys.stderr)
        return EXIT_ERROR
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
