"""Conservation checks: each check fails on a hand-made inconsistency, and a run whose numbers do not
add up publishes nothing (exit 1)."""
from __future__ import annotations

import os

import pandas as pd
import pytest

from reconcile import conservation as cons
from reconcile import pipeline
from reconcile.contracts import VARIANCE_COLUMNS, Period
from reconcile.report.warehouse import Warehouse


def _coverage(rows):
    return pd.DataFrame(rows, columns=["message_id", "waba_id", "charged_at", "billing_month", "outcome",
                                       "unit_opening_message_id"])


def _units(rows):
    return pd.DataFrame(rows, columns=["opening_message_id", "message_count", "billing_month", "amount", "currency"])


def test_row_ledger_balances_and_names_every_bucket():
    counts = {"input_rows": 10, "duplicates_merged": 2, "conflicting_duplicates": 1, "inbound": 3,
              "non_billable": 1, "billable_outbound": 3}
    ledger = cons.row_ledger(12, 1, counts, out_of_scope=1)
    assert ledger["rows_accounted"] == 12 and ledger["out_of_scope"] == 1


def test_row_ledger_fails_when_a_row_is_lost():
    counts = {"input_rows": 10, "duplicates_merged": 2, "conflicting_duplicates": 0, "inbound": 3,
              "non_billable": 1, "billable_outbound": 3}   # 9 accounted of 10 read
    with pytest.raises(cons.ConservationError, match="9 accounted for"):
        cons.row_ledger(10, 0, counts)


def test_buckets_put_each_billable_message_of_the_period_in_one_place():
    # o1 opened a July unit and r1 rides on it; e1 rides on a June window; f1 is free; x1 excluded.
    coverage = _coverage([
        ("o1", "W", None, "2025-07", "unit_opener", "o1"), ("r1", "W", None, "2025-07", "rode_on_unit", "o1"),
        ("e1", "W", None, "2025-07", "rode_on_unit", "j1"), ("j1", "W", None, "2025-06", "unit_opener", "j1"),
        ("f1", "W", None, "2025-07", "free_not_unit", ""), ("x1", "W", None, "2025-07", "excluded", "")])
    units = _units([("o1", 2, "2025-07", 0.1, "USD")])
    raw = _units([("j1", 2, "2025-06", 0.1, "USD"), ("o1", 2, "2025-07", 0.1, "USD")])
    buckets = cons.message_buckets(coverage, units, raw, Period.parse("2025-07"), {"x1"})
    assert buckets == {"billable_in_period": 5, "covered_by_unit_of_period": 2, "covered_by_window_before_period": 1,
                       "free_not_a_unit": 1, "excluded_by_data_quality_rule": 1, "messages_in_units_of_period": 2}


def test_buckets_fail_for_a_message_riding_on_no_unit():
    coverage = _coverage([("r1", "W", None, "2025-07", "rode_on_unit", "ghost")])
    with pytest.raises(cons.ConservationError, match="in no bucket"):
        cons.message_buckets(coverage, _units([]), _units([]), Period.parse("2025-07"), set())


def test_buckets_fail_for_an_exclusion_without_a_finding():
    coverage = _coverage([("x1", "W", None, "2025-07", "excluded", "")])
    with pytest.raises(cons.ConservationError, match="without a data-quality finding"):
        cons.message_buckets(coverage, _units([]), _units([]), Period.parse("2025-07"), set())


def test_buckets_fail_when_message_count_disagrees_with_the_riders():
    coverage = _coverage([("o1", "W", None, "2025-07", "unit_opener", "o1")])
    units = _units([("o1", 2, "2025-07", 0.1, "USD")])      # claims 2 messages, 1 rides
    with pytest.raises(cons.ConservationError, match="message_count"):
        cons.message_buckets(coverage, units, units, Period.parse("2025-07"), set())


def test_a_message_of_a_month_before_the_period_rides_on_no_unit_of_the_period():
    # Only the riders of the period and after are matched: a June message can ride on no July unit, so
    # a July unit counting one claims a message it cannot hold (a lost-or-double-counted message).
    coverage = _coverage([("o1", "W", None, "2025-07", "unit_opener", "o1"),
                          ("j1", "W", None, "2025-06", "rode_on_unit", "o1"),
                          ("a1", "W", None, "2025-08", "rode_on_unit", "o1")])
    units = _units([("o1", 3, "2025-07", 0.1, "USD")])      # o1, j1 and a1
    with pytest.raises(cons.ConservationError, match="1 units whose message_count differs"):
        cons.message_buckets(coverage, units, units, Period.parse("2025-07"), set())
    buckets = cons.message_buckets(coverage, units.assign(message_count=2), units, Period.parse("2025-07"), set())
    assert buckets["messages_in_units_of_period"] == 2 and buckets["covered_by_unit_of_period"] == 1


@pytest.mark.parametrize("kind", ["category", "str", "object"])
def test_month_and_outcome_answers_per_row(kind):
    # 2025-06 before the period, 2025-07 in it, 2025-08 after it, a missing month counts as after
    months = ["2025-07", None, "2025-06", "2025-08", "2025-07", ""]
    outcomes = ["rode_on_unit", "excluded", None, "unit_opener", "free_not_unit", "bogus"]

    def column(values):
        if kind == "category":       # with an unused category
            return pd.Series(pd.Categorical(values, categories=sorted({v for v in values if v is not None} | {"zz"})))
        return pd.Series(values, dtype="str" if kind == "str" else object)

    month = cons._Answers(column(months), lambda m: cons._month_side(m, Period.parse("2025-07")), missing=1)
    outcome = cons._Answers(column(outcomes), lambda o: cons._codes_in(o, cons.OUTCOMES), missing=-1)
    assert month.rows(0).tolist() == [True, False, False, False, True, False]
    assert month.rows(0, 1).tolist() == [True, True, False, True, True, False]   # "" sorts before the period
    assert month.rows(-1).tolist() == [False, False, True, False, False, True]
    assert outcome.rows(0, 1).tolist() == [True, False, False, True, False, False]
    assert outcome.rows(-1).tolist() == [False, False, True, False, False, True]
    assert outcome.rows(2, 3).tolist() == [False, True, False, False, True, False]


def test_totals_must_agree_to_four_places():
    cons.assert_totals_agree("x", {"USD": 1.00004}, {"USD": 1.0})
    with pytest.raises(cons.ConservationError, match="USD totals differ"):
        cons.assert_totals_agree("x", {"USD": 1.0001}, {"USD": 1.0})


def test_warehouse_verify_failure_rolls_the_slice_back(tmp_path):
    wh = Warehouse.from_url(str(tmp_path / "w.duckdb"))
    wh.ensure_schema()
    variance = pd.DataFrame(columns=VARIANCE_COLUMNS)
    units = pd.DataFrame({
        "unit_id": ["m1:marketing"], "waba_id": ["W"], "phone_number_id": ["P"], "user_wa_id": ["551199"],
        "country": ["BR"], "market": ["Brazil"], "pricing_model": ["PMP"], "category": ["marketing"],
        "pricing_type": ["regular"], "opened_at": pd.to_datetime(["2025-07-01T10:00:00Z"]),
        "expires_at": pd.to_datetime([None], utc=True), "opening_message_id": ["m1"], "message_count": [1],
        "billing_month": ["2025-07"], "tier": [""], "rate": [0.5], "amount": [0.5], "currency": ["USD"]})
    record = {"run_id": "r1", "period": "2025-07", "accounts": ["W"]}
    wh.publish(record, variance, units, slices=[("W", "2025-07")], verify=lambda loaded: None)

    def disagree(loaded):
        assert loaded == {"USD": 0.25}                        # the rerun's amount as loaded
        raise cons.ConservationError("warehouse totals differ")

    rerun = units.assign(amount=[0.25], rate=[0.25])
    with pytest.raises(cons.ConservationError):
        wh.publish({**record, "run_id": "r2"}, variance, rerun, slices=[("W", "2025-07")], verify=disagree)
    rows = wh.read_slice("recon_unit", "W", "2025-07")
    assert [(r["run_id"], float(r["amount"])) for r in rows] == [("r1", 0.5)]


def test_a_run_whose_units_do_not_add_up_publishes_nothing(tmp_path):
    # Corrupt one unit's message_count after the real engine ran: the buckets check must stop the run
    # before anything is written.
    from reconcile.demo import write_demo_inputs
    from reconcile.progress import LogProgress
    from reconcile.quality import QualityLog

    demo = write_demo_inputs(str(tmp_path / "inputs"))
    out = tmp_path / "out"
    config = demo.periods["2025-07"].run_config(out=str(out), warehouse="none")
    quality = QualityLog()
    inputs = pipeline.load_inputs(config, quality)
    result = pipeline.compute(inputs, config.period, quality)
    result.units.loc[result.units.index[0], "message_count"] += 1
    with pytest.raises(cons.ConservationError, match="message_count"):
        pipeline.finish_run(config, inputs, result, quality, inputs.message_rows, clock=pipeline.RunClock(),
                            progress=LogProgress())
    assert not os.path.exists(out)
