"""Regenerate the bad-input corpus of the reliability suite (tests/reliability/test_bad_inputs.py).

    .venv/bin/python tests/data/bad/make_corpus.py          # rewrites tests/data/bad/**

``base/`` is a small valid input set (one account, period 2025-07 with June as lookback, a long
rate card, an invoice that matches); every other file is one bad variant of one of those inputs.
The binary cases (truncated gzip, truncated Parquet, UTF-16) are written here too and committed
as files. The one large case (a 1 MB message id / detail) is NOT committed: the test builds it
with :func:`huge_fields_csv` into a temporary folder.

Everything is deterministic (no randomness, no clock), so rerunning the script gives
byte-identical files (the Parquet writer is pinned to one row group, no statistics timestamps).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

WABA = "100000000000001"
PHONE = "200000000000001"
USERS = ["5511987650001", "5511987650002", "5511987650003"]
MESSAGE_HEADER = ["message_id", "waba_id", "phone_number_id", "user_wa_id", "direction", "sent_at", "status",
                  "delivered_at", "read_at", "message_kind", "template_category", "entry_point"]
INVOICE_HEADER = ["invoice_id", "waba_id", "phone_number_id", "billing_month", "market", "pricing_model",
                  "category", "pricing_type", "quantity", "amount", "currency"]

#: the CSV-injection payloads (OWASP list): each must come out of the workbook as plain text
INJECTION_PAYLOADS = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\t=1", "\r=1"]


def _csv(rows: list[list[str]], header: list[str], quote_all: bool = False) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def base_messages() -> list[list[str]]:
    """Eight rows: PMP era, one account, three users; June rows are lookback only."""
    m = []
    # June (lookback): one marketing delivery
    m.append(["wamid.J1", WABA, PHONE, USERS[0], "outbound", "2025-06-20T10:00:00Z", "delivered",
              "2025-06-20T10:00:05Z", "", "template", "marketing", ""])
    # July: user 1 gets two marketing templates, user 2 writes in then gets a utility (free in CSW)
    m.append(["wamid.M1", WABA, PHONE, USERS[0], "outbound", "2025-07-02T09:00:00Z", "delivered",
              "2025-07-02T09:00:03Z", "", "template", "marketing", ""])
    m.append(["wamid.M2", WABA, PHONE, USERS[0], "outbound", "2025-07-03T09:00:00Z", "read",
              "2025-07-03T09:00:02Z", "2025-07-03T09:10:00Z", "template", "marketing", ""])
    m.append(["wamid.I1", WABA, PHONE, USERS[1], "inbound", "2025-07-04T12:00:00Z", "received",
              "", "", "", "", ""])
    m.append(["wamid.U1", WABA, PHONE, USERS[1], "outbound", "2025-07-04T12:05:00Z", "delivered",
              "2025-07-04T12:05:01Z", "", "template", "utility", ""])
    # user 3: utility outside any CSW (paid) and an authentication template
    m.append(["wamid.U2", WABA, PHONE, USERS[2], "outbound", "2025-07-10T08:00:00Z", "delivered",
              "2025-07-10T08:00:01Z", "", "template", "utility", ""])
    m.append(["wamid.A1", WABA, PHONE, USERS[2], "outbound", "2025-07-11T08:00:00Z", "delivered",
              "2025-07-11T08:00:01Z", "", "template", "authentication", ""])
    # a failed send: never charged
    m.append(["wamid.F1", WABA, PHONE, USERS[2], "outbound", "2025-07-12T08:00:00Z", "failed",
              "", "", "template", "marketing", ""])
    return m


def base_invoice() -> list[list[str]]:
    return [
        ["INV-7", WABA, "", "2025-07", "Brazil", "PMP", "marketing", "regular", "2", "0.1250", "BRL"],
        ["INV-7", WABA, "", "2025-07", "Brazil", "PMP", "utility", "regular", "1", "0.0080", "BRL"],
        ["INV-7", WABA, "", "2025-07", "Brazil", "PMP", "utility", "free_customer_service", "1", "0.0000", "BRL"],
        ["INV-7", WABA, "", "2025-07", "Brazil", "PMP", "authentication", "regular", "1", "0.0070", "BRL"],
    ]


def base_files() -> dict[str, bytes]:
    return {
        "base/accounts.csv": _csv([[WABA, "Loja Base", "UTC", "BRL", "BR", ""]],
                                  ["waba_id", "name", "timezone", "currency", "business_country", "portfolio_id"]),
        "base/rates.csv": _csv([["2025-01-01", "Brazil", "BRL", "marketing", "", "", "0.0625"],
                                ["2025-01-01", "Brazil", "BRL", "utility", "", "", "0.0080"],
                                ["2025-01-01", "Brazil", "BRL", "authentication", "", "", "0.0070"],
                                ["2025-01-01", "Brazil", "BRL", "service", "", "", "0"]],
                               ["effective_from", "market", "currency", "category", "tier_from", "tier_to", "rate"]),
        "base/messages.csv": _csv(base_messages(), MESSAGE_HEADER),
        "base/invoice.csv": _csv(base_invoice(), INVOICE_HEADER),
    }


def _parquet_bytes(rows: list[list[str]], header: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({c: pa.array([r[i] for r in rows], type=pa.string()) for i, c in enumerate(header)})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="none", write_statistics=False)
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _webhook_line(msg_id: str, status: str, ts: int) -> str:
    body = {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "551130030000",
                                                      "phone_number_id": PHONE},
        "statuses": [{"id": msg_id, "status": status, "timestamp": str(ts), "recipient_id": USERS[0],
                      "pricing": {"billable": True, "pricing_model": "PMP", "category": "marketing",
                                  "type": "regular"}}]}}]}]}
    return json.dumps(body, separators=(",", ":"))


def case_files() -> dict[str, bytes]:
    msgs = base_messages()
    base_csv = _csv(msgs, MESSAGE_HEADER)
    files: dict[str, bytes] = {}

    gz = _gzip(base_csv)
    files["messages_truncated.csv.gz"] = gz[: len(gz) // 2]
    pq_bytes = _parquet_bytes(msgs, MESSAGE_HEADER)
    files["messages_truncated.parquet"] = pq_bytes[: len(pq_bytes) - 40]
    files["messages_utf16.csv"] = base_csv.decode("utf-8").encode("utf-16")          # BOM + UTF-16LE
    files["messages_utf8_bom.csv"] = b"\xef\xbb\xbf" + base_csv
    files["messages_missing_column.csv"] = _csv([r[:5] + r[6:] for r in msgs],
                                                [c for c in MESSAGE_HEADER if c != "sent_at"])
    files["messages_extra_columns.csv"] = _csv([r + ["x", "note"] for r in msgs], MESSAGE_HEADER + ["campaign", "Notes"])

    # timestamps: the same instants written in mixed formats and offsets (+ one unreadable)
    mixed = [list(r) for r in msgs]
    mixed[1][7] = "2025-07-02T06:00:03-03:00"        # = 09:00:03Z
    mixed[2][7] = "1751533202"                       # epoch seconds = 2025-07-03T09:00:02Z
    mixed[4][7] = "2025-07-04 12:05:01"              # no offset: read as UTC with a warning
    mixed[5][7] = "2025-07-10T10:00:01+02:00"        # = 08:00:01Z
    mixed[6][7] = "11/07/2025 08:00"                 # unreadable: row left out
    files["messages_mixed_timestamps.csv"] = _csv(mixed, MESSAGE_HEADER)
    epoch = [list(r) for r in msgs]
    for r in epoch:
        for i in (5, 7, 8):
            if r[i]:
                from datetime import datetime
                r[i] = str(int(datetime.fromisoformat(r[i].replace("Z", "+00:00")).timestamp() * 1000))
    files["messages_epoch_ms.csv"] = _csv(epoch, MESSAGE_HEADER)

    unknown_cat = [list(r) for r in msgs]
    unknown_cat[1][10] = "promotional"
    # a bare CR inside an unquoted field (an export that lost its quoting)
    files["messages_bare_cr.csv"] = base_csv.replace(b"template,utility,", b"template,util\rity,", 1)
    files["messages_unknown_category.csv"] = _csv(unknown_cat, MESSAGE_HEADER)

    dupes = [list(r) for r in msgs]
    conflicting = list(msgs[1])
    conflicting[3] = USERS[2]                        # same id, another user
    conflicting[7] = "2025-07-02T09:00:04Z"
    dupes.append(conflicting)
    files["messages_conflicting_duplicates.csv"] = _csv(dupes, MESSAGE_HEADER)

    lines = [_webhook_line("wamid.W1", "sent", 1751446800), "{this is not json",
             _webhook_line("wamid.W1", "delivered", 1751446805), "[1, 2, 3]"]
    files["webhooks_not_json.jsonl"] = ("\n".join(lines) + "\n").encode("utf-8")
    files["webhooks_all_garbage.jsonl"] = b"<html>502 Bad Gateway</html>\nnot json either\n"
    # a corrupt first line must not make the reader take the file for plain rows
    files["webhooks_first_line_bad.jsonl"] = ("\n".join(
        ['{"object": "whatsapp_business_acc', _webhook_line("wamid.W1", "sent", 1751446800),
         _webhook_line("wamid.W1", "delivered", 1751446805)]) + "\n").encode("utf-8")
    # JSON allows U+2028 / U+0085 unescaped inside strings: they must not split a line
    inbound = {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages",
               "value": {"messaging_product": "whatsapp",
                         "metadata": {"display_phone_number": "551130030000", "phone_number_id": PHONE},
                         "messages": [{"from": USERS[0], "id": "wamid.IN1", "timestamp": "1751446000",
                                       "type": "text", "text": {"body": "linha 1\u2028linha 2\x85fim"}}]}}]}]}
    files["webhooks_line_separator.jsonl"] = ("\n".join(
        [json.dumps(inbound, ensure_ascii=False), _webhook_line("wamid.W1", "sent", 1751446800),
         _webhook_line("wamid.W1", "delivered", 1751446805)]) + "\n").encode("utf-8")

    inv = base_invoice()
    bad_amounts = [list(r) for r in inv]
    bad_amounts[0][9] = "-0.1250"
    bad_amounts[1][9] = "NaN"
    files["invoice_negative_nan.csv"] = _csv(bad_amounts, INVOICE_HEADER)
    unknown = [list(r) for r in inv]
    unknown[3][6] = "premium_authentication"
    files["invoice_unknown_category.csv"] = _csv(unknown, INVOICE_HEADER)
    other_ccy = [list(r) for r in inv]
    other_ccy[0][10] = "USD"
    files["invoice_other_currency.csv"] = _csv(other_ccy, INVOICE_HEADER)

    # empty period: only June (lookback) messages; period 2025-07 has nothing
    files["messages_empty_period.csv"] = _csv([msgs[0]], MESSAGE_HEADER)

    # CSV injection payloads in every text field of the messages, the invoice and the accounts
    inj_msgs = [list(r) for r in msgs]
    for i, p in enumerate(INJECTION_PAYLOADS):
        inj_msgs.append([f"{p}", WABA, PHONE, USERS[i % 3], "outbound", f"2025-07-2{i}T10:00:00Z", "delivered",
                         f"2025-07-2{i}T10:00:01Z", "", "template", "marketing", ""])
    inj_msgs.append(["wamid.X1", WABA, PHONE, USERS[0], "outbound", "2025-07-28T10:00:00Z", "delivered",
                     "2025-07-28T10:00:01Z", "", "template", "=cmd|' /C calc'!A0", "@SUM(A1)"])
    inj_msgs.append(["wamid.X2", WABA, "=HYPERLINK(\"http://x\")", USERS[0], "+1+1", "-2", "@SUM(A1)",
                     "", "", "\t=1", "\r=1", ""])
    files["messages_injection.csv"] = _csv(inj_msgs, MESSAGE_HEADER, quote_all=True)
    inj_inv = [list(r) for r in inv]
    for i, p in enumerate(INJECTION_PAYLOADS):
        inj_inv.append([p, WABA, p, "2025-07", p, "PMP", "marketing", "regular", "1", "0.0625", "BRL"])
    inj_inv.append(["INV-7", WABA, "", "2025-07", "Brazil", "PMP", "=1+1", "regular", "1", "0.0625", "BRL"])
    inj_inv.append(["INV-7", WABA, "", "2025-07", "Brazil", "=2+2", "marketing", "@x", "1", "0.0625", "BRL"])
    files["invoice_injection.csv"] = _csv(inj_inv, INVOICE_HEADER, quote_all=True)
    files["accounts_injection.csv"] = _csv(
        [[WABA, '=HYPERLINK("http://x","click")', "UTC", "BRL", "BR", "+1+1"]],
        ["waba_id", "name", "timezone", "currency", "business_country", "portfolio_id"])
    return files


def huge_fields_csv(size: int = 1 << 20) -> bytes:
    """The base log plus a row whose message_id is ``size`` characters and one with a ``size``-long
    template category (so its finding's detail quotes it): built by the test, not committed."""
    rows = base_messages()
    rows.append(["wamid." + "A" * size, WABA, PHONE, USERS[0], "outbound", "2025-07-20T10:00:00Z", "delivered",
                 "2025-07-20T10:00:01Z", "", "template", "marketing", ""])
    rows.append(["wamid.BIGCAT", WABA, PHONE, USERS[0], "outbound", "2025-07-21T10:00:00Z", "delivered",
                 "2025-07-21T10:00:01Z", "", "template", "x" * size, ""])
    return _csv(rows, MESSAGE_HEADER)


def write_all(folder: str = HERE) -> list[str]:
    written = []
    for name, data in {**base_files(), **case_files()}.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        written.append(name)
    return written


if __name__ == "__main__":  # pragma: no cover
    names = write_all(sys.argv[1] if len(sys.argv) > 1 else HERE)
    print(f"wrote {len(names)} files")
