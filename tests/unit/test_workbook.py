"""report.xlsx: sheets, values, formats, masking, formula-injection escaping, cap + note, LibreOffice."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_compare import ACCOUNTS, PERIOD, line, lines_frame, unit, units_frame  # noqa: E402

from reconcile.compare import compare  # noqa: E402
from reconcile.contracts import UNIT_COLUMNS, VARIANCE_COLUMNS  # noqa: E402
from reconcile.quality import QualityLog  # noqa: E402
from reconcile.report.workbook import SHEETS, write_workbook  # noqa: E402

EVIL_MARKET = '=HYPERLINK("http://evil.example","click")'
PAYLOADS = ["+1", "-1", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"]


@pytest.fixture
def report(tmp_path):
    accounts = ACCOUNTS.copy()
    accounts.loc[0, "name"] = "-1 Acme"
    units = units_frame([
        unit("m1", opened="2025-07-03T10:00:00Z"), unit("m2", opened="2025-07-01T09:00:00Z"),
        unit("m3", market=EVIL_MARKET, amount=0.5), unit("m4", market="India", amount=np.nan),
        unit("m5", market="Mexico", opened="2025-07-05T00:00:00Z"),
        unit("e1", waba="W2", amount=0.04, user="4915112345678"),
    ])
    lines = lines_frame([line(quantity=2, amount=0.5), line(market="Mexico", amount=0.0625, row=2),
                         line(market="India", amount=0.2, row=3), line(waba="W2", amount=0.01, currency="EUR", row=4),
                         line(amount=3.0, currency="GBP", row=5)])
    quality = QualityLog()
    variance = compare(units, lines, accounts, PERIOD, quality)
    for i, payload in enumerate(PAYLOADS):
        quality.add("warning", "unknown_calling_code", source=payload, row=i + 1, column="user_wa_id",
                    message_id=f"wamid.{i}", detail=f"{payload} user 5511987651234 has an unknown calling code")
    run_record = {"run_id": "run-1", "period": "2025-07", "accounts": ["W1", "W2"], "tolerance": 0.01,
                  "tool_version": "0.1.0", "scope": "full", "finished_at": "2025-08-01T00:00:00Z",
                  "inputs": [{"path": "@inputs/messages.csv", "rows": 6, "sha256": "a" * 64}],
                  "eras": ["PMP"], "rate_card_versions": [{"effective_from": "2025-07-01", "currency": "USD"}],
                  "timings_s": {"read": 0.5, "engine": 1.25, "compare": 0.1, "publish": 0.2, "total": 2.05},
                  "counts": {"units": 6, "variance_rows": {"match": 1, "over_billed": 1}}}
    path = tmp_path / "report.xlsx"
    write_workbook(path, variance=variance, units=units, quality_frame=quality.frame(), run_record=run_record,
                   accounts=accounts, max_units=3)
    return path, variance, units


def rows(ws):
    return [list(r) for r in ws.iter_rows(values_only=True)]


def test_sheets_and_variance_values(report):
    path, variance, _ = report
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == list(SHEETS) == ["Summary", "Variance", "Units", "Data quality", "Run info"]
    ws = wb["Variance"]
    table = rows(ws)
    assert table[0] == VARIANCE_COLUMNS
    assert len(table) == 1 + len(variance)
    brazil = next(r for r in table[1:] if r[0] == "W1" and r[2] == "Brazil")
    assert brazil[6:] == [2, 2, 0, 0.125, 0.5, 0.375, "USD", "over_billed"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:N{len(table)}"
    # money formats name the currency; over-billed amount_diff is red, W2's EUR row is formatted in EUR
    row_of = {(r[0], r[2]): i + 1 for i, r in enumerate(table)}
    diff = ws.cell(row=row_of[("W1", "Brazil")], column=12)
    assert diff.number_format == '#,##0.0000 "USD"' and diff.font.color.rgb == "00C00000"
    assert ws.cell(row=row_of[("W2", "Brazil")], column=10).number_format == '#,##0.0000 "EUR"'
    under = ws.cell(row=row_of[("W2", "Brazil")], column=12)
    assert under.value == -0.03 and under.font.color.rgb == "001F4E9E"


def test_no_formula_anywhere_and_payloads_come_back_as_text(report):
    path, _, _ = report
    wb = openpyxl.load_workbook(path)
    texts = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert cell.value[:1] not in ("=", "+", "-", "@", "\t", "\r"), (ws.title, cell.coordinate)
                    texts.append(cell.value)
    assert "'" + EVIL_MARKET in texts          # market in Variance, Units and the Summary market table
    assert "'-1 Acme" in texts                 # account name on Summary
    assert "'@inputs/messages.csv" in texts    # input path on Run info
    for payload in PAYLOADS:                   # sources in Data quality
        assert "'" + payload in texts
    details = [t for t in texts if "unknown calling code" in t]
    assert "'\t=1+1 user *********1234 has an unknown calling code" in details
    assert not any("5511987651234" in t for t in texts)


def test_units_capped_with_note_masked_and_ordered(report):
    path, variance, units = report
    ws = openpyxl.load_workbook(path)["Units"]
    table = rows(ws)
    note = ws["A1"]
    assert note.font.bold and "first 3 of 5 units" in note.value
    assert "billable_units.parquet" in note.value and "recon_unit" in note.value
    assert table[1] == UNIT_COLUMNS + ["status"]
    body = table[2:]
    assert len(body) == 3
    # variance order (W1's "=HYPERLINK" market sorts first, then Brazil), then opened_at
    assert [r[11] for r in body] == ["m3", "m2", "m1"]
    assert [r[-1] for r in body] == ["not_invoiced", "over_billed", "over_billed"]
    assert body[0][5] == "'" + EVIL_MARKET and body[0][3] == "*********1234"
    assert ws.cell(row=4, column=10).number_format == "yyyy-mm-dd hh:mm:ss"
    assert str(ws.cell(row=4, column=10).value) == "2025-07-01 09:00:00"
    assert ws.cell(row=4, column=17).number_format == '#,##0.0000 "USD"'
    assert ws.freeze_panes == "A3"


def test_units_uncapped_all_evidence_unpriced_amount_empty(report, tmp_path):
    _, variance, units = report
    path = tmp_path / "all.xlsx"
    write_workbook(path, variance=variance, units=units, quality_frame=QualityLog().frame(), run_record={},
                   accounts=ACCOUNTS)
    ws = openpyxl.load_workbook(path)["Units"]
    assert "All 5 units" in ws["A1"].value
    body = rows(ws)[2:]
    assert [r[11] for r in body] == ["m3", "m2", "m1", "m4", "e1"]
    assert body[3][15] is None and body[3][16] is None   # unpriced: rate/amount empty, never 0
    assert body[4][3] == "*********5678" and body[4][-1] == "under_billed"


def test_summary_quality_and_run_info(report):
    path, _, _ = report
    wb = openpyxl.load_workbook(path)
    summary = rows(wb["Summary"])
    flat = [v for r in summary for v in r if v is not None]
    assert "2025-07" in flat and "0.1.0" in flat and 0.01 in flat and "2025-08-01T00:00:00Z" in flat
    header = next(r for r in summary if r[:2] == ["waba_id", "account_name"])
    w1 = next(r for r in summary if r[:2] == ["W1", "'-1 Acme"])
    record = dict(zip(header, w1))
    assert record["currency"] == "USD" and record["over_billed"] == 1 and record["unpriced"] == 1
    assert len(wb["Summary"]._charts) == 1

    quality = rows(wb["Data quality"])
    by_code = [r for r in quality if r[:2] == ["error", "invoice_currency_mismatch"]]
    assert by_code and by_code[0][2:6] == [1, 1, "invoice.csv", 5]
    warnings = [r for r in quality if r[:2] == ["warning", "unknown_calling_code"] and r[2] == 5]
    assert [r[3] for r in warnings] == [1, 2, 3, 4, 5]  # five examples of a code with five findings

    info = rows(wb["Run info"])
    assert ["'@inputs/messages.csv", 6, "a" * 64] in [r[:3] for r in info]
    assert ["engine", 1.25] in [r[:2] for r in info]
    assert ["variance_rows.over_billed", 1] in [r[:2] for r in info]


@pytest.fixture(scope="session")
def libreoffice():
    found = shutil.which("libreoffice") or shutil.which("soffice")
    if not found:
        try:
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "libreoffice-calc"],
                           check=True, capture_output=True, timeout=900)
        except Exception as error:  # noqa: BLE001 - any failure means: no LibreOffice here
            pytest.skip(f"LibreOffice is not installed and apt-get install libreoffice-calc failed: {error}")
        found = shutil.which("libreoffice") or shutil.which("soffice")
    if not found:
        pytest.skip("LibreOffice (libreoffice/soffice) not found after installing libreoffice-calc")
    return found


def test_libreoffice_opens_and_converts_to_pdf(report, libreoffice, tmp_path):
    path, _, _ = report
    out = tmp_path / "pdf"
    profile = tmp_path / "lo-profile"
    subprocess.run([libreoffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(out), str(path)], check=True, capture_output=True, timeout=180)
    pdf = out / "report.pdf"
    assert pdf.exists() and pdf.stat().st_size > 1024
