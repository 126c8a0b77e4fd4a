"""Message and account readers: formats, normalisation and the exact data-quality records."""
from __future__ import annotations

import gzip
import os

import numpy as np
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


def _messy_rows():
    """Padded, mixed-case, hyphenated, null and oversized values (row groups of 3 rows: a dictionary
    per chunk), as text and typed timestamps."""
    mid = [" wamid.P1 ", "wamid.P2", None, "\u00a0wamid.P4\u3000", "wamid.P5", "x" * 300, "wamid.P7", "wamid.P8"]
    return {
        "message_id": mid,
        "waba_id": ["102290129340398", " 102290129340398", "102290129340398", "999", None, "102290129340398",
                    "102290129340398", "W" * 257],
        "phone_number_id": ["1", "2 ", None, "1", "1", "1", "3", "1"],
        "user_wa_id": ["+55 11 98765 0001", "447700900123", "1", " 2 ", None, "3", "4", "5"],
        "direction": [" Inbound", "OUTBOUND ", "outbound", "INBOUND", "inbound", None, "outbound", "in-bound"],
        "status": ["READ", "delivered ", "sent", "sent", "bogus", "read", "Expired", "sent"],
        "message_kind": ["Free Form", "template", None, "", "template", "x", "free-form", "template"],
        "template_category": ["", "Marketing-Lite", "utility", "authentication-international", "service", "nope",
                              "", "marketing"],
        "entry_point": ["Page-CTA", "", "ad", None, "tv", "", "", ""],
        "pricing_billable": ["true", None, " false", "true", "", "", "", ""],
    }


def test_parquet_csv_and_jsonl_read_messy_values_alike(tmp_path, accounts):
    cols = _messy_rows()
    sent = [1751364060 + 60 * i for i in range(8)]
    naive = [None, 1751364065, None, None, 1751364070, None, None, None]
    table = pa.table({**{c: pa.array(v, pa.string()) for c, v in cols.items()},
                      "sent_at": pa.array([s * 1000 for s in sent], pa.timestamp("ms", tz="Europe/Paris")),
                      "delivered_at": pa.array([None if v is None else v * 10**6 for v in naive], pa.timestamp("us"))})
    pq.write_table(table, tmp_path / "m.parquet", row_group_size=3)
    iso = [pd.Timestamp(s, unit="s", tz="UTC").isoformat() for s in sent]
    plain = [None if v is None else pd.Timestamp(v, unit="s").strftime("%Y-%m-%d %H:%M:%S") for v in naive]
    frame = pd.DataFrame({**cols, "sent_at": iso, "delivered_at": plain})
    frame.to_csv(tmp_path / "m.csv", index=False)
    frame.to_json(tmp_path / "m.jsonl", orient="records", lines=True, force_ascii=False)
    got = {}
    for name in ("m.parquet", "m.csv", "m.jsonl"):
        q = QualityLog()
        out, infos = tables.read_messages([str(tmp_path / name)], q, accounts=accounts)
        got[name] = (out, [r[:2] + r[3:] for r in _records(q)], infos[0].rows)
    out, findings, rows = got["m.parquet"]
    for name in ("m.csv", "m.jsonl"):
        assert out.drop(columns="source").equals(got[name][0].drop(columns="source")), name
        assert findings == got[name][1] and rows == got[name][2] == 8, name
    assert findings == [
        ("error", "empty_message_id", 3, "message_id", ""),
        ("error", "oversized_value", 6, "message_id", "x" * 32 + "…[300 characters]"),
        ("error", "oversized_value", 8, "waba_id", "wamid.P8"),
        ("error", "unknown_account", 4, "waba_id", "wamid.P4"),
        ("error", "unknown_direction", 6, "direction", "x" * 300),
        ("error", "unknown_direction", 8, "direction", "wamid.P8"),
        ("error", "unknown_entry_point", 5, "entry_point", "wamid.P5"),
        ("error", "unknown_message_kind", 6, "message_kind", "x" * 300),
        ("error", "unknown_status", 5, "status", "wamid.P5"),
        ("error", "unknown_template_category", 6, "template_category", "x" * 300),
        ("warning", "timestamp_without_offset", 2, "delivered_at", "wamid.P2"),
    ]
    assert out["row"].tolist() == [1, 2, 7]
    assert out["message_id"].tolist() == ["wamid.P1", "wamid.P2", "wamid.P7"]
    assert out["user_wa_id"].tolist() == ["5511987650001", "447700900123", "4"]
    assert out["direction"].tolist() == ["inbound", "outbound", "outbound"]
    assert out["status"].tolist() == ["read", "delivered", "expired"]
    assert out["message_kind"].tolist() == ["free_form", "template", "free_form"]
    assert out["template_category"].tolist() == ["", "marketing", ""]
    assert out["entry_point"].tolist() == ["page_cta", "", ""]
    assert out["phone_number_id"].tolist() == ["1", "2", "3"]
    assert out["pricing_billable"].tolist() == ["true", "", ""]
    assert out["delivered_at"].tolist()[1] == pd.Timestamp(1751364065, unit="s", tz="UTC")
    assert [str(out[c].dtype) for c in ("message_id", "sent_at", "source", "row")] == \
        ["str", "datetime64[ns, UTC]", "category", "int64"]


def test_few_valued_columns_come_out_as_categoricals_of_their_distinct_values():
    import numpy as np

    # two spellings normalised to one value ("inbound" twice), a value only on a left-out row ("x")
    values = pa.array(["inbound", "outbound", "inbound", "x"], pa.large_string())
    codes = np.array([0, 1, 2, 3, 2, 1], dtype=np.int8)
    keep = np.array([True, True, True, False, True, True])
    got = tables._text_output(tables._Coded(codes, values), len(codes), keep, categorical=True)
    assert isinstance(got.dtype, pd.CategoricalDtype)
    assert got.tolist() == ["inbound", "outbound", "inbound", "inbound", "outbound"]
    assert list(got.cat.categories) == ["inbound", "outbound", "x"]        # one category per distinct value
    assert got.cat.codes.tolist() == [0, 1, 0, 0, 1]
    assert str(got.cat.categories.dtype) == "str"
    # an absent column: "" on every row
    absent = tables._text_output(None, 3, None, categorical=True)
    assert absent.tolist() == ["", "", ""] and list(absent.cat.categories) == [""]


def test_reader_hands_the_few_valued_columns_over_as_categoricals(tmp_path):
    frame = pd.DataFrame({"message_id": ["m1", "m2", "m3"], "waba_id": ["W1", "W1", "W2"],
                          "phone_number_id": ["1", "1", "2"], "user_wa_id": ["447700900001"] * 3,
                          "direction": ["Inbound", "outbound", "OUTBOUND"], "status": ["read", "sent", "read"],
                          "sent_at": ["2025-07-01T00:00:00Z"] * 3, "message_kind": ["free_form", "template", "template"],
                          "template_category": ["", "MARKETING", "utility"], "entry_point": [""] * 3})
    for name, write in (("m.csv", lambda p: frame.to_csv(p, index=False)), ("m.parquet", frame.to_parquet)):
        path = tmp_path / name
        write(path)
        out, _ = tables.read_messages([str(path)], QualityLog())
        for c in ("waba_id", "phone_number_id", "direction", "status", "message_kind", "template_category",
                  "entry_point"):
            assert isinstance(out[c].dtype, pd.CategoricalDtype), (name, c)
        assert out["direction"].tolist() == ["inbound", "outbound", "outbound"]
        assert list(out["direction"].cat.categories) == ["inbound", "outbound"]
        assert out["template_category"].tolist() == ["", "marketing", "utility"]
        assert str(out["message_id"].dtype) == "str" and str(out["user_wa_id"].dtype) == "str"
    # two files with different values: one category list, codes kept by the concatenation
    out, _ = tables.read_messages([str(tmp_path / "m.csv"), str(tmp_path / "m.parquet")], QualityLog())
    assert isinstance(out["waba_id"].dtype, pd.CategoricalDtype)
    assert out["waba_id"].tolist() == ["W1", "W1", "W2"] * 2


def test_arrow_fast_paths_match_the_general_ones():
    import numpy as np

    # fixed-width gather (ids of one length) and the constant column == Arrow's take
    values = pa.array(["W001", "W002", "W003"], pa.large_string())
    codes = np.array([2, 0, 1, 1, 2, 0], dtype=np.int8)
    for keep in (None, np.array([True, False, True, True, False, True])):
        got = tables._text_output(tables._Coded(codes, values), len(codes), keep)
        want = values.take(pa.array(codes if keep is None else codes[keep])).to_pylist()
        assert got.tolist() == want and str(got.dtype) == "str"
    same = tables._text_output(tables._Coded(np.zeros(4, dtype=np.int8), values), 4, None)
    assert same.tolist() == ["W001"] * 4
    mixed = tables._Coded(codes, pa.array(["a", "bb", ""], pa.large_string()))
    assert tables._text_output(mixed, 6, None).tolist() == ["", "a", "bb", "bb", "", "a"]
    # trimming is skipped only when no byte can be whitespace
    for texts in (["a1", "b2"], [" a1", "b2"], ["a1\u00a0", "b2"], ["a\x1f", "b"]):
        col = pa.chunked_array([pa.array(texts)])
        assert tables._trimmed(col).to_pylist() == pd.Series(texts, dtype="str").str.strip().tolist()
    # typed timestamps in every unit, zoned and naive, with nulls == the pandas route
    for unit in ("s", "ms", "us", "ns"):
        for tz in (None, "UTC", "Asia/Kolkata"):
            raw = pa.chunked_array([pa.array([1751364060 * 10 ** {"s": 0, "ms": 3, "us": 6, "ns": 9}[unit], None, 0],
                                             pa.timestamp(unit, tz=tz))] * 2)
            got, naive, far, far_text = tables._arrow_instants(raw)      # None: no row naive / out of range
            want, bad, want_naive = tables.parse_instants(raw.to_pandas())
            assert (naive is None) == (tz is not None)          # a zoned column has no naive row
            naive = np.zeros(len(raw), dtype=bool) if naive is None else naive
            assert got.equals(want) and naive.tolist() == want_naive.tolist() and not bad.any()
            assert far is None and far_text == []
    # a typed value beyond what nanoseconds hold is NaT, flagged, and quoted as stored
    got, naive, far, far_text = tables._arrow_instants(
        pa.chunked_array([pa.array([2 ** 62, None, 1751364060 * 10 ** 6], pa.timestamp("us"))]))
    assert got.isna().tolist() == [True, True, False] and far.tolist() == [True, False, False]
    assert naive.tolist() == [False, False, True] and far_text == [f"{2 ** 62} us"]


def test_typed_timestamp_out_of_nanosecond_range_is_a_bad_timestamp_not_a_crash(tmp_path):
    import pyarrow.parquet as pq

    ts = pa.timestamp("us", tz="UTC")
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({
        "message_id": ["m1", "m2"], "waba_id": ["W", "W"], "phone_number_id": ["P", "P"],
        "user_wa_id": ["4915112345678", "4915112345679"], "direction": ["outbound", "outbound"],
        "status": ["delivered", "delivered"],
        "sent_at": pa.array([1_751_364_060_000_000, 2 ** 62], ts),      # row 2: year 148108
        "delivered_at": pa.array([1_751_364_061_000_000, None], ts), "read_at": pa.array([None, None], ts),
        "message_kind": ["template", "template"], "template_category": ["utility", "utility"],
        "entry_point": ["", ""]}), path)
    quality = QualityLog()
    messages, infos = tables.read_messages([str(path)], quality)
    assert messages["message_id"].tolist() == ["m1"] and infos[0].rows == 2
    f = quality.frame()
    assert f[["severity", "code", "row", "column", "message_id"]].values.tolist() == [
        ["error", "bad_timestamp", 2, "sent_at", "m2"]]
    assert f["detail"].tolist() == [f"timestamp {2 ** 62} us since 1970-01-01 is outside the years 1677-2262: "
                                    "row left out"]


def test_csv_timestamps_now_far_years_and_huge_epochs_are_bad_timestamps_not_a_crash(tmp_path):
    # "now" is not a timestamp; year 1000 and epoch 9223372037 do not fit the nanosecond range: each row is
    # left out with a bad_timestamp error quoting the value, the others are read (no overflow error)
    path = tmp_path / "m.csv"
    path.write_text("message_id,waba_id,phone_number_id,user_wa_id,direction,sent_at,status\n"
                    "m1,W1,1,447700900001,outbound,2025-07-01T10:00:00Z,sent\n"
                    "m2,W1,1,447700900001,outbound,now,sent\n"
                    "m3,W1,1,447700900001,outbound,1000-07-09T08:40:14Z,sent\n"
                    "m4,W1,1,447700900001,outbound,9223372037,sent\n"
                    "m5,W1,1,447700900001,outbound,2025-07-02,sent\n")
    quality = QualityLog()
    out, _ = tables.read_messages([str(path)], quality)
    assert out["message_id"].tolist() == ["m1", "m5"]
    findings = quality.frame()
    bad = findings[findings["code"] == "bad_timestamp"]
    assert bad["message_id"].tolist() == ["m2", "m3", "m4"] and (bad["severity"] == "error").all()
    assert "'now'" in bad["detail"].iloc[0] and "'1000-07-09T08:40:14Z'" in bad["detail"].iloc[1]
    naive = findings[findings["code"] == "timestamp_without_offset"]
    assert naive["message_id"].tolist() == ["m5"]           # a date alone has no offset


@pytest.mark.parametrize("n", [0, 3, 200_000])      # 200,001 offsets: past 1 MiB, in a mapping of their own
def test_an_absent_text_column_reads_as_empty_strings(n):
    from reconcile.io.tables import _lazy_zeros, _text_output

    column = _text_output(None, n, None)
    assert str(column.dtype) == "str" and len(column) == n
    assert (column == "").all()
    keep = np.arange(n) % 2 == 0
    assert len(_text_output(None, n, keep)) == int(keep.sum())
    zeros = _lazy_zeros(n + 1)
    assert zeros.dtype == np.int64 and len(zeros) == n + 1 and not zeros.any()
