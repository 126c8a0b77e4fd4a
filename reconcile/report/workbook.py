"""The finance workbook ``report.xlsx`` (contracts.md, "report.xlsx — for finance").

Sheets, in order: ``Summary``, ``Variance``, ``Units``, ``Data quality``, ``Run info``.

* Written with openpyxl in write-only (streaming) mode: rows go straight to the file.
* The evidence (``Units``) comes from :func:`reconcile.compare.drilldown_positions`, which is vectorised
  and only sorts the units it keeps, so a 10M-unit run writes at most ``max_units`` rows in seconds.
* User numbers are masked (``*`` for every digit but the last 4); runs of 8+ digits in free text too.
* Every text cell goes through :func:`reconcile.report.money.escape_formula`: text starting with
  ``= + - @``, TAB or CR is stored as a string cell prefixed with a visible apostrophe, so neither Excel
  nor LibreOffice evaluates it (docs/operations.md, "Formula injection").
* Money cells carry a number format naming the account currency (``#,##0.0000 "USD"``) and the currency
  is also a column of its own.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from ..compare import EVIDENCE_STATUSES, drilldown_positions, summarise
from ..contracts import DEFAULT_EXCEL_MAX_UNITS, DQ_COLUMNS, UNIT_COLUMNS, VARIANCE_COLUMNS
from ..engine.buffers import string_buffers
from .money import escape_formula_arrow, escape_text, mask_digit_runs, mask_phone

SHEETS = ("Summary", "Variance", "Units", "Data quality", "Run info")
#: findings listed one by one on the Data quality sheet (all of them are in data_quality.csv)
MAX_FINDINGS_LISTED = 10_000
EXAMPLES_PER_CODE = 5
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
_MAX_CELL_TEXT = 32_767

_BOLD = Font(bold=True)
_TITLE = Font(bold=True, size=13)
_OVER = Font(color="C00000")        # over-billed: Meta charged more (red)
_UNDER = Font(color="1F4E9E")       # under-billed: Meta charged less (blue)
_HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
_STATUS_FILL = {"over_billed": PatternFill("solid", fgColor="F8CBAD"),
                "under_billed": PatternFill("solid", fgColor="BDD7EE"),
                "not_invoiced": PatternFill("solid", fgColor="FFE699"),
                "not_expected": PatternFill("solid", fgColor="F4B084"),
                "unpriced": PatternFill("solid", fgColor="D9D9D9")}
_CURRENCY = re.compile(r"^[A-Z]{3}$")


# --------------------------------------------------------------------------- formats
def money_format(currency: str, places: int = 4) -> str:
    """Number format naming the currency, e.g. ``#,##0.0000 "USD"`` (plain when the code is not ISO-like)."""
    base = "#,##0." + "0" * places if places else "#,##0"
    return f'{base} "{currency}"' if _CURRENCY.match(currency or "") else base


def _money_formats(currency: pd.Series, places: int = 4) -> np.ndarray:
    codes = currency.astype(str)
    distinct = {c: money_format(c, places) for c in pd.unique(codes.to_numpy(dtype=object))}
    return codes.map(distinct).to_numpy(dtype=object)


def _text_column(values: pd.Series) -> list:
    """Escaped, length-capped text as Python strings (cells written one by one)."""
    return _text_arrow(values).to_pylist()


def _text_arrow(values: pd.Series) -> pa.Array:
    """Escaped (:func:`escape_formula_arrow`), length-capped text; one vectorised pass per column."""
    escaped = escape_formula_arrow(values)
    if len(escaped) and pc.max(pc.utf8_length(escaped)).as_py() > _MAX_CELL_TEXT:
        escaped = pc.utf8_slice_codeunits(escaped, 0, _MAX_CELL_TEXT)
    return escaped


def _naive_utc(values: pd.Series) -> list:
    """tz-aware instants → naive UTC datetimes for Excel (None for NaT)."""
    instants = pd.to_datetime(values, utc=True).dt.tz_convert(None)
    return [None if pd.isna(v) else v.to_pydatetime() for v in instants.astype(object)] \
        if instants.isna().any() else list(instants.dt.to_pydatetime())


# --------------------------------------------------------------------------- sheet writer
class _Sheet:
    """A write-only sheet plus the row counter and helpers to append styled rows."""

    def __init__(self, workbook: Workbook, title: str, widths: Sequence[float] = (), *, freeze: int | None = None):
        self.ws = workbook.create_sheet(title)
        self.row = 0
        self.rows_xml: bytes = b""  # rows written by :meth:`bulk_table`, spliced in after saving
        if freeze:  # must be set before the first row of a write-only sheet
            self.ws.freeze_panes = f"A{freeze + 1}"
        for i, width in enumerate(widths, 1):
            self.ws.column_dimensions[get_column_letter(i)].width = width

    def cell(self, value, *, font=None, fill=None, number_format=None):
        return _styled(WriteOnlyCell(self.ws, value=escape_text(value) if isinstance(value, str) else value),
                       number_format=number_format, font=font, fill=fill)

    def append(self, values: Iterable) -> int:
        self.ws.append(list(values))
        self.row += 1
        return self.row

    def title(self, text: str) -> int:
        return self.append([self.cell(text, font=_TITLE)])

    def header(self, names: Sequence[str]) -> int:
        return self.append([self.cell(n, font=_BOLD, fill=_HEADER_FILL) for n in names])

    def blank(self) -> int:
        return self.append([])

    def table(self, frame: pd.DataFrame, *, money: Sequence[str] = (), currency: str = "currency",
              dates: Sequence[str] = (), diff: str | None = None, status: str | None = None) -> tuple[int, int]:
        """Append ``frame`` (header + rows); returns (first data row, last data row).

        Text columns are escaped; ``money`` columns get the row's currency format; ``dates`` are naive
        UTC datetimes; ``diff`` is coloured red (> 0) / blue (< 0); ``status`` gets a fill."""
        self.header(list(frame.columns))
        first = self.row + 1
        if frame.empty:
            return first, self.row
        columns: list[list] = []
        kinds: list[str] = []
        formats = _money_formats(frame[currency]) if money and currency in frame else None
        for name in frame.columns:
            series = frame[name]
            if name in money:
                columns.append(series.astype("float64").tolist())
                kinds.append("money")
            elif name in dates:
                columns.append(_naive_utc(series))
                kinds.append("date")
            elif pd.api.types.is_bool_dtype(series.dtype):
                columns.append(series.tolist())
                kinds.append("plain")
            elif pd.api.types.is_numeric_dtype(series.dtype):
                values = series.astype(object).where(series.notna(), None).tolist()
                columns.append(values)
                kinds.append("plain")
            else:
                columns.append(_text_column(series))
                kinds.append("plain")
        diff_index = list(frame.columns).index(diff) if diff in frame else -1
        status_index = list(frame.columns).index(status) if status in frame else -1
        ws = self.ws
        for i, values in enumerate(zip(*columns)):
            row = list(values)
            for j, kind in enumerate(kinds):
                value = row[j]
                if kind == "money":
                    if value != value:  # NaN: no rate → empty cell, never 0
                        row[j] = None
                        continue
                    c = WriteOnlyCell(ws, value=value)
                    c.number_format = formats[i]
                    if j == diff_index and value:
                        c.font = _OVER if value > 0 else _UNDER
                    row[j] = c
                elif kind == "date" and value is not None:
                    c = WriteOnlyCell(ws, value=value)
                    c.number_format = DATETIME_FORMAT
                    row[j] = c
            if status_index >= 0 and row[status_index] in _STATUS_FILL:
                c = WriteOnlyCell(ws, value=row[status_index])
                c.fill = _STATUS_FILL[row[status_index]]
                row[status_index] = c
            ws.append(row)
        self.row += len(frame)
        return first, self.row

    def bulk_table(self, frame: pd.DataFrame, *, money: Sequence[str] = (), currency: str = "currency",
                   dates: Sequence[str] = (), diff: str | None = None, status: str | None = None) -> tuple[int, int]:
        """Like :meth:`table`, but the data rows are rendered to sheet XML with vectorised Arrow string
        kernels (about 50x faster than openpyxl cells) and spliced into the saved file. It must be the
        last thing written on the sheet."""
        self.header(list(frame.columns))
        first = self.row + 1
        if frame.empty:
            return first, self.row
        self.rows_xml = _rows_xml(self.ws, frame, first, money=money, currency=currency, dates=dates, diff=diff,
                                  status=status)
        self.row += len(frame)
        return first, self.row

    def key_values(self, pairs: Iterable[tuple[str, Any]]) -> None:
        for key, value in pairs:
            self.append([self.cell(key, font=_BOLD), self.cell(_plain(value))])

    def filter(self, header_row: int, n_columns: int, last_row: int) -> None:
        self.ws.auto_filter.ref = f"A{header_row}:{get_column_letter(max(n_columns, 1))}{max(last_row, header_row)}"


def _style_id(ws, *, number_format=None, font=None, fill=None) -> int:
    """The workbook's cellXfs index of a style (registered through a throw-away openpyxl cell)."""
    return _styled(WriteOnlyCell(ws), number_format=number_format, font=font, fill=fill).style_id


def _styled(cell, *, number_format=None, font=None, fill=None):
    """``cell`` with the given number format, font and fill (those not given are left as they are)."""
    if number_format is not None:
        cell.number_format = number_format
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    return cell


def _xml_text(values: pa.Array) -> pa.Array:
    for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")):
        values = pc.replace_substring(values, old, new)
    return values


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "", null_handling="emit_null")


def _rows_xml(ws, frame: pd.DataFrame, first_row: int, *, money, currency, dates, diff, status) -> bytes:
    """``<row>`` elements for ``frame`` starting at ``first_row``; cells use inline strings, numbers,
    Excel serial dates, and the style ids of the same formats :meth:`_Sheet.table` applies."""
    n = len(frame)
    row_numbers = pc.cast(pa.array(np.arange(first_row, first_row + n, dtype="int64")), pa.string())
    money_style = None
    if money and currency in frame:
        formats = pd.Series(_money_formats(frame[currency]))
        money_style = formats.map({f: _style_id(ws, number_format=f) for f in formats.unique()})
    cells = []
    for j, name in enumerate(frame.columns, 1):
        letter = get_column_letter(j)
        series = frame[name]
        style: pa.Array | str = ""
        if name in money or name in dates or (pd.api.types.is_numeric_dtype(series.dtype)
                                              and not pd.api.types.is_bool_dtype(series.dtype)):
            if name in dates:
                instants = pd.to_datetime(series, utc=True)
                ns = instants.to_numpy(dtype="datetime64[ns]").view("int64").astype("float64")
                values = np.where(instants.isna().to_numpy(), np.nan, ns / 86_400e9 + 25_569.0)
                style = f' s="{_style_id(ws, number_format=DATETIME_FORMAT)}"'
                text = pc.cast(pa.array(values, from_pandas=True), pa.string())
            elif name in money:
                values = series.astype("float64").to_numpy()
                text = pc.cast(pa.array(values, from_pandas=True), pa.string())
                if money_style is not None:
                    ids = money_style
                    if name == diff:  # red / blue font for over / under
                        fonts = np.where(values > 0, "over", np.where(values < 0, "under", ""))
                        combos = pd.Series(list(zip(formats, fonts)))
                        ids = combos.map({c: _style_id(ws, number_format=c[0], font={"over": _OVER, "under": _UNDER}
                                                          .get(c[1])) for c in set(combos)})
                    style = pa.array((' s="' + ids.astype(str) + '"').tolist(), type=pa.string())
            else:
                numbers = pa.array(series, from_pandas=True) if pd.api.types.is_integer_dtype(series.dtype) \
                    else pa.array(series.to_numpy(dtype="float64", na_value=np.nan), from_pandas=True)
                text = pc.cast(numbers, pa.string())
            cell = _join(pa.scalar('<c r="' + letter), row_numbers, pa.scalar('"'), style if isinstance(style, pa.Array)
                         else pa.scalar(style), pa.scalar("><v>"), text, pa.scalar("</v></c>"))
        else:
            text = _text_arrow(series)
            if name == status:
                names = list(_STATUS_FILL)
                styles = pa.array([f' s="{_style_id(ws, fill=_STATUS_FILL[v])}"' for v in names] + [""])
                which = pc.fill_null(pc.index_in(text, value_set=pa.array(names)), len(names))
                style = styles.take(which)
            empty = pc.equal(text, "")
            text = pc.if_else(empty, pa.scalar(None, pa.string()), _xml_text(text))
            cell = _join(pa.scalar('<c r="' + letter), row_numbers,
                         pa.scalar('" t="inlineStr"'), style if isinstance(style, pa.Array) else pa.scalar(style),
                         pa.scalar('><is><t xml:space="preserve">'), text, pa.scalar("</t></is></c>"))
        cells.append(cell)
    row_xml = pc.binary_join_element_wise(pa.scalar('<row r="'), row_numbers, pa.scalar('">'), *cells,
                                          pa.scalar("</row>"), "", null_handling="replace", null_replacement="")
    return _concatenated(row_xml)


def _concatenated(strings: pa.Array) -> bytes:
    """The UTF-8 bytes of every string of ``strings`` one after the other (nulls are empty)."""
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    offsets, data = string_buffers(pc.fill_null(strings, "") if strings.null_count else strings)
    return data[offsets[0]:offsets[-1]].tobytes()


def _splice_rows(path: Path, rows_by_sheet: dict[str, bytes]) -> None:
    """Insert pre-rendered ``<row>`` XML at the end of ``<sheetData>`` of the named sheets of a saved xlsx."""
    rows_by_sheet = {k: v for k, v in rows_by_sheet.items() if v}
    if not rows_by_sheet:
        return
    with zipfile.ZipFile(path) as source:
        workbook_xml = source.read("xl/workbook.xml").decode("utf-8")
        rels_xml = source.read("xl/_rels/workbook.xml.rels").decode("utf-8")
        targets = {rid: target.lstrip("/") for target, rid in
                   re.findall(r'Target="([^"]+)"[^>]*Id="([^"]+)"', rels_xml)}
        targets.update({rid: target.lstrip("/") for rid, target in
                        re.findall(r'Id="([^"]+)"[^>]*Target="([^"]+)"', rels_xml)})
        files = {}
        for name, rid in re.findall(r'<sheet [^>]*name="([^"]+)"[^>]*r:id="([^"]+)"', workbook_xml):
            title = name.replace("&amp;", "&")
            if title in rows_by_sheet:
                target = targets[rid]
                files[target if target.startswith("xl/") else f"xl/{target}"] = rows_by_sheet[title]
        handle, temporary = tempfile.mkstemp(suffix=".xlsx", dir=str(Path(path).parent))
        with open(handle, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target_zip:
            for info in source.infolist():
                data = source.read(info.filename)
                if info.filename in files:
                    if b"<sheetData/>" in data:
                        data = data.replace(b"<sheetData/>", b"<sheetData>" + files[info.filename] + b"</sheetData>")
                    else:
                        data = data.replace(b"</sheetData>", files[info.filename] + b"</sheetData>", 1)
                target_zip.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    shutil.move(temporary, path)


def _plain(value: Any):
    """A cell value for a run-record entry: numbers stay numbers, containers become compact JSON."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, float, np.integer, np.floating)):
        return value.item() if hasattr(value, "item") else value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, sort_keys=isinstance(value, dict))
    return str(value)


def _widths(frame: pd.DataFrame, *, minimum: float = 8, maximum: float = 48, sample: int = 2000) -> list[float]:
    """Column widths from the header and the longest text among the first ``sample`` rows."""
    head = frame.head(sample)
    widths = []
    for name in frame.columns:
        series = head[name]
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
            longest = 16
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            longest = 19
        else:
            lengths = series.astype(object).where(series.notna(), "").astype(str).str.len()
            longest = int(lengths.max()) if len(lengths) else 0
        widths.append(float(min(maximum, max(minimum, len(str(name)) + 2, longest + 2))))
    return widths


# --------------------------------------------------------------------------- entry point
def write_workbook(path, *, variance: pd.DataFrame, units: pd.DataFrame, quality_frame: pd.DataFrame,
                   run_record: dict, accounts: pd.DataFrame, max_units: int = DEFAULT_EXCEL_MAX_UNITS) -> None:
    """Write ``report.xlsx`` to ``path`` (a local path; the pipeline stages and uploads it).

    ``units`` is the full units frame; the evidence (units behind every non-``match`` variance row, in
    variance order then by ``opened_at``) is computed here and capped at ``max_units`` rows.
    ``run_record`` is the run.json dict; the parameters shown on Summary are read from it
    (``period``, ``accounts``, ``tolerance``, ``relative_tolerance``, ``tool_version``, ``finished_at`` /
    ``generated_at``, ``run_id``, ``scope``), at top level or under ``run_record["parameters"]``.
    """
    workbook = Workbook(write_only=True)
    names = dict(zip(accounts["waba_id"].astype(str), accounts["name"].astype(str))) if len(accounts) else {}
    _write_summary(workbook, variance, run_record, names)
    bulk = [_write_variance(workbook, variance), _write_units(workbook, units, variance, max_units),
            _write_quality(workbook, quality_frame)]
    _write_run_info(workbook, run_record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(str(path))
    _splice_rows(path, {sheet.ws.title: sheet.rows_xml for sheet in bulk})


def _parameter(run_record: dict, key: str, default=None):
    if key in run_record:
        return run_record[key]
    return (run_record.get("parameters") or {}).get(key, default)


# --------------------------------------------------------------------------- Summary
def _write_summary(workbook: Workbook, variance: pd.DataFrame, run_record: dict, names: dict) -> None:
    summary = summarise(variance)
    summary.insert(1, "account_name", summary["waba_id"].map(names).fillna("") if len(summary) else "")
    sheet = _Sheet(workbook, "Summary", [22, 24, 14, 10, 18, 18, 18] + [13] * (len(summary.columns) - 7))
    sheet.title("WhatsApp billing reconciliation")
    accounts = _parameter(run_record, "accounts", sorted(names))
    if isinstance(accounts, (list, tuple)):
        accounts = ", ".join(f"{a} ({names[a]})" if a in names and names[a] else str(a) for a in accounts)
    tolerance = _parameter(run_record, "tolerance", None)
    relative = _parameter(run_record, "relative_tolerance", None)
    generated = _parameter(run_record, "generated_at") or _parameter(run_record, "finished_at") or \
        datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    sheet.key_values([
        ("Period", _parameter(run_record, "period", "")),
        ("Accounts", accounts),
        ("Tolerance (per line, account currency)", "" if tolerance is None else tolerance),
        ("Relative tolerance", "" if relative is None else relative),
        ("Scope", _parameter(run_record, "scope", "full")),
        ("Tool version", _parameter(run_record, "tool_version", "")),
        ("Run id", _parameter(run_record, "run_id", "")),
        ("Generated at (UTC)", generated),
    ])
    sheet.append([sheet.cell("amount_diff = invoiced − expected: positive means Meta charged more than the "
                             "logs justify (over-billed).")])
    sheet.blank()
    sheet.title("Per account and month")
    sheet.table(summary, money=("expected_amount", "invoiced_amount", "amount_diff"), diff="amount_diff")
    sheet.blank()

    by_market = _difference_by_market(variance)
    sheet.title("Difference by market (invoiced − expected)")
    first, last = sheet.table(by_market, money=("amount_diff",), diff="amount_diff")
    if len(by_market):
        chart = BarChart()
        chart.type = "bar"
        chart.title = "Difference by market"
        chart.y_axis.title = "invoiced − expected"
        chart.legend = None
        label_col = list(by_market.columns).index("label") + 1
        value_col = list(by_market.columns).index("amount_diff") + 1
        chart.add_data(Reference(sheet.ws, min_col=value_col, min_row=first - 1, max_row=last), titles_from_data=True)
        chart.set_categories(Reference(sheet.ws, min_col=label_col, min_row=first, max_row=last))
        chart.height = max(7.5, 0.6 * len(by_market) + 3)
        chart.width = 18
        sheet.ws.add_chart(chart, f"{get_column_letter(len(summary.columns) + 2)}2")


def _difference_by_market(variance: pd.DataFrame) -> pd.DataFrame:
    columns = ["label", "market", "currency", "expected_amount", "invoiced_amount", "amount_diff"]
    if variance.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    grouped = variance.groupby(["market", "currency"], sort=True)
    out = grouped.agg(expected_amount=("expected_amount", "sum"), invoiced_amount=("invoiced_amount", "sum"))
    out["amount_diff"] = out["invoiced_amount"] - out["expected_amount"]
    out = out.reset_index()
    out["label"] = out["market"].astype(str) + " (" + out["currency"].astype(str) + ")"
    return out[columns]


# --------------------------------------------------------------------------- Variance
def _write_variance(workbook: Workbook, variance: pd.DataFrame) -> _Sheet:
    frame = variance[VARIANCE_COLUMNS] if len(variance) else variance.reindex(columns=VARIANCE_COLUMNS)
    sheet = _Sheet(workbook, "Variance", _widths(frame), freeze=1)
    _, last = sheet.bulk_table(frame, money=("expected_amount", "invoiced_amount", "amount_diff"),
                               diff="amount_diff", status="status")
    sheet.filter(1, len(frame.columns), last)
    return sheet


# --------------------------------------------------------------------------- Units
def _write_units(workbook: Workbook, units: pd.DataFrame, variance: pd.DataFrame, max_units: int) -> _Sheet:
    positions, vrow, total = drilldown_positions(units, variance, statuses=EVIDENCE_STATUSES, limit=max_units)
    columns = [c for c in UNIT_COLUMNS if c in units.columns]
    evidence = units.iloc[positions][columns].reset_index(drop=True)
    evidence["status"] = variance["status"].to_numpy(dtype=object)[vrow] if len(vrow) else []
    if "user_wa_id" in evidence:
        evidence["user_wa_id"] = mask_phone(evidence["user_wa_id"]).to_numpy(dtype=object)
    sheet = _Sheet(workbook, "Units", _widths(evidence), freeze=2)
    shown = len(evidence)
    if total > shown:
        note = (f"Showing the first {shown:,} of {total:,} units behind the variance rows that are not "
                f"'match' (variance order, then opened_at). The full set is in billable_units.parquet in this "
                f"run's output folder and in the warehouse table recon_unit (see docs/operations.md). "
                f"Times are UTC; user numbers are masked.")
    else:
        note = (f"All {total:,} units behind the variance rows that are not 'match' (variance order, then "
                f"opened_at). Every unit of the run is in billable_units.parquet and the warehouse table "
                f"recon_unit. Times are UTC; user numbers are masked.")
    sheet.append([sheet.cell(note, font=_BOLD)])
    _, last = sheet.bulk_table(evidence, money=("rate", "amount"), dates=("opened_at", "expires_at"),
                               status="status")
    sheet.filter(2, len(evidence.columns), last)
    return sheet


# --------------------------------------------------------------------------- Data quality
def _write_quality(workbook: Workbook, quality_frame: pd.DataFrame) -> _Sheet:
    findings = quality_frame.reindex(columns=DQ_COLUMNS) if len(quality_frame) else \
        pd.DataFrame({c: pd.Series(dtype=object) for c in DQ_COLUMNS})
    findings = findings.copy()
    for column in ("source", "column", "message_id", "detail", "severity", "code"):
        findings[column] = findings[column].fillna("").astype(str)
    sheet = _Sheet(workbook, "Data quality", [10, 30, 10, 10, 40, 10, 16, 24, 80], freeze=2)
    sheet.title(f"Findings by code ({len(findings):,} in all; error = row excluded, warning = used with a caveat)")
    counts = findings.groupby(["severity", "code"], sort=True).size().rename("findings").reset_index()
    examples = findings.groupby(["severity", "code"], sort=False).head(EXAMPLES_PER_CODE).copy()
    examples["example"] = examples.groupby(["severity", "code"], sort=False).cumcount() + 1
    examples = examples.merge(counts, on=["severity", "code"], how="left")
    examples["detail"] = mask_digit_runs(examples["detail"]).to_numpy(dtype=object)
    by_code = examples[["severity", "code", "findings", "example", "source", "row", "column", "message_id",
                        "detail"]].sort_values(["severity", "code", "example"], kind="stable")
    _, last = sheet.table(by_code.reset_index(drop=True))
    sheet.blank()
    listed = findings.head(MAX_FINDINGS_LISTED).copy()
    listed["detail"] = mask_digit_runs(listed["detail"]).to_numpy(dtype=object)
    more = f" (the first {len(listed):,}; all of them are in data_quality.csv)" if len(findings) > len(listed) else ""
    sheet.title(f"Findings{more}")
    sheet.bulk_table(listed.reset_index(drop=True))
    sheet.filter(2, 9, last)
    return sheet


# --------------------------------------------------------------------------- Run info
def _write_run_info(workbook: Workbook, run_record: dict) -> None:
    sheet = _Sheet(workbook, "Run info", [34, 60, 14, 70])
    sheet.title("Run")
    simple = [(k, v) for k, v in run_record.items()
              if k not in ("inputs", "eras", "rate_card_versions", "timings_s", "counts", "parameters")]
    sheet.key_values(simple)
    for key, value in (run_record.get("parameters") or {}).items():
        sheet.key_values([(f"parameters.{key}", value)])

    sheet.blank()
    sheet.title("Inputs")
    inputs = pd.DataFrame(list(run_record.get("inputs") or []))
    for column in ("path", "rows", "sha256"):
        if column not in inputs:
            inputs[column] = ""
    inputs = inputs[["path", "rows", "sha256"] + [c for c in inputs.columns if c not in ("path", "rows", "sha256")]]
    for column in inputs.columns:
        if inputs[column].dtype == object:
            inputs[column] = inputs[column].map(_plain)
    sheet.table(inputs)

    for title, key in (("Rule eras used", "eras"), ("Rate card versions", "rate_card_versions")):
        sheet.blank()
        sheet.title(title)
        value = run_record.get(key) or []
        if isinstance(value, dict):
            sheet.key_values(value.items())
        else:
            rows = [item if isinstance(item, dict) else {"value": item} for item in value]
            frame = pd.DataFrame(rows)
            for column in frame.columns:
                frame[column] = frame[column].map(_plain)
            sheet.table(frame)

    sheet.blank()
    sheet.title("Timings (seconds)")
    timings = run_record.get("timings_s") or {}
    sheet.header(["stage", "seconds"])
    for stage, seconds in timings.items():
        sheet.append([sheet.cell(str(stage)), sheet.cell(_plain(seconds), number_format="0.000")])

    sheet.blank()
    sheet.title("Counts")
    sheet.header(["count", "value"])
    for key, value in _flatten(run_record.get("counts") or {}):
        sheet.append([sheet.cell(key), sheet.cell(_plain(value))])


def _flatten(mapping: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


def summary_totals(path) -> dict[str, float]:
    """Read back the written workbook's Summary table ("Per account and month") and return the
    expected amount per currency — the conservation check compares it with the units and the
    warehouse (what finance reads must be what was computed).

    Only the Summary sheet's XML is parsed, straight from the zip (loading the whole workbook with
    openpyxl would parse the big Units sheet too)."""
    import re
    import zipfile
    import xml.etree.ElementTree as ET

    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    rel_ns = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
    with zipfile.ZipFile(str(path)) as archive:
        book = ET.fromstring(archive.read("xl/workbook.xml"))
        rel_id = next(sh.get(f"{rel_ns}id") for sh in book.iter(f"{main}sheet") if sh.get("name") == "Summary")
        rels = ET.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
        target = next(r.get("Target") for r in rels if r.get("Id") == rel_id)
        sheet = ET.fromstring(archive.read("xl/" + target.lstrip("/").removeprefix("xl/")))

    def value(cell):
        if cell.get("t") == "inlineStr":
            return "".join(t.text or "" for t in cell.iter(f"{main}t"))
        v = cell.find(f"{main}v")
        return None if v is None else (v.text if cell.get("t") in ("str", "s") else float(v.text))

    def column(ref: str) -> str:
        return re.match(r"[A-Z]+", ref).group(0)

    rows = [{column(c.get("r")): value(c) for c in row.iter(f"{main}c")} for row in sheet.iter(f"{main}row")]
    for i, row in enumerate(rows):
        names = {v: k for k, v in row.items() if isinstance(v, str)}
        if "expected_amount" in names and "currency" in names:
            amount_at, currency_at = names["expected_amount"], names["currency"]
            break
    else:
        return {}
    totals: dict[str, float] = {}
    for row in rows[i + 1:]:
        amount = row.get(amount_at)
        if not isinstance(amount, float):
            break
        totals[str(row.get(currency_at))] = totals.get(str(row.get(currency_at)), 0.0) + amount
    return totals
