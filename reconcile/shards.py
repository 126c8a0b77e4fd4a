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

import dataclasses
import io
import json
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
#: name of the JSON summary of stage 1 under the work prefix
PREPARED_MANIFEST = "prepared.json"


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
    merged = pd.concat(_same_categories(non_empty), ignore_index=True)
    keys = [c for c in order if c in merged.columns]
    return merged.sort_values(keys, kind="stable").reset_index(drop=True) if keys else merged


def _same_categories(parts: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """The parts with each column that is Categorical in every part recoded to one category list (the
    union, in order of first appearance), so that concatenating keeps it Categorical (codes, not
    strings) instead of falling back to objects."""
    columns = [c for c in parts[0].columns
               if all(c in p.columns and isinstance(p[c].dtype, pd.CategoricalDtype) for p in parts)]
    unions = {}
    for c in columns:
        names = list(dict.fromkeys(v for p in parts for v in p[c].cat.categories))
        if any(list(p[c].cat.categories) != names for p in parts):
            unions[c] = pd.CategoricalDtype(pd.Index(names, dtype=parts[0][c].cat.categories.dtype))
    if not unions:
        return parts
    return [p.astype(unions) for p in parts]


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
    counts.update(_window_counts(merge_counts(window_counts)))
    units, final_counts = finalize_units(raw_units, accounts, rates, period, quality)
    counts.update(final_counts or {})
    counts.setdefault("units", int(len(units)))
    return EngineResult(units=units, raw_units=raw_units, coverage=merge_coverage(coverage_parts), counts=counts)


def _window_counts(counts: dict) -> dict:
    """``window_units`` counts under the names ``compute_units`` reports them (``units`` → ``raw_units``)."""
    counts = dict(counts)
    if "units" in counts:
        counts["raw_units"] = counts.pop("units")
    return counts


# --------------------------------------------------------------------------- moving shards between workers
def join_uri(prefix: str, *names: str) -> str:
    """``prefix/name/...`` for a local folder or an ``s3://`` prefix."""
    if prefix.startswith("s3://"):
        return "/".join([prefix.rstrip("/"), *names])
    return os.path.join(prefix, *names)


def write_frame(frame: pd.DataFrame, uri: str) -> str:
    """Store a frame as Parquet at ``uri`` (local or ``s3://``); returns ``uri``."""
    from .io import locations

    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    locations.write_bytes(uri, buffer.getvalue())
    return uri


def read_frame(uri: str) -> pd.DataFrame:
    """Read a frame written by :func:`write_frame`."""
    from .io import locations

    return pd.read_parquet(io.BytesIO(locations.read_bytes(uri)))


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


# --------------------------------------------------------------------------- a run in three stages
# The stages below are the map/reduce form of ``reconcile.pipeline.run`` that an orchestrator
# (the Airflow DAGs, or any other) drives; every value they exchange is small and JSON-serialisable
# (URIs, counts), the data itself goes through ``work_prefix`` (a local folder or an s3:// prefix
# private to the run). Message-related findings are recorded by the stage that sees the messages
# (prepare: reading and duplicates; window: per-shard); accounts, rate cards and invoices are read
# and reported once, by the final stage.
def prepare_shards(config, work_prefix: str, n: int) -> dict:
    """Stage 1 (one task): read every message log of ``config.messages``, deduplicate by
    ``message_id`` and write ``n`` Parquet shards under ``work_prefix/shards/``.

    Returns ``{"shards": [{"index", "uri", "rows"}], "counts": {...}, "quality": uri, "inputs": [...]}``,
    also stored as ``work_prefix/prepared.json`` (:func:`read_prepared`).
    """
    from . import pipeline
    from .engine import dedupe_messages
    from .io import locations, tables

    if config.s3_endpoint_url:
        locations.set_default_endpoint(config.s3_endpoint_url)
    quality = QualityLog()
    all_accounts = tables.read_accounts(config.accounts, QualityLog())  # its findings: final stage
    accounts = pipeline.select_accounts(all_accounts, config)
    messages, infos, rows = pipeline.read_message_logs(config, quality, all_accounts, accounts)
    deduped, counts = dedupe_messages(messages, quality)
    shards = []
    for i, part in enumerate(partition_messages(deduped, n)):
        uri = write_frame(part, join_uri(work_prefix, "shards", f"messages-{i:04d}-of-{n:04d}.parquet"))
        shards.append({"index": i, "uri": uri, "rows": int(len(part))})
    prepared = {"shards": shards, "counts": _plain(counts),
                "message_rows": dataclasses.asdict(rows),
                "quality": save_quality(quality, join_uri(work_prefix, "quality", "prepare.parquet")),
                "inputs": [_info_dict(i) for i in infos]}
    locations.write_bytes(join_uri(work_prefix, PREPARED_MANIFEST), json.dumps(prepared, indent=1).encode("utf-8"))
    return prepared


def read_prepared(work_prefix: str) -> dict:
    """The result of :func:`prepare_shards` as stored under ``work_prefix``."""
    from .io import locations

    return json.loads(locations.read_bytes(join_uri(work_prefix, PREPARED_MANIFEST)).decode("utf-8"))


def window_shard(config, shard: dict, work_prefix: str) -> dict:
    """Stage 2 (one task per shard, in parallel): the window pass over one shard; raw units, coverage
    and the shard's findings go to ``work_prefix``.
    Returns ``{"index", "raw_units", "coverage", "quality", "counts"}``."""
    from .engine import window_units
    from .io import locations
    from .rules.markets import load_market_map

    if config.s3_endpoint_url:
        locations.set_default_endpoint(config.s3_endpoint_url)
    quality = QualityLog()
    accounts = _accounts(config)
    raw_units, coverage, counts = window_units(read_frame(shard["uri"]), accounts,
                                               load_market_map(config.market_map), quality)
    index = int(shard["index"])
    return {"index": index,
            "raw_units": write_frame(raw_units, join_uri(work_prefix, "raw_units", f"raw-units-{index:04d}.parquet")),
            "coverage": write_frame(coverage, join_uri(work_prefix, "coverage", f"coverage-{index:04d}.parquet")),
            "quality": save_quality(quality, join_uri(work_prefix, "quality", f"window-{index:04d}.parquet")),
            "counts": _plain(counts)}


def finish_sharded_run(config, prepared: dict, windowed: list[dict], progress=None):
    """Stage 3 (one task): merge the shards' raw units, apply the account-level passes and pricing
    (``finalize_units``), then compare, check and publish with ``pipeline.finish_run`` — exactly
    as ``pipeline.run`` does. Returns the :class:`pipeline.RunResult`."""
    from . import pipeline
    from .engine import EngineResult
    from .engine.accounts import finalize_units
    from .io import tables
    from .progress import LogProgress

    progress = progress or LogProgress()
    quality = QualityLog()
    clock = pipeline.RunClock()
    windowed = sorted(windowed, key=lambda w: int(w["index"]))

    with pipeline.timed(progress, clock.timings, "read"):
        load_quality(prepared["quality"], quality)
        inputs = pipeline.load_reference(config, quality)
        message_infos = [tables.InputInfo(**i) for i in prepared["inputs"]]
        inputs.infos = [*inputs.infos, *message_infos]
        inputs.message_rows = pipeline.MessageRows(**prepared["message_rows"])
    with pipeline.timed(progress, clock.timings, "engine"):
        for w in windowed:
            load_quality(w["quality"], quality)
        raw_units = merge_raw_units(read_frame(w["raw_units"]) for w in windowed)
        coverage = merge_coverage(read_frame(w["coverage"]) for w in windowed)
        counts = dict(prepared["counts"])
        counts.update(_window_counts(merge_counts(w["counts"] for w in windowed)))
        units, final_counts = finalize_units(raw_units, inputs.accounts, inputs.rates, config.period, quality)
        counts.update(final_counts or {})
        counts.setdefault("units", int(len(units)))
        result = EngineResult(units=units, raw_units=raw_units, coverage=coverage, counts=counts)
    return pipeline.finish_run(config, inputs, result, quality, inputs.message_rows, clock=clock,
                               progress=progress, extra_record={"shards": len(windowed)})


def _accounts(config) -> pd.DataFrame:
    """The accounts of the run (``--waba`` when given); the accounts file's findings are the final stage's."""
    from . import pipeline
    from .io import tables

    return pipeline.select_accounts(tables.read_accounts(config.accounts, QualityLog()), config)


def _info_dict(info) -> dict:
    from dataclasses import asdict, is_dataclass

    d = asdict(info) if is_dataclass(info) else dict(info._asdict())
    return {k: (int(v) if isinstance(v, np.integer) else v) for k, v in d.items()}


def _plain(counts: dict) -> dict:
    """Counts as plain JSON values (numpy integers → int)."""
    return {k: (int(v) if isinstance(v, (np.integer, int)) else v) for k, v in counts.items()}


def remove_prefix(uri: str) -> int:
    """Delete every object under an ``s3://`` prefix (or a local folder); returns how many went."""
    from .io import locations

    if not locations.is_s3(uri):
        import shutil

        if not os.path.isdir(uri):
            return 0
        n = sum(len(files) for _, _, files in os.walk(uri))
        shutil.rmtree(uri)
        return n
    bucket, key = locations.split_s3(uri)
    prefix = key if key.endswith("/") or not key else key + "/"
    client = locations.s3_client()
    n = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            n += len(keys)
    return n
