"""The demo inputs: deterministic, in every input format, and a run on them reports exactly the
injected discrepancies (reconcile.demo.DEMO_DISCREPANCIES) and nothing else."""
from __future__ import annotations

import gzip
import hashlib
import json
import os

import pandas as pd
import pytest

from reconcile import demo, pipeline
from reconcile.contracts import VARIANCE_GROUP

PERIODS = demo.PERIODS


def _tree_hashes(root: str) -> dict[str, str]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Generate once, run both periods once (embedded DuckDB warehouse in a temp folder)."""
    root = tmp_path_factory.mktemp("demo")
    inputs = demo.write_demo_inputs(str(root / "inputs"))
    warehouse = f"duckdb:///{root / 'warehouse.duckdb'}"
    results = {}
    for period in PERIODS:
        config = inputs[period].run_config(out=str(root / period), warehouse=warehouse)
        results[period] = pipeline.run(config)
    return root, inputs, results


def _read_csv(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_same_seed_writes_identical_files(demo_run, tmp_path, capsys):
    root, _, _ = demo_run
    first = _tree_hashes(str(root / "inputs"))
    assert demo.main([str(tmp_path / "again")]) == 0          # python -m reconcile.demo DIR
    assert "2025-07: 2 message folders" in capsys.readouterr().out
    assert _tree_hashes(str(tmp_path / "again")) == first
    assert len(first) == 18
    assert demo.main([]) == 2


def test_another_seed_draws_other_traffic():
    import numpy as np

    seven = demo._user_pool(np.random.default_rng(7))
    eight = demo._user_pool(np.random.default_rng(8))
    assert set(seven) == set(eight) == {demo.W_BR, demo.W_IN, demo.W_DE, demo.W_US}
    assert not np.array_equal(seven[demo.W_BR], eight[demo.W_BR])


def test_layout_and_formats(demo_run):
    root, inputs, _ = demo_run
    assert set(inputs.periods) == {"2025-07", "2026-10"}
    p = inputs["2025-07"]
    assert p.messages == [str(root / "inputs" / "messages" / m) for m in ("2025-06", "2025-07")]
    assert inputs["2026-10"].messages[0].endswith(os.path.join("messages", "2026-09"))
    assert sorted(os.listdir(p.messages[1])) == ["platform_log.csv.gz", "platform_log.parquet", "webhooks.jsonl"]
    assert sorted(os.listdir(p.invoices[0])) == ["invoice.csv", f"pricing_analytics_{demo.W_BR}.json"]
    assert sorted(os.listdir(inputs["2026-10"].invoices[0])) == ["invoice.csv"]
    # webhook bodies in Meta's shape
    with open(os.path.join(p.messages[1], "webhooks.jsonl"), encoding="utf-8") as f:
        first = json.loads(f.readline())
    assert first["object"] == "whatsapp_business_account"
    assert first["entry"][0]["id"] == demo.W_BR
    assert first["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"].startswith("1050000000000")
    # the Meta wide rate card carries its date in a comment
    with open(p.rate_cards[1], encoding="utf-8") as f:
        head = f.read().splitlines()[:3]
    assert "effective 2025-07-01" in head[1] and head[2].startswith("Market,Currency,Marketing")
    # long card: tiers 1:50 / 51: and a 2026-10-01 version with service rates
    card = _read_csv(p.rate_cards[0])
    util = card[(card.market == "India") & (card.currency == "INR") & (card.category == "utility")]
    assert util[["effective_from", "tier_from", "tier_to"]].values.tolist() == [
        ["2025-07-01", "1", "50"], ["2025-07-01", "51", ""], ["2026-10-01", "1", "50"], ["2026-10-01", "51", ""]]
    assert set(card[card.category == "service"]["effective_from"]) == {"2026-10-01"}
    accounts = _read_csv(p.accounts)
    assert accounts["timezone"].tolist() == ["America/Sao_Paulo", "Asia/Kolkata", "Europe/Berlin", "UTC"]
    assert accounts["portfolio_id"].tolist() == ["", "", "portfolio-atlantic", "portfolio-atlantic"]
    # the bad rows are in the CSV log of the period month
    with gzip.open(os.path.join(p.messages[1], "platform_log.csv.gz"), "rt", encoding="utf-8") as f:
        log = pd.read_csv(f, dtype=str, keep_default_na=False)
    assert log.loc[log.message_id == "wamid.demo.badtime.2025-07", "sent_at"].tolist() == ["2025-07-15 25:61"]
    assert log["message_id"].duplicated().sum() > 0


@pytest.mark.parametrize("period", PERIODS)
def test_variance_reports_exactly_the_injected_discrepancies(demo_run, period):
    _, _, results = demo_run
    variance = results[period].variance
    flagged = variance[variance["status"] != "match"]
    found = {tuple(r[c] for c in VARIANCE_GROUP): r["status"] for r in flagged.to_dict("records")}
    expected = {tuple(d[c] for c in VARIANCE_GROUP): d["status"]
                for d in demo.DEMO_DISCREPANCIES if d["billing_month"] == period and d["status"]}
    assert found == expected
    for d in demo.DEMO_DISCREPANCIES:
        if d["billing_month"] != period or d["quantity_diff"] is None or d["status"] is None:
            continue
        row = variance[(variance[VARIANCE_GROUP] == pd.Series({c: d[c] for c in VARIANCE_GROUP})).all(axis=1)]
        assert row["quantity_diff"].tolist() == [d["quantity_diff"]], d["kind"]
    assert (variance["status"] == "match").sum() == len(variance) - len(expected) > 20


def test_rate_mismatch_and_missing_line_amounts(demo_run):
    _, _, results = demo_run
    v = results["2026-10"].variance.set_index(VARIANCE_GROUP)
    row = v.loc[(demo.W_IN, "2026-10", "India", "PMP", "service", "regular")]
    assert round(float(row["amount_diff"]), 4) == -1.5
    v7 = results["2025-07"].variance.set_index(VARIANCE_GROUP)
    missing = v7.loc[(demo.W_US, "2025-07", "North America", "PMP", "authentication", "regular")]
    assert int(missing["invoiced_quantity"]) == 0 and int(missing["expected_quantity"]) > 0


def test_data_quality_findings(demo_run):
    _, _, results = demo_run
    for period in PERIODS:
        findings = results[period].quality.frame()
        codes = findings.groupby(["severity", "code"]).size().to_dict()
        assert codes[("error", "bad_timestamp")] == 1
        assert codes[("error", "conflicting_duplicate")] == 1
        assert codes[("warning", "unparseable_number")] == 1
        assert codes[("warning", "unknown_calling_code")] >= 1
        bad = findings[findings["code"] == "bad_timestamp"].iloc[0]
        assert bad["source"].endswith("platform_log.csv.gz") and bad["column"] == "sent_at"
        assert bad["message_id"] == f"wamid.demo.badtime.{period}"
        unexpected = set(codes) - {("error", c) for c in demo.DEMO_QUALITY_CODES} \
            - {("warning", c) for c in demo.DEMO_QUALITY_CODES}
        assert unexpected == set()
    mismatch = results["2025-07"].quality.frame().query("code == 'invoice_currency_mismatch'")
    assert len(mismatch) == 1 and mismatch.iloc[0]["severity"] == "error"
    assert "invoice_currency_mismatch" not in set(results["2026-10"].quality.frame()["code"])


def test_hand_made_scenarios_across_the_era_changes(demo_run):
    _, _, results = demo_run
    u7 = results["2025-07"].units.set_index("unit_id")
    # the CBP-2 conversation of June 30 22:40 (Sao Paulo) is June's; July 1 00:20 is a PMP unit
    assert "wamid.scn.br.0001:marketing" not in u7.index
    assert u7.loc["wamid.scn.br.0002:marketing", ["pricing_model", "pricing_type"]].tolist() == ["PMP", "regular"]
    # ad answered within 24h: free entry point for 72h, then paid again
    assert u7.loc["wamid.scn.br.0004:free_entry_point", "pricing_type"] == "free_entry_point"
    assert u7.loc["wamid.scn.br.0005:free_entry_point", "amount"] == 0
    assert u7.loc["wamid.scn.br.0006:marketing", "pricing_type"] == "regular"
    # page call-to-action answered after 30h: no free entry point
    assert u7.loc["wamid.scn.br.0008:marketing", "pricing_type"] == "regular"
    # authentication from a German business to an Indian user
    assert u7.loc["wamid.scn.de.0001:authentication_international", "market"] == "India"
    # the utility tier of the Indian account is crossed (1:50 then 51:)
    tiers = set(u7[(u7.waba_id == demo.W_IN) & (u7.category == "utility") & (u7.pricing_type == "regular")]["tier"])
    assert tiers == {"1:50", "51:"}
    u10 = results["2026-10"].units.set_index("unit_id")
    # PMP-2: utility inside the customer service window is charged, a free-form reply is a service unit
    assert u10.loc["wamid.scn.in.1003:utility", "pricing_type"] == "regular"
    assert u10.loc["wamid.scn.in.1004:service", "amount"] > 0
    assert u10.loc["wamid.scn.us.1002:free_entry_point", "pricing_type"] == "free_entry_point"


def test_every_input_format_is_read(demo_run):
    _, _, results = demo_run
    paths = [i["path"] for i in results["2025-07"].run_record["inputs"]]
    for suffix in (".csv.gz", ".parquet", ".jsonl", "invoice.csv", f"pricing_analytics_{demo.W_BR}.json",
                   "meta_rate_card_usd.csv", "rates_long.csv", "accounts.csv"):
        assert any(p.endswith(suffix) for p in paths), suffix
    counts = results["2025-07"].run_record["counts"]
    assert counts["duplicates_merged"] > 100 and counts["conflicting_duplicates"] == 1
    assert counts["units_unpriced"] == 0
