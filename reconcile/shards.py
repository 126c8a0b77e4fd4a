"""Split by key hash / merge: the scale-out seam of the engine.

The engine's windows depend only on the events of one key ``(phone_number_id, user_wa_id)``
(rule book section 0, "Key"); everything that spans keys (free tier, volume tiers, pricing) runs
afterwards on the *raw units* in :func:`reconcile.engine.accounts.finalize_units`. So a month can be
computed as

1. :func:`reconcile.engine.dedupe_messages` on all messages — every copy of a ``message_id`` must be
   seen together, and a conflicting duplicate may carry two different keys, so deduplication comes
   *before* the split;
2. :func:`partition_messages`: the deduplicated messages split into ``n`` shards by a stable hash;
3. :func:`reconcile.engine.window_units` on each shard independently (in parallel: Airflow mapped
   task instances, processes, machines);
4. :func:`merge_raw_units` and ``finalize_units`` on the union.

The shard of a message is a hash of its **user number** (``user_wa_id``), which keeps every key of
one user together: the key ``(phone_number_id, user_wa_id)`` never straddles two shards, and the
per-number findings of the market lookup (``unparseable_number`` / ``unknown_calling_code``, one per
distinct number) come out exactly as in a single-process run even when one user talks to several
business numbers. :func:`key_hash` hashes any combination of string columns with pandas' SipHash
(``hash_pandas_object`` with a fixed key), so the shard of a message is the same in every process,
on every machine and in every run — unlike Python's salted ``hash()``.

:func:`compute_sharded` runs the whole sharded computation in one process and returns the same
:class:`reconcile.engine.EngineResult` as :func:`reconcile.engine.compute_units` (same units, raw
units, counts and findings); the tests hold the two to equality. The Parquet helpers
(:func:`write_frame`, :func:`read_frame`, :func:`save_quality`, :func:`load_quality`) move shards
and findings between workers through a local folder or an ``s3://`` prefix.
"""
from __future__ import annotations

import io
import os
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .quality import QualityLog

#: columns whose combined hash decides the shard (see the module docstring for why the user alone)
PARTITION_COLUMNS: tuple[str, ...] = ("user_wa_id",)
#: fixed 16-byte SipHash key: changing it moves every message to another shard (results unchanged)
HASH_KEY = "reconcile-shards"
#: order of raw units produced by a single ``window_units`` call: key, then open instant
RAW_UNIT_ORDER = ["phone_number_id", "user_wa_id", "opened_at", "opening_message_id"]
COVERAGE_ORDER = ["phone_number_id", "user_wa_id", "charged_at", "message_id"]


# --------------------------------------------------------------------------- hashing and splitting
def key_hash(*columns: Sequence) -> np.ndarray:
    """Stable ``uint64`` hash of each row of one or more string columns (e.g.
    ``key_hash(phone_number_id, user_wa_id)``): equal inputs give equal hashes in every process."""
    if not columns:
        raise ValueError("key_hash needs at least one column")
    frame = pd.DataFrame({f"c{i}": pd.Series(np.asarray(c, dtype=object)).fillna("").astype(str)
                          for i, c in enumerate(columns)})
    return pd.util.hash_pandas_object(frame, index=False, hash_key=HASH_KEY).to_numpy(dtype=np.uint64)


def shard_of(messages: pd.DataFrame, n: int, by: Sequence[str] = PARTITION_COLUMNS) -> np.ndarray:
    """Shard number (``0..n-1``, ``int64``) of each message."""
    if n < 1:
        raise ValueError(f"number of shards must be >= 1, got {n}")
    if len(messages) == 0:
        return np.zeros(0, dtype=np.int64)
    return (key_hash(*(messages[c] for c in by)) % np.uint64(n)).astype(np.int64)


def partition_messages(deduped: pd.DataFrame, n: int, by: Sequence[str] = PARTITION_COLUMNS) -> list[pd.DataFrame]:
    """Split deduplicated messages into ``n`` frames by :func:`shard_of` (input order kept inside each
    shard; empty shards are empty frames with the same columns)."""
    shard = shard_of(deduped, n, by)
    order = np.argsort(shard, kind="stable")
    bounds = np.searchsorted(shard[order], np.arange(n + 1))
    return [deduped.iloc[order[bounds[i]:bounds[i + 1]]].reset_index(drop=True) for i in range(n)]


# --------------------------------------------------------------------------- merging
def _concat(parts: Iterable[pd.DataFrame], order: list[str]) -> pd.DataFrame:
    parts = list(parts)
    non_empty = [p for p in parts if len(p)]
    if not non_empty:
        return parts[0].iloc[0:0].reset_index(drop=True) if parts else pd.DataFrame()
    merged = pd.concat(non_empty, ignore_index=True)
    keys = [c for c in order if c in merged.columns]
    return merged.sort_values(keys, kind="stable").reset_index(drop=True) if keys else merged


def merge_raw_units(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Union of the raw units of every shard, in the order one ``window_units`` call gives
    (key, then ``opened_at``, then opening message id)."""
    return _concat(parts, RAW_UNIT_ORDER)


def merge_coverage(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Union of the coverage rows of every shard, ordered by key, charge instant and message id."""
    return _concat(parts, COVERAGE_ORDER)


def merge_counts(parts: Iterable[dict]) -> dict:
    """Sum the per-shard counts of ``window_units`` (every one of them is additive over keys)."""
    total: dict = {}
    for counts in parts:
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    return total


# --------------------------------------------------------------------------- local sharded run
def compute_sharded(messages: pd.DataFrame, accounts: pd.DataFrame, rates: pd.DataFrame,
                    market_map: pd.DataFrame, period, quality: QualityLog, n: int):
    """The engine run as ``n`` shards in this process: dedupe → partition → window per shard →
    merge → finalize. Same result as :func:`reconcile.engine.compute_units` (coverage rows may come
    in another order)."""
    from .engine import EngineResult, dedupe_messages, window_units
    from .engine.accounts import finalize_units

    deduped, counts = dedupe_messages(messages, quality)
    raw_parts, coverage_parts, window_counts = [], [], []
    for shard in partition_messages(deduped, n):
        raw_units, coverage, shard_counts = window_units(shard, accounts, market_map, quality)
        raw_parts.append(raw_units)
        coverage_parts.append(coverage)
        window_counts.append(shard_counts)
    raw_units = merge_raw_units(raw_parts)
    counts.update(merge_counts(window_counts))
    units, final_counts = finalize_units(raw_units, accounts, rates, period, quality)
    counts.update(final_counts or {})
    return EngineResult(units=units, raw_units=raw_units, coverage=merge_coverage(coverage_parts), counts=counts)


# --------------------------------------------------------------------------- moving shards between workers
def join_uri(prefix: str, *names: str) -> str:
    """``prefix/name/...`` for a local folder or an ``s3://`` prefix."""
    if prefix.startswith("s3://"):
        return "/".join([prefix.rstrip("/"), *names])
    return os.path.join(prefix, *names)


def _s3_parts(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def write_bytes(uri: str, data: bytes) -> None:
    """Write one object (``s3://``) or file (parents created)."""
    if uri.startswith("s3://"):
        from .io import locations

        bucket, key = _s3_parts(uri)
        locations.s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        return
    os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
    with open(uri, "wb") as f:
        f.write(data)


def read_bytes(uri: str) -> bytes:
    if uri.startswith("s3://"):
        from .io import locations

        return locations.read_bytes(uri)
    with open(uri, "rb") as f:
        return f.read()


def write_frame(frame: pd.DataFrame, uri: str) -> str:
    """Store a frame as Parquet at ``uri`` (local or ``s3://``); returns ``uri``."""
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    write_bytes(uri, buffer.getvalue())
    return uri


def read_frame(uri: str) -> pd.DataFrame:
    """Read a frame written by :func:`write_frame`."""
    return pd.read_parquet(io.BytesIO(read_bytes(uri)))


def save_quality(quality: QualityLog, uri: str) -> str:
    """Store the findings collected so far (the contract's columns) as Parquet."""
    return write_frame(quality.frame(), uri)


def load_quality(uri: str, quality: QualityLog) -> None:
    """Add the findings stored by :func:`save_quality` to ``quality`` (one vectorised call per code)."""
    restore_quality(read_frame(uri), quality)


def restore_quality(findings: pd.DataFrame, quality: QualityLog) -> None:
    """Add the rows of a ``QualityLog.frame()`` to ``quality`` (loops over severity and code only)."""
    if findings.empty:
        return
    for (severity, code), group in findings.groupby(["severity", "code"], sort=True):
        rows = pd.array(group["row"], dtype="Int64")
        quality.add_many(severity, code, source=group["source"].to_numpy(dtype=object),
                         row=np.asarray(rows.astype(object)), column=group["column"].to_numpy(dtype=object),
                         message_id=group["message_id"].to_numpy(dtype=object),
                         detail=group["detail"].to_numpy(dtype=object))
