"""Message and account readers: formats, normalisation and the exact data-quality records."""
from __future__ import annotations

import gzip
import os
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reconcile.contracts import MESSAGE_COLUMNS
from reconcile.io import tables
from reconcile.quality import InputError, QualityLog

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "inputs")
LOG = os.path.join(DATA, "messages", "log.csv")
ACCOUNTS = os.path.join(DATA, "accounts", "accounts.csv")


@pytest.fixture
def accounts():
    return tables.read_accounts(ACCOUNTS, QualityLog())


def _records(q: QualityLog):
    f = q.frame()
    return [(r.severity, r.code, os.path.basename(r.source), None if pd.isna(r.row) else int(r.row), r.column,
             r.message_id) for r in f.itertuples()]


def test_csv_log_findings_are_exact(accounts):
    q = QualityLog()
    messages, infos = tables.read_messages([LOG], q, accounts=accounts)
    assert _records(q) == [
        ("error", "bad_timestamp", "log.csv", 3, "sent_at", "wamid.A3"),
        ("error", "empty_message_id", "log.csv", 5, "message_id", ""),
        ("error", "unknown_account", "log.csv", 8, "waba_id", "wamid.A8"),
        ("error", "unknown_direction", "log.csv", 4, "direction", "wamid.A4"),
        ("warning", "extra_column", "log.csv", None, "note", ""),
        ("warning", "timestamp_without_offset", "log.csv", 6, "sent_at", "wamid.A6"),
    ]
    assert messages["row"].tolist() == [1, 2, 6, 7, 9]
    assert infos[0].rows == 9 and len(infos[0].sha256) == 64


def test_csv_log_values_are_normalised(accounts):
    messages, _ = tables.read_messages([LOG], QualityLog(), accounts=accounts)
    first = messages.iloc[0]
    assert first["user_wa_id"] == "5511987650001"          # "+55 11 98765 0001"
    assert first["direction"] == "inbound" and first["entry_point"] == "ad"
    a2 = messages.iloc[1]
    assert a2["sent_at"] == pd.Timestamp("2025-07-01T10:01:00Z")            # epoch seconds
    assert a2["delivered_at"] == pd.Timestamp("2025-07-01T10:01:05Z")       # 13 digits = milliseconds
    assert (a2["status"], a2["message_kind"], a2["template_category"]) == ("delivered", "template", "marketing")
    assert messages.iloc[2]["template_category"] == "authentication"        # authentication-international
    assert messages.iloc[2]["sent_at"] == pd.Timestamp("2025-07-01T10:07:00Z")
    assert messages.iloc[4]["message_kind"] == "free_form"                  # "free form"
    assert str(messages["sent_at"].dtype) == "datetime64[ns, UTC]"
    assert messages["delivered_at"].isna().tolist() == [True, False, True, True, True]
    assert messages["template_category"].tolist()[-1] == ""               # "" not NaN


def test_duplicate_ids_with_conflicting_users_are_kept(accounts):
    messages, _ = tables.read_messages([LOG], QualityLog(), accounts=accounts)
    dup = messages[messages["message_id"] == "wamid.A2"]
    assert dup["user_wa_id"].tolist() == ["5511987650001", "5511987650999"]
    assert dup["row"].tolist() == [2, 7]


def test_same_rows_from_gzip_parquet_and_jsonl(tmp_path, accounts):
    reference, _ = tables.read_messages([LOG], QualityLog(), accounts=accounts)
    gz = tmp_path / "a" / "log.csv.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(open(LOG, "rb").read()))
    via_gz, _ = tables.read_messages([str(tmp_path / "a")], QualityLog(), accounts=accounts)
    assert via_gz.drop(columns="source").equals(reference.drop(columns="source"))

    frame = reference[MESSAGE_COLUMNS].copy()
    frame["user_wa_id"] = frame["user_wa_id"]
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "log.parquet")
    via_pq, _ = tables.read_messages([str(tmp_path / "log.parquet")], QualityLog(), accounts=accounts)
    assert via_pq[MESSAGE_COLUMNS].equals(reference[MESSAGE_COLUMNS])

    lines = ['{"message_id":"m1","waba_id":102290129340398,"phone_number_id":"1","user_wa_id":447700900123,'
             '"direction":"outbound","sent_at":1751364060,"status":"sent"}',
             'not json']
    (tmp_path / "log.jsonl").write_text("\n".join(lines) + "\n")
    q = QualityLog()
    via_jsonl, _ = tables.read_messages([str(tmp_path / "log.jsonl")], q, accounts=accounts)
    assert via_jsonl["waba_id"].tolist() == ["102290129340398"]     # numbers read back as id strings
    assert via_jsonl["user_wa_id"].tolist() == ["447700900123"]
    assert via_jsonl["sent_at"].tolist() == [pd.Timestamp("2025-07-01T10:01:00Z")]
    assert _records(q) == [("error", "bad_json", "log.jsonl", 2, "", "")]


def test_parquet_ids_stored_as_integers_become_strings(tmp_path):
    table = pa.table({"message_id": ["m1"], "waba_id": pa.array([102290129340398], pa.int64()),
                      "phone_number_id": pa.array([106540352242922], pa.int64()),
                      "user_wa_id": pa.array([5511987650001], pa.int64()), "direction": ["outbound"],
                      "sent_at": pa.array([1751364060000], pa.timestamp("ms", tz="UTC")), "status": ["sent"]})
    pq.write_table(table, tmp_path / "x.parquet")
    out, _ = tables.read_messages([str(tmp_path / "x.parquet")], QualityLog())
    assert out.loc[0, ["waba_id", "phone_number_id", "user_wa_id"]].tolist() == [
        "102290129340398", "106540352242922", "5511987650001"]
    assert out.loc[0, "sent_at"] == pd.Timestamp("2025-07-01T10:01:00Z")


def test_missing_required_column_is_input_error(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("message_id,waba_id,phone_number_id,user_wa_id,sent_at,status\nm,1,2,3,4,sent\n")
    with pytest.raises(InputError) as err:
        tables.read_messages([str(path)], QualityLog())
    assert str(path) in str(err.value) and "'direction'" in str(err.value)


def test_truncated_gzip_and_bad_encoding_are_input_errors(tmp_path):
    data = gzip.compress(open(LOG, "rb").read())
    (tmp_path / "t.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="t.csv.gz.*gzip"):
        tables.read_messages([str(tmp_path / "t.csv.gz")], QualityLog())
    (tmp_path / "latin.csv").write_bytes(
        "message_id,waba_id,phone_number_id,user_wa_id,direction,sent_at,status\nm\xe9,1,2,3,inbound,1,received\n"
        .encode("latin-1"))
    with pytest.raises(InputError, match="latin.csv.*UTF-8"):
        tables.read_messages([str(tmp_path / "latin.csv")], QualityLog())
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="bad.parquet.*Parquet"):
        tables.read_messages([str(tmp_path / "bad.parquet")], QualityLog())


def test_ragged_csv_rows_are_reported_not_fatal(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("message_id,waba_id,phone_number_id,user_wa_id,direction,sent_at,status\n"
                    "m1,1,2,3,inbound,1751364060,received\nm2,1,2\nm3,1,2,3,inbound,1751364060,received\n")
    q = QualityLog()
    out, _ = tables.read_messages([str(path)], q)
    assert out["row"].tolist() == [1, 3]
    assert _records(q) == [("error", "bad_row", "r.csv", 2, "", "")]


def test_missing_folder_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        tables.read_messages([str(tmp_path / "nope")], QualityLog())


def test_accounts_defaults_and_errors(tmp_path):
    acc = tables.read_accounts(ACCOUNTS, QualityLog())
    assert acc["timezone"].tolist() == ["America/Sao_Paulo", "UTC"]
    assert acc["portfolio_id"].tolist() == ["102290129340398", "P1"]
    assert acc["business_country"].tolist() == ["BR", "US"]
    for body, column in (("waba_id,currency,timezone\n1,USD,Mars/Base\n", "timezone"),
                         ("waba_id,currency\n1,USS\n", "currency"),
                         ("waba_id,currency\n1,USD\n1,EUR\n", "waba_id")):
        path = tmp_path / "a.csv"
        path.write_text(body)
        with pytest.raises(InputError) as err:
            tables.read_accounts(str(path), QualityLog())
        assert err.value.column == column and err.value.row is not None
