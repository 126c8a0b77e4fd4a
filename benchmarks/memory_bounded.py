"""Memory-bounded path: reconcile an input several times larger than a memory budget, shard by shard.

    .venv/bin/python benchmarks/memory_bounded.py                        # 10M rows, budget 900 MB
    .venv/bin/python benchmarks/memory_bounded.py --messages 300000 --check   # + equality with compute_units

Steps (each holds at most one file / partition / shard in memory; everything else is Parquet on disk):

0. *generate* (a separate process, so its memory does not count): ``benchmarks/generate.py`` writes
   the input as Parquet files of ``--rows-per-file`` rows (ids made unique per file);
1. *read + partition by message id*: each input file is read and validated by
   ``reconcile.io.tables.read_messages`` and split by ``hash(message_id) % P`` (every copy of an id
   lands in one partition: dedupe must see them together, rule book section 0 "Duplicates");
2. *dedupe + partition by user*: per message-id partition, ``dedupe_messages`` then
   ``reconcile.shards.partition_messages`` (hash of ``user_wa_id``: a key never straddles shards);
3. *window per shard*: per user shard, read its pieces (``pyarrow.dataset`` over the shard folder)
   and run ``window_units``; the raw units go to disk;
4. *account passes per tier scope*: free tier, tiers and pricing need every unit of one portfolio
   (tier scope) and month, so ``finalize_units`` runs per portfolio group, reading only that group's
   raw units that can bill in the period (``pyarrow.dataset`` filter on ``waba_id`` and
   ``opened_at`` ≥ period start − 2 days; older units only carried window state).

It prints the peak RSS (``ru_maxrss`` of this process) against the budget, the size the input would
take if loaded whole (measured on the first file, scaled), and the throughput. Exit status 1 when
the peak exceeds the budget. ``reconcile/shards.py`` has no streaming entry point (its
``prepare_shards`` reads every message at once), so the driver lives here, built from the engine's
public stages.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # Linux: KiB


# --------------------------------------------------------------------------- step 0 (own process)
def generate(out: str, n: int, rows_per_file: int, seed: int) -> None:
    """Write ``n`` message rows as Parquet files of ``rows_per_file`` rows (+ accounts, rates)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sys.path.insert(0, HERE)
    import generate as gen

    os.makedirs(os.path.join(out, "messages"), exist_ok=True)
    accounts = gen.make_accounts()
    accounts.to_csv(os.path.join(out, "accounts.csv"), index=False)
    gen.make_rate_card().to_csv(os.path.join(out, "rates.csv"), index=False)
    files = max(1, -(-n // rows_per_file))
    for i in range(files):
        table = gen.generate_table(rows_per_file, seed=seed + i, accounts=accounts)
        ids = pc.binary_join_element_wise(pa.scalar(f"wamid.F{i:04d}"), table["message_id"], "")
        table = table.set_column(table.schema.get_field_index("message_id"), "message_id", ids)
        pq.write_table(table, os.path.join(out, "messages", f"part-{i:04d}.parquet"), row_group_size=100_000)


# --------------------------------------------------------------------------- steps 1-4
def run(data: str, work: str, period: str, n_id_parts: int, n_shards: int, check: bool) -> dict:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

    from reconcile.contracts import Period
    from reconcile.engine import dedupe_messages, window_units
    from reconcile.engine.accounts import finalize_units
    from reconcile.io import tables
    from reconcile.quality import QualityLog
    from reconcile.rules.markets import load_market_map
    from reconcile.shards import key_hash, partition_messages, read_frame, write_frame

    t0 = time.perf_counter()
    quality = QualityLog()
    accounts = tables.read_accounts(os.path.join(data, "accounts.csv"), quality)
    rates, _ = tables.read_rate_cards([os.path.join(data, "rates.csv")], quality)
    market_map = load_market_map(None)
    files = sorted(glob.glob(os.path.join(data, "messages", "*.parquet")))
    timings, stats = {}, {"files": len(files), "rows_read": 0, "frame_bytes_first_file": 0,
                          "peak_rss_mb_after": {"imports+reference data": round(peak_rss_mb())}}

    # 1. read + partition by message id
    t = time.perf_counter()
    for i, path in enumerate(files):
        messages, _ = tables.read_messages([path], quality, accounts=accounts)
        stats["rows_read"] += len(messages)
        if i == 0:
            stats["frame_bytes_first_file"] = int(messages.memory_usage(deep=True).sum())
            stats["rows_first_file"] = len(messages)
        part = (key_hash(messages["message_id"]) % np.uint64(n_id_parts)).astype(np.int64)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(n_id_parts + 1))
        for p in range(n_id_parts):
            piece = messages.iloc[order[bounds[p]:bounds[p + 1]]]
            if len(piece):
                write_frame(piece, os.path.join(work, "by_id", f"p{p:04d}", f"f{i:04d}.parquet"))
        del messages, piece
    timings["read+partition"] = time.perf_counter() - t
    stats.setdefault("peak_rss_mb_after", {})["read+partition"] = round(peak_rss_mb())

    # 2. dedupe per id partition, then split by user into shards
    t = time.perf_counter()
    counts_total: dict = {}
    for p in range(n_id_parts):
        folder = os.path.join(work, "by_id", f"p{p:04d}")
        if not os.path.isdir(folder):
            continue
        frame = pd.concat([read_frame(f) for f in sorted(glob.glob(os.path.join(folder, "*.parquet")))],
                          ignore_index=True)
        deduped, counts = dedupe_messages(frame, quality)
        for k, v in counts.items():
            if isinstance(v, (int, np.integer)):
                counts_total[k] = counts_total.get(k, 0) + int(v)
        for s, shard in enumerate(partition_messages(deduped, n_shards)):
            if len(shard):
                write_frame(shard, os.path.join(work, "shards", f"s{s:04d}", f"p{p:04d}.parquet"))
        shutil.rmtree(folder)
        del frame, deduped
    timings["dedupe+shard"] = time.perf_counter() - t
    stats.setdefault("peak_rss_mb_after", {})["dedupe+shard"] = round(peak_rss_mb())

    # 3. window per user shard (pyarrow.dataset streams the shard's pieces from disk)
    t = time.perf_counter()
    raw_rows = 0
    for s in range(n_shards):
        folder = os.path.join(work, "shards", f"s{s:04d}")
        if not os.path.isdir(folder):
            continue
        shard = _restore(ds.dataset(folder, format="parquet").to_table().to_pandas(), folder, read_frame)
        raw_units, _coverage, _ = window_units(shard, accounts, market_map, quality)
        raw_rows += len(raw_units)
        write_frame(raw_units, os.path.join(work, "raw_units", f"raw-{s:04d}.parquet"))
        shutil.rmtree(folder)
        del shard, raw_units, _coverage
    timings["window"] = time.perf_counter() - t
    stats.setdefault("peak_rss_mb_after", {})["window"] = round(peak_rss_mb())

    # 4. account passes per tier scope (portfolio), reading only that scope's raw units
    t = time.perf_counter()
    raw = ds.dataset(os.path.join(work, "raw_units"), format="parquet")
    scope = accounts["portfolio_id"].where(accounts["portfolio_id"] != "", accounts["waba_id"])
    unit_rows, amounts = 0, {}
    for group in sorted(scope.unique()):
        wabas = accounts.loc[scope == group, "waba_id"].tolist()
        # only units that can bill in the period: opened from 2 days before its first day (any account
        # timezone) on; the history before only set window state in step 3
        since = pa.scalar(pd.Timestamp(Period.parse(period).start_date, tz="UTC") - pd.Timedelta(days=2),
                          type=raw.schema.field("opened_at").type)
        sub = raw.to_table(filter=ds.field("waba_id").isin(wabas) & (ds.field("opened_at") >= since)).to_pandas()
        sub = _like(sub, read_frame(sorted(glob.glob(os.path.join(work, "raw_units", "*.parquet")))[0]))
        units, _ = finalize_units(sub, accounts[accounts["waba_id"].isin(wabas)].reset_index(drop=True), rates,
                                  Period.parse(period), quality)
        unit_rows += len(units)
        for cur, amount in units.groupby("currency")["amount"].sum().items():
            amounts[cur] = amounts.get(cur, 0.0) + float(amount)
        write_frame(units, os.path.join(work, "units", f"units-{group}.parquet"))
        del sub, units
    timings["account passes"] = time.perf_counter() - t
    stats.setdefault("peak_rss_mb_after", {})["account passes"] = round(peak_rss_mb())
    timings["total"] = time.perf_counter() - t0
    result = {**stats, "raw_units": raw_rows, "units": unit_rows, "amounts": amounts, "timings_s": timings,
              "findings": len(quality), "dedupe_counts": counts_total}
    if check:
        result["check"] = _check(files, accounts, rates, market_map, period, work)
    return result


def _restore(frame, folder, read_frame):
    """pyarrow.dataset gives the columns as stored; match dtypes with read_frame's (same Parquet)."""
    return _like(frame, read_frame(sorted(glob.glob(os.path.join(folder, "*.parquet")))[0]))


def _like(frame, template):
    for c in template.columns:
        if c in frame.columns and frame[c].dtype != template[c].dtype:
            frame[c] = frame[c].astype(template[c].dtype)
    return frame[list(template.columns)]


def _check(files, accounts, rates, market_map, period, work) -> str:
    """Small inputs only: the streamed units equal ``compute_units`` on everything at once."""
    import pandas as pd

    from reconcile.engine import compute_units
    from reconcile.io import tables
    from reconcile.quality import QualityLog
    from reconcile.shards import read_frame

    q = QualityLog()
    messages, _ = tables.read_messages(files, q, accounts=accounts)
    whole = compute_units(messages, accounts, rates, market_map, period, q).units
    streamed = pd.concat([read_frame(f) for f in sorted(glob.glob(os.path.join(work, "units", "*.parquet")))],
                         ignore_index=True)
    key = ["unit_id"]
    a = whole.sort_values(key).reset_index(drop=True)
    b = streamed.sort_values(key).reset_index(drop=True)[list(a.columns)]
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    return f"streamed units == compute_units ({len(a):,} units)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=10_000_000)
    ap.add_argument("--rows-per-file", type=int, default=200_000)
    ap.add_argument("--budget-mb", type=int, default=900)
    ap.add_argument("--id-partitions", type=int, default=64)
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--period", default="2025-07")
    ap.add_argument("--data", default=os.path.join(HERE, "_data", "memory_bounded"))
    ap.add_argument("--keep", action="store_true", help="keep the generated input for the next run")
    ap.add_argument("--check", action="store_true", help="compare with compute_units on the whole input")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    data = os.path.join(args.data, f"n{args.messages}")
    if args.generate_only:
        generate(data, args.messages, args.rows_per_file, seed=11)
        return 0
    if not os.path.isdir(os.path.join(data, "messages")):
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate-only", "--messages", str(args.messages),
                        "--rows-per-file", str(args.rows_per_file), "--data", args.data], check=True)
        print(f"generated {args.messages:,} rows in {time.perf_counter() - t:.1f} s (separate process)")
    work = os.path.join(args.data, "work")
    shutil.rmtree(work, ignore_errors=True)
    result = run(data, work, args.period, args.id_partitions, args.shards, args.check)
    shutil.rmtree(work, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    peak = peak_rss_mb()
    whole_mb = result["frame_bytes_first_file"] / result["rows_first_file"] * result["rows_read"] / 2**20
    rate = result["rows_read"] / result["timings_s"]["total"]
    print(json.dumps(result, indent=1, default=str))
    print(f"rows {result['rows_read']:,} | whole input in memory ≈ {whole_mb:,.0f} MB "
          f"({whole_mb / args.budget_mb:.1f}× the budget) | peak RSS {peak:,.0f} MB vs budget {args.budget_mb} MB "
          f"({'OK' if peak <= args.budget_mb else 'OVER'}) | {rate:,.0f} rows/s, {result['timings_s']['total']:.1f} s")
    return 0 if peak <= args.budget_mb else 1


if __name__ == "__main__":
    sys.exit(main())
