"""S3 I/O against moto's server mode (a real S3 API on 127.0.0.1) and local atomic publish."""
from __future__ import annotations

import gzip
import hashlib
import json
import os

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reconcile.io import locations, tables
from reconcile.quality import InputError, QualityLog

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "inputs")
LOG = os.path.join(DATA, "messages", "log.csv")


@pytest.fixture
def s3(s3_bucket, s3_server):
    locations.set_default_endpoint(s3_server)
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    yield client, s3_bucket
    locations.set_default_endpoint(None)


def test_list_prefix_skips_hidden_and_sorts(s3):
    client, bucket = s3
    for key in ("logs/b.csv.gz", "logs/a.parquet", "logs/_SUCCESS", "logs/.hidden.csv", "logs/sub/c.csv",
                "logs/readme.txt", "logsx/other.csv"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    got = locations.list_files(f"s3://{bucket}/logs", tables.TABLE_SUFFIXES)
    assert got == [f"s3://{bucket}/logs/a.parquet", f"s3://{bucket}/logs/b.csv.gz", f"s3://{bucket}/logs/sub/c.csv"]
    assert locations.list_files(f"s3://{bucket}/logs/b.csv.gz", ()) == [f"s3://{bucket}/logs/b.csv.gz"]
    with pytest.raises(InputError, match="nothing-here"):
        locations.list_files(f"s3://{bucket}/nothing-here/", (".csv",))


def test_read_csv_gz_and_parquet_from_s3(s3, tmp_path):
    client, bucket = s3
    data = gzip.compress(open(LOG, "rb").read())
    client.put_object(Bucket=bucket, Key="in/log.csv.gz", Body=data)
    local, _ = tables.read_messages([LOG], QualityLog())
    pq.write_table(pa.Table.from_pandas(local[tables.MESSAGE_COLUMNS], preserve_index=False), tmp_path / "p.parquet")
    client.upload_file(str(tmp_path / "p.parquet"), bucket, "in/p.parquet")
    q = QualityLog()
    messages, infos = tables.read_messages([f"s3://{bucket}/in/"], q)
    assert [i.path for i in infos] == [f"s3://{bucket}/in/log.csv.gz", f"s3://{bucket}/in/p.parquet"]
    assert len(messages) == 2 * len(local) == 12
    assert (messages["source"] == f"s3://{bucket}/in/log.csv.gz").sum() == 6
    assert messages.iloc[:6, :12].equals(messages.iloc[6:, :12].reset_index(drop=True))
    assert set(q.frame()["source"]) == {f"s3://{bucket}/in/log.csv.gz"}
    assert infos[0].sha256 == hashlib.sha256(data).hexdigest()
    assert locations.sha256_of(f"s3://{bucket}/in/log.csv.gz") == infos[0].sha256


def test_publish_directory_to_s3_writes_manifest_last(s3, tmp_path):
    client, bucket = s3
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "variance.csv").write_bytes(b"a,b\n1,2\n")
    (staging / "run.json").write_bytes(b"{}")
    client.put_object(Bucket=bucket, Key="out/2025-07/_SUCCESS", Body=b"old")
    manifest = locations.publish_directory(str(staging), f"s3://{bucket}/out/2025-07")
    assert [f["name"] for f in manifest["files"]] == ["run.json", "variance.csv"]
    assert manifest["files"][1] == {"name": "variance.csv", "size": 8,
                                    "sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest()}
    body = json.loads(client.get_object(Bucket=bucket, Key="out/2025-07/_SUCCESS")["Body"].read())
    assert body == manifest
    objects = client.list_objects_v2(Bucket=bucket, Prefix="out/2025-07/")["Contents"]
    times = {o["Key"].rsplit("/", 1)[-1]: o["LastModified"] for o in objects}
    assert times["_SUCCESS"] >= max(times["variance.csv"], times["run.json"])
    for f in manifest["files"]:
        assert locations.sha256_of(f"s3://{bucket}/out/2025-07/{f['name']}") == f["sha256"]


def test_local_publish_replaces_files_and_writes_manifest(tmp_path):
    staging, dest = tmp_path / "staging", tmp_path / "out"
    staging.mkdir()
    dest.mkdir()
    (dest / "variance.csv").write_bytes(b"old")
    (staging / "variance.csv").write_bytes(b"new")
    manifest = locations.publish_directory(str(staging), str(dest))
    assert (dest / "variance.csv").read_bytes() == b"new"
    assert json.loads((dest / "_SUCCESS").read_text()) == manifest
    assert sorted(os.listdir(dest)) == ["_SUCCESS", "variance.csv"]


def test_local_publish_failing_midway_leaves_no_partial_files(tmp_path, monkeypatch):
    staging, dest = tmp_path / "staging", tmp_path / "out"
    staging.mkdir()
    dest.mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        (staging / name).write_bytes(b"new " + name.encode())
    (dest / "a.csv").write_bytes(b"old a")
    (dest / "_SUCCESS").write_text("{}")

    def fail_on_b(name):
        if name == "b.csv":
            raise OSError("disk full")

    monkeypatch.setattr(locations, "_before_copy_hook", fail_on_b)
    with pytest.raises(OSError, match="disk full"):
        locations.publish_directory(str(staging), str(dest))
    assert sorted(os.listdir(dest)) == ["a.csv"]          # old file intact, no temp folder, no _SUCCESS
    assert (dest / "a.csv").read_bytes() == b"old a"


def test_atomic_write_and_write_bytes_local(tmp_path):
    path = tmp_path / "x" / "f.bin"
    locations.write_bytes(str(path), b"abc")
    assert path.read_bytes() == b"abc" and os.listdir(path.parent) == ["f.bin"]
    assert locations.read_bytes(str(path)) == b"abc"
    assert locations.sha256_of(str(path)) == hashlib.sha256(b"abc").hexdigest()
