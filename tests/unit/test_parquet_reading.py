"""The Parquet reader of the message logs: whole columns (one chunk per string column, whatever the row
groups), dictionary-encoded few-valued columns, and the error texts of unreadable files unchanged."""
from __future__ import annotations

import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reconcile.io import tables
from reconcile.quality import InputError, QualityLog

ROWS = {"message_id": [f"m{i}" for i in range(6)], "waba_id": ["W1", "W2", "W1", "W1", "W2", "W1"],
        "phone_number_id": ["P1"] * 6, "user_wa_id": ["+44 7700", "447701", "447702", "447703", "447704", "4477"],
        "Direction ": ["outbound", "inbound", "outbound", "outbound", "outbound", None],
        "sent_at": pa.array([1_751_364_000_000_000 + i for i in range(6)], pa.timestamp("us", tz="UTC")),
        "status": ["sent"] * 6}


def _write(tmp_path, **options) -> bytes:
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table(ROWS), path, **options)
    return path.read_bytes()


def test_row_groups_come_back_as_whole_columns(tmp_path):
    data = _write(tmp_path, row_group_size=2)               # three row groups
    table = tables._read_parquet_table(data, "log.parquet", dictionary=tables._CODED_MESSAGE_COLUMNS)
    assert table.column("message_id").num_chunks == 1
    assert table.column("message_id").to_pylist() == ROWS["message_id"]
    assert table.column("sent_at").to_pylist() == ROWS["sent_at"].to_pylist()
    # few-valued columns (their names normalised: "Direction ") are dictionary-encoded, per row group
    for name in ("waba_id", "Direction "):
        assert pa.types.is_dictionary(table.column(name).type)
        assert table.column(name).to_pylist() == ROWS[name]


def test_a_memory_view_reads_as_the_bytes(tmp_path):
    data = _write(tmp_path)
    from_view = tables._read_parquet_table(memoryview(data), "log.parquet")
    assert from_view.equals(tables._read_parquet_table(data, "log.parquet"))


@pytest.mark.parametrize("cut, reason", [
    (lambda d: d[:len(d) // 2], "Could not open Parquet input source '<Buffer>': Parquet magic bytes not found"),
    (lambda d: b"", "Could not open Parquet input source '<Buffer>': Parquet file size is 0 bytes"),
])
def test_an_unreadable_file_names_the_problem_as_before(tmp_path, cut, reason):
    data = cut(_write(tmp_path))
    with pytest.raises(InputError) as err:
        tables._read_parquet_table(data, "log.parquet")
    assert str(err.value).startswith(f"file log.parquet: not a readable Parquet file ({reason}")


def test_multi_row_group_log_reads_as_one_row_group(tmp_path):
    _write(tmp_path, row_group_size=2)
    q_many, q_one = QualityLog(), QualityLog()
    many, _ = tables.read_messages([str(tmp_path / "log.parquet")], q_many)
    _write(tmp_path)
    one, _ = tables.read_messages([str(tmp_path / "log.parquet")], q_one)
    assert many.equals(one) and q_many.frame().equals(q_one.frame())
    assert many["direction"].tolist() == ["outbound", "inbound", "outbound", "outbound", "outbound"]
    assert many["user_wa_id"].tolist() == ["447700", "447701", "447702", "447703", "447704"]
    assert q_many.frame()[["code", "row", "message_id"]].values.tolist() == [["unknown_direction", 6, "m5"]]


def test_a_local_file_is_mapped_not_copied(tmp_path):
    from reconcile.io import locations

    path = tmp_path / "log.parquet"
    path.write_bytes(b"PAR1 and some bytes")
    mapped = locations.map_bytes(str(path))
    assert not isinstance(mapped, bytes) and bytes(mapped) == b"PAR1 and some bytes"
    assert tables._sha256(mapped) == tables._sha256(b"PAR1 and some bytes")
    (tmp_path / "empty.parquet").write_bytes(b"")
    assert locations.map_bytes(str(tmp_path / "empty.parquet")) == b""      # nothing to map: read
    fifo = tmp_path / "fifo.parquet"                                         # a special file: read as a stream
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(b"PAR1 streamed",))
    writer.start()
    assert locations.map_bytes(str(fifo)) == b"PAR1 streamed"
    writer.join()
    with pytest.raises(InputError, match="no such file"):
        locations.map_bytes(str(tmp_path / "missing.parquet"))


def test_an_empty_parquet_log_is_the_error_it_was(tmp_path):
    (tmp_path / "log.parquet").write_bytes(b"")
    with pytest.raises(InputError) as err:
        tables.read_messages([str(tmp_path / "log.parquet")], QualityLog())
    assert "not a readable Parquet file (Could not open Parquet input source '<Buffer>': Parquet file size is 0 bytes" \
        in str(err.value)
