"""Local paths and ``s3://bucket/prefix`` URIs: listing, reading, writing, atomic publish.

Every input and output path of the tool may be local or on S3 (contracts.md, "Command line").
S3 goes through boto3; the endpoint comes from :func:`set_default_endpoint` (the CLI flag
``--s3-endpoint-url``), else from ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (which boto3
honours itself); region and credentials come from the standard AWS chain.

Publishing (contracts.md, "Publishing"): outputs are written to a staging folder, then moved into
place and a ``_SUCCESS`` manifest (names, sizes, sha256, ``published_at``) is written *last*.
On S3, where nothing can be renamed atomically, consumers trust a prefix only once its
``_SUCCESS`` exists; an old ``_SUCCESS`` is deleted before anything is replaced.
"""
from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import shutil
import stat
import tempfile
import threading
from datetime import datetime, timezone
from typing import BinaryIO, Callable

from ..quality import InputError

_CHUNK = 1 << 20
_SKIPPED_NAMES = {"_SUCCESS"}

_default_endpoint: str | None = None

#: test hook: called with each file name just before it is copied into the temporary folder of a
#: local publish (lets a test make a copy fail midway). ``None`` in normal use.
_before_copy_hook: Callable[[str], None] | None = None


def set_default_endpoint(url: str | None) -> None:
    """Use ``url`` as the S3 endpoint for every client made afterwards (``None`` = AWS default)."""
    global _default_endpoint
    _default_endpoint = url or None


def s3_client(endpoint_url: str | None = None):
    """A boto3 S3 client with standard retries (8 attempts) and bounded timeouts."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or _default_endpoint
    config = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=10, read_timeout=120,
                    s3={"addressing_style": "path"} if endpoint else None)
    kwargs = {"config": config}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    with _CLIENT_LOCK:          # boto3's default session is not thread-safe: readers run in two threads
        return boto3.client("s3", **kwargs)


_CLIENT_LOCK = threading.Lock()


# --------------------------------------------------------------------------- uris
def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/part`` → (``bucket``, ``key/part``)."""
    rest = str(uri)[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InputError("S3 URI without a bucket", source=str(uri))
    return bucket, key


def base_name(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("_") or name in _SKIPPED_NAMES


def _matches(name: str, suffixes: tuple[str, ...]) -> bool:
    low = name.lower()
    return not suffixes or any(low.endswith(s.lower()) for s in suffixes)


def list_files(uri: str, suffixes: tuple[str, ...] = ()) -> list[str]:
    """A file → ``[uri]``; a folder or prefix → every file under it whose name ends with one of
    ``suffixes`` (case-insensitive), sorted; hidden files (``.x``, ``_x``, ``_SUCCESS``) are
    skipped. Raises :class:`InputError` naming the path when it is missing or nothing matches."""
    uri = str(uri)
    if is_s3(uri):
        return _list_s3(uri, suffixes)
    if os.path.isfile(uri):
        return [uri]
    if not os.path.isdir(uri):
        raise InputError("no such file or folder", source=uri)
    found = []
    for root, dirs, files in os.walk(uri):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        for f in files:
            if not _hidden(f) and _matches(f, suffixes):
                found.append(os.path.join(root, f))
    if not found:
        raise InputError(f"no input file ending with {', '.join(suffixes) or 'anything'} under this folder",
                         source=uri)
    return sorted(found)


def _list_s3(uri: str, suffixes: tuple[str, ...]) -> list[str]:
    bucket, key = split_s3(uri)
    client = s3_client()
    if key and not key.endswith("/"):
        try:
            client.head_object(Bucket=bucket, Key=key)
            return [uri]
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        prefix = key + "/"
    else:
        prefix = key
    found = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                k = obj["Key"]
                rel = k[len(prefix):]
                if k.endswith("/") or any(_hidden(part) for part in rel.split("/")):
                    continue
                if _matches(rel, suffixes):
                    found.append(f"s3://{bucket}/{k}")
    except client.exceptions.NoSuchBucket as exc:
        raise InputError("no such S3 bucket", source=uri) from exc
    if not found:
        raise InputError(f"no input object ending with {', '.join(suffixes) or 'anything'} under this prefix",
                         source=uri)
    return sorted(found)


# --------------------------------------------------------------------------- reading
def read_bytes(uri: str) -> bytes:
    uri = str(uri)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        client = s3_client()
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (client.exceptions.NoSuchKey, client.exceptions.NoSuchBucket) as exc:
            raise InputError("no such S3 object", source=uri) from exc
    try:
        with open(uri, "rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise InputError("no such file", source=uri) from exc


def map_bytes(uri: str):
    """The bytes of a file as a read-only buffer: a regular local file memory-mapped (its pages are read
    from the page cache as they are used: no copy into a Python ``bytes``, ~8 ms per 25 MB), anything
    else (an S3 object, an empty or special file, a file system that cannot map) as :func:`read_bytes`.
    The map closes when no longer referenced. The file must not shrink while mapped (reading a page cut
    off raises SIGBUS): inputs are read, never written, by a run."""
    uri = str(uri)
    if is_s3(uri):
        return read_bytes(uri)
    try:
        with open(uri, "rb") as fh:
            info = os.fstat(fh.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > 0:
                try:
                    return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                except (OSError, ValueError):
                    pass
            return fh.read()
    except FileNotFoundError as exc:
        raise InputError("no such file", source=uri) from exc


def open_binary(uri: str) -> BinaryIO:
    """A readable binary file object (local: the file; S3: the object, buffered in memory)."""
    uri = str(uri)
    if is_s3(uri):
        return io.BytesIO(read_bytes(uri))
    try:
        return open(uri, "rb")
    except FileNotFoundError as exc:
        raise InputError("no such file", source=uri) from exc


def sha256_of(uri: str) -> str:
    """Hex sha256 of a file or object, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    uri = str(uri)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(_CHUNK), b""):
            digest.update(chunk)
        return digest.hexdigest()
    with open(uri, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- writing
def atomic_write_local(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(uri: str, data: bytes) -> None:
    uri = str(uri)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client().put_object(Bucket=bucket, Key=key, Body=data)
    else:
        atomic_write_local(uri, data)


def _join(dest: str, name: str) -> str:
    return dest.rstrip("/") + "/" + name if is_s3(dest) else os.path.join(dest, name)


def _manifest(files: list[tuple[str, str]]) -> dict:
    """files: (name, local path) pairs."""
    entries = []
    for name, path in sorted(files):
        entries.append({"name": name, "size": os.path.getsize(path), "sha256": sha256_of(path)})
    return {"files": entries, "published_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


#: a ``.publish-*`` folder older than this was left by a publish that was killed (SIGKILL, power loss)
STALE_PUBLISH_SECONDS = 3600


def _remove_stale_publish_folders(dest: str) -> None:
    """Remove hidden ``.publish-*`` folders left in ``dest`` by killed publishes (readers skip hidden
    names, so they are only litter). Only folders older than :data:`STALE_PUBLISH_SECONDS`, so a
    publish still under way elsewhere is never touched."""
    import time

    now = time.time()
    for name in os.listdir(dest):
        path = os.path.join(dest, name)
        if name.startswith(".publish-") and os.path.isdir(path):
            try:
                if now - os.stat(path).st_mtime > STALE_PUBLISH_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            except FileNotFoundError:
                pass


def publish_directory(staging_dir: str, dest: str, manifest_name: str = "_SUCCESS") -> dict:
    """Move the files of ``staging_dir`` (top level, not hidden) into ``dest`` and write the
    manifest last. Returns the manifest (``files``: name, size, sha256; ``published_at``).

    Local: the old manifest is deleted first; every file is copied into a temporary folder
    inside ``dest`` (same file system), then ``os.replace``-d into place one by one, then the
    manifest is written atomically. If a copy fails, the temporary folder is removed and
    ``dest`` is untouched apart from the removed old manifest (so it is not trusted).
    S3: the old manifest is deleted first, every file uploaded, the manifest put last.
    """
    names = sorted(f for f in os.listdir(staging_dir)
                   if not _hidden(f) and os.path.isfile(os.path.join(staging_dir, f)))
    files = [(n, os.path.join(staging_dir, n)) for n in names]
    manifest = _manifest(files)
    body = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    if is_s3(dest):
        bucket, key = split_s3(dest)
        prefix = key.rstrip("/") + "/" if key else ""
        client = s3_client()
        client.delete_object(Bucket=bucket, Key=prefix + manifest_name)
        for name, path in files:
            client.upload_file(path, bucket, prefix + name)
        client.put_object(Bucket=bucket, Key=prefix + manifest_name, Body=body,
                          ContentType="application/json")
        return manifest

    os.makedirs(dest, exist_ok=True)
    old = os.path.join(dest, manifest_name)
    if os.path.exists(old):
        os.unlink(old)
    _remove_stale_publish_folders(dest)
    tmp_dir = tempfile.mkdtemp(prefix=".publish-", dir=dest)
    try:
        for name, path in files:
            if _before_copy_hook is not None:
                _before_copy_hook(name)
            shutil.copyfile(path, os.path.join(tmp_dir, name))
        for name, _ in files:
            os.replace(os.path.join(tmp_dir, name), os.path.join(dest, name))
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    atomic_write_local(os.path.join(dest, manifest_name), body)
    return manifest
