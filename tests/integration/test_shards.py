"""The sharded engine (reconcile.shards) gives exactly the single-process result of
reconcile.engine.compute_units, on the demo data and on random data, for several shard counts;
and the three URI-addressed stages the DAG drives publish the same variance as pipeline.run."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from reconcile import demo, pipeline, shards
from reconcile.contracts import Period
from reconcile.engine import compute_units
from reconcile.io import tables
from reconcile.quality import InputError, QualityLog
from reconcile.rules.markets import load_market_map

SHARD_COUNTS = (1, 3, 7)


@pytest.fixture(scope="module")
def demo_inputs(tmp_path_factory):
    return demo.write_demo_inputs(str(tmp_path_factory.mktemp("shards") / "inputs"))


def _read(p):
    quality = QualityLog()
    accounts = tables.read_accounts(p.accounts, quality)
    rates, _ = tables.read_rate_cards(p.rate_cards, quality)
    messages, _ = tables.read_messages(p.messages, quality, accounts=accounts)
    return messages, accounts, rates


def _canonical(raw_units: pd.DataFrame) -> pd.DataFrame:
    """Raw units in a fixed order (the order of one window_units call is an implementation detail)."""
    return raw_units.sort_values(["opening_message_id", "category"]).reset_index(drop=True)


def _assert_same(single, sharded, q_single: QualityLog, q_sharded: QualityLog):
    pd.testing.assert_frame_equal(sharded.units, single.units)
    # raw units and coverage hold Categoricals; each shard has its own categories, so the merged
    # list may be ordered otherwise: the values must be equal, and stay Categorical
    pd.testing.assert_frame_equal(_canonical(sharded.raw_units), _canonical(single.raw_units),
                                  check_categorical=False)
    assert sharded.counts == single.counts
    pd.testing.assert_frame_equal(q_sharded.frame(), q_single.frame())
    key = ["message_id"]
    pd.testing.assert_frame_equal(sharded.coverage.sort_values(key).reset_index(drop=True),
                                  single.coverage.sort_values(key).reset_index(drop=True), check_like=True,
                                  check_categorical=False)
    for frame in (sharded.raw_units, sharded.coverage):
        kinds = {c: isinstance(frame[c].dtype, pd.CategoricalDtype) for c in frame.columns}
        assert kinds == {c: isinstance(t, pd.CategoricalDtype) for c, t in
                         (single.raw_units if frame is sharded.raw_units else single.coverage).dtypes.items()}


@pytest.fixture(scope="module", params=demo.PERIODS)
def demo_single(request, demo_inputs):
    """Inputs of one demo period and the single-process engine result on them."""
    period = request.param
    messages, accounts, rates = _read(demo_inputs[period])
    quality = QualityLog()
    single = compute_units(messages, accounts, rates, load_market_map(None), Period.parse(period), quality)
    return period, (messages, accounts, rates), single, quality


@pytest.mark.parametrize("n", SHARD_COUNTS)
def test_sharded_equals_single_process_on_demo_data(demo_single, n):
    period, (messages, accounts, rates), single, q1 = demo_single
    qn = QualityLog()
    sharded = shards.compute_sharded(messages, accounts, rates, load_market_map(None), Period.parse(period), qn, n)
    assert len(single.units) > 500
    _assert_same(single, sharded, q1, qn)


def _random_messages(seed: int, n: int = 4000) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Random traffic of two accounts over 2025-06..2025-07 with duplicates, conflicts, several
    phone numbers per account and users shared by both numbers."""
    rng = np.random.default_rng(seed)
    accounts = pd.DataFrame({
        "waba_id": ["w1", "w2"], "name": ["one", "two"], "timezone": ["America/Sao_Paulo", "Asia/Kolkata"],
        "currency": ["USD", "USD"], "business_country": ["BR", "IN"], "portfolio_id": ["p", "p"],
        "source": "accounts.csv", "row": [1, 2]})
    users = np.concatenate([
        "5511" + pd.Series(rng.integers(10 ** 8, 10 ** 9, 40)).astype(str).to_numpy(dtype=object),
        "9198" + pd.Series(rng.integers(10 ** 7, 10 ** 8, 30)).astype(str).to_numpy(dtype=object),
        np.array(["999123456", "1", "14165550000", "18765550000"], dtype=object)])
    waba = rng.choice(np.array(["w1", "w2"], dtype=object), n)
    phone = np.where(waba == "w1", rng.choice(np.array(["p11", "p12"], dtype=object), n), "p21")
    start = pd.Timestamp("2025-06-01", tz="UTC").value
    t = start + rng.integers(0, 61 * 86_400, n) * 1_000_000_000
    inbound = rng.random(n) < 0.35
    kind = np.where(inbound, "", rng.choice(np.array(["template", "free_form"], dtype=object), n, p=[0.7, 0.3]))
    cat = np.where(kind == "template", rng.choice(np.array(["marketing", "utility", "authentication", ""],
                                                           dtype=object), n, p=[0.4, 0.35, 0.2, 0.05]), "")
    status = np.where(inbound, "received", rng.choice(np.array(["read", "delivered", "sent", "failed"], dtype=object),
                                                      n, p=[0.45, 0.4, 0.05, 0.1]))
    delivered = np.where(np.isin(status, ["read", "delivered"]), t + 30_000_000_000, np.iinfo(np.int64).min)
    read = np.where(status == "read", t + 600_000_000_000, np.iinfo(np.int64).min)
    messages = pd.DataFrame({
        "message_id": pd.Series(np.arange(n)).astype(str).radd("wamid.r").to_numpy(dtype=object),
        "waba_id": waba, "phone_number_id": phone, "user_wa_id": rng.choice(users, n),
        "direction": np.where(inbound, "inbound", "outbound"),
        "sent_at": pd.to_datetime(t, utc=True), "status": status,
        "delivered_at": pd.to_datetime(pd.Series(delivered).where(delivered > 0), utc=True),
        "read_at": pd.to_datetime(pd.Series(read).where(read > 0), utc=True),
        "message_kind": kind, "template_category": cat,
        "entry_point": np.where(inbound, rng.choice(np.array(["", "ad", "page_cta"], dtype=object), n,
                                                    p=[0.8, 0.15, 0.05]), ""),
    })
    # duplicates: repeated rows with a worse status, and a few conflicting copies (another user)
    dup = messages.sample(frac=0.1, random_state=seed).assign(status="sent", delivered_at=pd.NaT, read_at=pd.NaT)
    conflict = messages[~inbound].sample(5, random_state=seed + 1).assign(user_wa_id="5511000000000")
    messages = pd.concat([messages, dup, conflict], ignore_index=True)
    messages = messages.sample(frac=1.0, random_state=seed + 2).reset_index(drop=True)
    for c in ("message_id", "waba_id", "phone_number_id", "user_wa_id", "direction", "status", "message_kind",
              "template_category", "entry_point"):
        messages[c] = messages[c].astype("str")
    messages["source"], messages["row"] = "random.csv", np.arange(1, len(messages) + 1)
    rates = []
    for market in ("Brazil", "India", "North America", "Rest of Latin America", "Other"):
        for category, rate in (("marketing", 0.05), ("utility", 0.01), ("authentication", 0.01),
                               ("service", 0.004), ("authentication_international", 0.03)):
            if category in ("utility", "authentication"):
                rates += [("2025-01-01", market, "USD", category, 1, 10, rate), ("2025-01-01", market, "USD",
                                                                                category, 11, None, rate / 2)]
            else:
                rates.append(("2025-01-01", market, "USD", category, None, None, rate))
    rates = pd.DataFrame(rates, columns=["effective_from", "market", "currency", "category", "tier_from", "tier_to",
                                         "rate"])
    return messages, accounts, rates


@pytest.fixture(scope="module")
def random_single():
    messages, accounts, rates = _random_messages(seed=1)
    quality = QualityLog()
    single = compute_units(messages, accounts, rates, load_market_map(None), Period.parse("2025-07"), quality)
    return (messages, accounts, rates), single, quality


@pytest.mark.parametrize("n", SHARD_COUNTS)
def test_sharded_equals_single_process_on_random_data(random_single, n):
    (messages, accounts, rates), single, q1 = random_single
    qn = QualityLog()
    sharded = shards.compute_sharded(messages, accounts, rates, load_market_map(None), Period.parse("2025-07"), qn, n)
    assert len(single.units) > 100 and single.counts["conflicting_duplicates"] == 5
    _assert_same(single, sharded, q1, qn)


def test_key_hash_is_stable_and_keys_stay_together():
    users = pd.Series(["5511987650001", "919876500006", "", "5511987650001"])
    phones = pd.Series(["p1", "p1", "p2", "p2"])
    # fixed values: the hash must not depend on the process (Python's hash() would)
    assert shards.key_hash(users).tolist() == shards.key_hash(users.copy()).tolist()
    assert shards.key_hash(users)[0] == shards.key_hash(users)[3]
    assert shards.key_hash(phones, users)[0] != shards.key_hash(phones, users)[3]
    assert shards.key_hash(users).dtype == np.uint64
    frame = pd.DataFrame({"user_wa_id": users, "phone_number_id": phones, "x": range(4)})
    parts = shards.partition_messages(frame, 3)
    assert sum(len(p) for p in parts) == 4 and [list(p.columns) for p in parts] == [list(frame.columns)] * 3
    where = {u: i for i, p in enumerate(parts) for u in p["user_wa_id"]}
    assert len({where[u] for u in users}) <= 3
    both = [i for i, p in enumerate(parts) if "5511987650001" in set(p["user_wa_id"])]
    assert len(both) == 1 and len(parts[both[0]][parts[both[0]]["user_wa_id"] == "5511987650001"]) == 2
    with pytest.raises(ValueError):
        shards.partition_messages(frame, 0)


def test_restore_quality_round_trip(tmp_path):
    quality = QualityLog()
    quality.add("error", "bad_timestamp", source="a.csv", row=3, column="sent_at", message_id="m1", detail="x")
    quality.add("warning", "unknown_calling_code", source="b.csv", column="user_wa_id", detail="y")
    uri = shards.save_quality(quality, str(tmp_path / "q.parquet"))
    again = QualityLog()
    shards.load_quality(uri, again)
    pd.testing.assert_frame_equal(again.frame(), quality.frame())


def test_three_stages_on_s3_publish_the_same_variance_as_pipeline_run(demo_inputs, s3_bucket, s3_server, tmp_path):
    """prepare_shards → window_shard × 3 → finish_sharded_run over an s3:// work prefix (moto server)
    produce the same variance.csv and billable_units.csv as one pipeline.run."""
    from reconcile.io import locations

    p = demo_inputs["2025-07"]
    root = demo_inputs.directory
    # upload the inputs
    client = locations.s3_client(s3_server)
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            client.upload_file(path, s3_bucket, os.path.relpath(path, root).replace(os.sep, "/"))
    s3 = f"s3://{s3_bucket}"
    config = p.run_config(out=f"{s3}/reports/2025-07/", warehouse="none")
    config.messages = [f"{s3}/messages/2025-06/", f"{s3}/messages/2025-07/"]
    config.accounts = f"{s3}/reference/accounts.csv"
    config.rate_cards = [f"{s3}/reference/rate_cards/"]
    config.invoices = [f"{s3}/invoices/2025-07/"]
    work = f"{s3}/work/test-run/"

    prepared = shards.prepare_shards(config, work, 3)
    assert [s["index"] for s in prepared["shards"]] == [0, 1, 2]
    assert sum(s["rows"] for s in prepared["shards"]) == prepared["counts"]["input_rows"] \
        - prepared["counts"]["duplicates_merged"] - prepared["counts"]["conflicting_duplicates"]
    windowed = [shards.window_shard(config, s, work) for s in reversed(prepared["shards"])]
    result = shards.finish_sharded_run(config, prepared, windowed)

    reference = pipeline.run(p.run_config(out=str(tmp_path / "single"), warehouse="none"))
    pd.testing.assert_frame_equal(result.variance, reference.variance)
    assert result.run_record["counts"] == reference.run_record["counts"]
    assert result.run_record["shards"] == 3
    assert result.run_record["conservation"] == reference.run_record["conservation"]
    for name in ("variance.csv", "billable_units.csv"):
        published = locations.read_bytes(f"{s3}/reports/2025-07/{name}")
        with open(tmp_path / "single" / name, "rb") as f:
            assert published == f.read(), name
    # the data-quality findings agree too, apart from where the files live
    ours = result.quality.frame().assign(source=lambda f: f["source"].str.replace(s3, "", regex=False))
    theirs = reference.quality.frame().assign(source=lambda f: f["source"].str.replace(root, "", regex=False))
    pd.testing.assert_frame_equal(ours.drop(columns="detail").sort_values(["code", "source", "row"]).reset_index(drop=True),
                                  theirs.drop(columns="detail").sort_values(["code", "source", "row"]).reset_index(drop=True))
    assert shards.read_prepared(work) == prepared
    keys = locations.list_files(work)
    assert sum("/shards/" in k for k in keys) == 3 and sum("/raw_units/" in k for k in keys) == 3
    assert sum("/coverage/" in k for k in keys) == 3
    assert shards.remove_prefix(work) == len(keys) == 14      # 3 shards, raw units, coverage; 4 quality; 1 json
    with pytest.raises(InputError):
        locations.list_files(work)
