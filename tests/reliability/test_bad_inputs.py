"""Bad inputs: every case of tests/data/bad/ through the real CLI (``reconcile.cli.main``).

Each case ends in exactly one of two ways, never a traceback and never a silent drop:

* exit 0 and the problem recorded in ``data_quality.csv``: the test asserts the *complete* list
  of findings (severity, code, source, row, column, message_id), so nothing else was reported
  and nothing was left out unreported; plus what the run made of the good rows;
* exit 2 with a one-line message naming the file (and row/column when there is one).

All cases run once per module (fixture ``outcomes``); each parametrised test asserts its case's
verdict and ``test_zz_summary`` prints ``bad inputs tried: N, handled: N``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd
import pytest

from .conftest import BAD, BASE, CliRun, make_corpus, run_cli


def bad(name: str) -> str:
    return os.path.join(BAD, name)


@dataclass
class Case:
    id: str
    inputs: dict                                    # option → path (or callable(tmp) → path)
    exit: int = 0
    findings: list = field(default_factory=list)    # exact (severity, code, source, row, column, message_id)
    message: list = field(default_factory=list)     # fragments of the exit-2 message (stderr)
    check: Callable[[CliRun, CliRun], None] | None = None


# ------------------------------------------------------------------ checks on what the good rows became
def units(run: CliRun) -> pd.DataFrame:
    return run.frame("billable_units.csv")


def same_units(run, base):
    assert run.text("billable_units.csv") == base.text("billable_units.csv")


def same_units_except(*message_ids):
    def check(run, base):
        b = units(base)
        expected = b[~b["opening_message_id"].isin(message_ids)].reset_index(drop=True)
        pd.testing.assert_frame_equal(units(run), expected)
    return check


def webhook_unit(run, base):
    u = units(run)
    assert u[["unit_id", "opened_at", "amount"]].values.tolist() == [
        ["wamid.W1:marketing", "2025-07-02T09:00:05Z", "0.0625"]]


def invoice_lines_left_out(*groups):
    """(category, pricing_type) groups whose invoice line was left out: now not_invoiced, the rest match."""
    def check(run, base):
        v = run.frame("variance.csv")
        status = dict(zip(zip(v["category"], v["pricing_type"]), v["status"]))
        for g, s in status.items():
            assert s == ("not_invoiced" if g in groups else "match"), (g, s)
        same_units(run, base)
    return check


def empty_period(run, base):
    assert units(run).empty
    v = run.frame("variance.csv")
    assert v["status"].tolist() == ["not_expected"] * 4
    assert v["expected_quantity"].tolist() == ["0"] * 4
    assert sorted(v["invoiced_amount"]) == ["0.0000", "0.0070", "0.0080", "0.1250"]


def injection_units(run, base):
    u = units(run)
    # payload ids round-trip verbatim in the CSV (surrounding whitespace is trimmed from ids)
    assert {'=HYPERLINK("http://x"):marketing', "+1+1:marketing", "-2:marketing",
            "@SUM(A1):marketing"} <= set(u["unit_id"])
    assert "=1:marketing" not in set(u["unit_id"])   # "\t=1" and "\r=1" trim to one id: conflicting


def injection_invoice(run, base):
    v = run.frame("variance.csv")
    row = v[v["market"] == '=HYPERLINK("http://x")']
    assert row[["category", "status", "invoiced_amount"]].values.tolist() == [["marketing", "not_expected", "0.0625"]]
    same_units(run, base)


def huge_fields(run, base):
    same_units(run, base)
    dq = run.frame("data_quality.csv")
    assert dq["detail"].str.len().max() < 300        # a 1 MB value is never copied into a finding
    assert dq["message_id"].str.len().max() < 100
    assert len(run.text("data_quality.csv")) < 4096


def huge_file(tmp) -> str:
    path = os.path.join(tmp, "messages_huge_fields.csv")
    with open(path, "wb") as fh:
        fh.write(make_corpus.huge_fields_csv())
    return path


HUGE = "<tmp>/messages_huge_fields.csv"
E, W = "error", "warning"
#: the webhook cases carry July only: less than 7 days of history before the period (rule book section 0)
SHORT_LOOKBACK = (W, "short_lookback", "messages", None, "sent_at", "")

CASES = [
    Case("truncated_gzip", {"messages": bad("messages_truncated.csv.gz")}, exit=2,
         message=[f"file {bad('messages_truncated.csv.gz')}", "not a readable gzip file"]),
    Case("truncated_parquet", {"messages": bad("messages_truncated.parquet")}, exit=2,
         message=[f"file {bad('messages_truncated.parquet')}", "not a readable Parquet file"]),
    Case("utf16_with_bom", {"messages": bad("messages_utf16.csv")}, exit=2,
         message=[f"file {bad('messages_utf16.csv')}", "not UTF-8 text (UTF-16 LE with a byte-order mark)"]),
    Case("utf8_bom", {"messages": bad("messages_utf8_bom.csv")}, check=same_units),
    Case("missing_required_column", {"messages": bad("messages_missing_column.csv")}, exit=2,
         message=[f"file {bad('messages_missing_column.csv')}, column 'sent_at': missing required column"]),
    Case("extra_columns", {"messages": bad("messages_extra_columns.csv")},
         findings=[(W, "extra_column", bad("messages_extra_columns.csv"), None, "campaign", ""),
                   (W, "extra_column", bad("messages_extra_columns.csv"), None, "notes", "")],
         check=same_units),
    Case("mixed_timestamp_formats_and_zones", {"messages": bad("messages_mixed_timestamps.csv")},
         findings=[(E, "bad_timestamp", bad("messages_mixed_timestamps.csv"), 7, "delivered_at", "wamid.A1"),
                   (W, "timestamp_without_offset", bad("messages_mixed_timestamps.csv"), 5, "delivered_at",
                    "wamid.U1")],
         check=same_units_except("wamid.A1")),
    Case("epoch_milliseconds", {"messages": bad("messages_epoch_ms.csv")}, check=same_units),
    Case("unknown_template_category", {"messages": bad("messages_unknown_category.csv")},
         findings=[(E, "unknown_template_category", bad("messages_unknown_category.csv"), 2, "template_category",
                    "wamid.M1")],
         check=same_units_except("wamid.M1")),
    Case("conflicting_duplicate_ids", {"messages": bad("messages_conflicting_duplicates.csv")},
         findings=[(E, "conflicting_duplicate", bad("messages_conflicting_duplicates.csv"), 2, "user_wa_id",
                    "wamid.M1")],
         check=same_units_except("wamid.M1")),
    Case("bare_cr_in_csv_field", {"messages": bad("messages_bare_cr.csv")},
         findings=[(E, "bad_row", bad("messages_bare_cr.csv"), 5, "", ""),
                   (E, "bad_row", bad("messages_bare_cr.csv"), 6, "", "")],
         check=same_units_except("wamid.U1")),
    Case("webhook_lines_not_json", {"messages": bad("webhooks_not_json.jsonl")},
         findings=[(E, "bad_json", bad("webhooks_not_json.jsonl"), 2, "", ""),
                   (E, "bad_json", bad("webhooks_not_json.jsonl"), 4, "", ""), SHORT_LOOKBACK],
         check=webhook_unit),
    Case("webhook_first_line_not_json", {"messages": bad("webhooks_first_line_bad.jsonl")},
         findings=[(E, "bad_json", bad("webhooks_first_line_bad.jsonl"), 1, "", ""), SHORT_LOOKBACK],
         check=webhook_unit),
    Case("webhook_unicode_line_separator", {"messages": bad("webhooks_line_separator.jsonl")},
         findings=[SHORT_LOOKBACK], check=webhook_unit),
    Case("webhook_file_not_json_at_all", {"messages": bad("webhooks_all_garbage.jsonl")}, exit=2,
         message=[f"file {bad('webhooks_all_garbage.jsonl')}, row 1", "no line of this JSON Lines file is a JSON object"]),
    Case("huge_field_values", {"messages": huge_file},
         findings=[(E, "oversized_value", HUGE, 9, "message_id", "wamid." + "A" * 26 + "…[1,048,582 characters]"),
                   (E, "unknown_template_category", HUGE, 10, "template_category", "wamid.BIGCAT")],
         check=huge_fields),
    Case("invoice_negative_and_nan_amounts", {"invoice": bad("invoice_negative_nan.csv")},
         findings=[(E, "bad_amount", bad("invoice_negative_nan.csv"), 2, "amount", ""),
                   (E, "negative_amount", bad("invoice_negative_nan.csv"), 1, "amount", "")],
         check=invoice_lines_left_out(("marketing", "regular"), ("utility", "regular"))),
    Case("invoice_unknown_category", {"invoice": bad("invoice_unknown_category.csv")},
         findings=[(E, "unknown_category", bad("invoice_unknown_category.csv"), 4, "category", "")],
         check=invoice_lines_left_out(("authentication", "regular"))),
    Case("invoice_other_currency", {"invoice": bad("invoice_other_currency.csv")},
         findings=[(E, "invoice_currency_mismatch", bad("invoice_other_currency.csv"), 1, "currency", "")],
         check=invoice_lines_left_out(("marketing", "regular"))),
    Case("empty_period", {"messages": bad("messages_empty_period.csv")}, check=empty_period),
    Case("csv_injection_in_messages", {"messages": bad("messages_injection.csv")},
         findings=[(E, "conflicting_duplicate", bad("messages_injection.csv"), 13, "user_wa_id", "=1"),
                   (E, "unknown_direction", bad("messages_injection.csv"), 16, "direction", "wamid.X2"),
                   (E, "unknown_entry_point", bad("messages_injection.csv"), 15, "entry_point", "wamid.X1"),
                   (E, "unknown_message_kind", bad("messages_injection.csv"), 16, "message_kind", "wamid.X2"),
                   (E, "unknown_status", bad("messages_injection.csv"), 16, "status", "wamid.X2"),
                   (E, "unknown_template_category", bad("messages_injection.csv"), 15, "template_category",
                    "wamid.X1"),
                   (E, "unknown_template_category", bad("messages_injection.csv"), 16, "template_category",
                    "wamid.X2")],
         check=injection_units),
    Case("csv_injection_in_invoice", {"invoice": bad("invoice_injection.csv")},
         findings=[(E, "unknown_category", bad("invoice_injection.csv"), 11, "category", ""),
                   (E, "unknown_pricing_model", bad("invoice_injection.csv"), 12, "pricing_model", "")],
         check=injection_invoice),
    Case("csv_injection_in_accounts", {"accounts": bad("accounts_injection.csv")}, check=same_units),
]


def verdict(case: Case, run: CliRun, base: CliRun, tmp: str) -> list[str]:
    """Why the case was NOT handled (empty list = handled)."""
    problems = []
    text = run.stdout + run.stderr
    if "Traceback" in text:
        problems.append("a traceback escaped")
    if run.exit_code != case.exit:
        problems.append(f"exit {run.exit_code}, expected {case.exit}: {run.stderr.strip()[-300:]}")
        return problems
    if case.exit == 2:
        lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
        if len(lines) != 1 or not lines[0].startswith("reconcile: error: "):
            problems.append(f"not a one-line error message: {run.stderr!r}")
        for frag in case.message:
            if frag not in run.stderr:
                problems.append(f"message lacks {frag!r}: {run.stderr.strip()!r}")
        if os.path.exists(os.path.join(run.out, "_SUCCESS")):
            problems.append("a failed run published _SUCCESS")
        return problems
    expected = sorted((s, c, src.replace("<tmp>", tmp), r, col, m) for s, c, src, r, col, m in case.findings)
    got = sorted(run.findings(), key=lambda t: (t[0], t[1], t[2], t[3] or 0, t[4], t[5]))
    expected.sort(key=lambda t: (t[0], t[1], t[2], t[3] or 0, t[4], t[5]))
    if got != expected:
        problems.append(f"findings differ:\n  got      {got}\n  expected {expected}")
    if case.check is not None:
        try:
            case.check(run, base)
        except AssertionError as exc:
            problems.append(f"check {case.check.__name__}: {exc}")
    return problems


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, base_run) -> dict[str, list[str]]:
    tmp = str(tmp_path_factory.mktemp("bad"))
    results = {}
    for case in CASES:
        inputs = {k: (v(tmp) if callable(v) else v) for k, v in case.inputs.items()}
        out = os.path.join(tmp, "out", case.id)
        run = run_cli(out, **{k.replace("-", "_"): v for k, v in inputs.items()})
        results[case.id] = verdict(case, run, base_run, tmp)
        ledger = _ledger(out)
        if ledger:
            LEDGER["runs"] += 1
            LEDGER["rows_in"] += int(ledger["rows_in"])
            LEDGER["rows_accounted"] += int(ledger["rows_accounted"])
    return results


#: message rows in the files vs rows accounted for (run.json ``conservation.rows``) over the exit-0 cases
LEDGER = {"runs": 0, "rows_in": 0, "rows_accounted": 0}


def _ledger(out: str) -> dict | None:
    import json

    path = os.path.join(out, "run.json")
    if not os.path.exists(path):
        return None
    rows = json.load(open(path)).get("conservation", {}).get("rows")
    return rows if rows and "rows_in" in rows and "rows_accounted" in rows else None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, outcomes):
    assert outcomes[case.id] == [], "\n".join(outcomes[case.id])


def test_zz_summary(outcomes):
    tried = len(outcomes)
    handled = sum(1 for v in outcomes.values() if not v)
    print(f"\nbad inputs tried: {tried}, handled: {handled}; message rows in: {LEDGER['rows_in']}, "
          f"rows accounted: {LEDGER['rows_accounted']} (over {LEDGER['runs']} published runs)")
    assert LEDGER["rows_in"] == LEDGER["rows_accounted"]
    assert tried == len(CASES) >= 20
    assert handled == tried, {k: v for k, v in outcomes.items() if v}
