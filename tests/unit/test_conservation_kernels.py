"""The compiled string matching of the conservation checks agrees with Arrow's kernels (the route
taken with nulls), on buckets and on the errors raised."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from reconcile import conservation as cons
from reconcile.contracts import Period

OUTCOMES = ["unit_opener", "rode_on_unit", "free_not_unit", "excluded"]


def _frames(seed: int, long_ids: bool):
    rng = np.random.default_rng(seed)
    pad = "x" * 40 if long_ids else ""
    ids = np.array([f"wamid.{pad}{i}" if i % 7 else f"é{i}" for i in range(400)], dtype=object)
    months = np.array(["2025-05", "2025-06", "2025-07", "2025-08", ""], dtype=object)
    raw_ids = rng.choice(ids, 120, replace=False)
    raw_month = rng.choice(months[:4], len(raw_ids))
    raw = pd.DataFrame({"opening_message_id": pd.array(raw_ids, dtype="str"),
                        "billing_month": pd.array(raw_month, dtype="str"),
                        "message_count": rng.integers(1, 4, len(raw_ids))})
    units = raw[raw["billing_month"] == "2025-07"].reset_index(drop=True)
    if len(units) and seed % 2:          # an opening id twice among the units
        units = pd.concat([units, units.iloc[:1]], ignore_index=True)
    n = 600
    outcome = rng.choice(OUTCOMES, n)
    opener = np.where(np.isin(outcome, OUTCOMES[:2]),
                      rng.choice(np.concatenate([raw_ids, ids[:5], np.array(["ghost"], dtype=object)]), n), "")
    coverage = pd.DataFrame({"message_id": pd.array(rng.choice(ids, n), dtype="str"), "waba_id": "W",
                             "charged_at": None, "billing_month": pd.array(rng.choice(months, n), dtype="str"),
                             "outcome": pd.array(outcome, dtype="str"),
                             "unit_opening_message_id": pd.array(opener.astype(object), dtype="str")})
    return coverage, units, raw


def _outcome(f):
    try:
        return f()
    except cons.ConservationError as e:
        return ("error", str(e))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("long_ids", [False, True])
def test_compiled_matching_gives_the_buckets_and_errors_of_arrow(monkeypatch, seed, long_ids):
    coverage, units, raw = _frames(seed, long_ids)
    period = Period.parse("2025-07")
    excluded = set(coverage["message_id"][coverage["outcome"] == "excluded"].tolist()[1:])
    consistent = coverage.copy()
    # a consistent variant too: no ghost openers, every exclusion named, counts as covered
    covering = raw["opening_message_id"][raw["billing_month"] <= "2025-07"]
    rides = consistent["outcome"].isin(OUTCOMES[:2]) & ~consistent["unit_opening_message_id"].isin(covering)
    consistent.loc[rides, "outcome"] = "free_not_unit"
    cases = []
    for cov, ex in ((coverage, excluded), (consistent, set(coverage["message_id"]))):
        run = lambda cov=cov, ex=ex, u=units: cons.message_buckets(cov, u, raw, period, ex)  # noqa: E731
        cases.append(run)
        # the riders a unit of the period can hold: those of the period and after (string order)
        riding = cov["outcome"].isin(OUTCOMES[:2]) & (cov["billing_month"] >= period.first)
        riders = cov[riding]["unit_opening_message_id"].value_counts()
        fitted = units.assign(message_count=units["opening_message_id"].map(riders).fillna(0).astype("int64"))
        fitted = fitted.drop_duplicates("opening_message_id")
        cases.append(lambda cov=cov, ex=ex, u=fitted: cons.message_buckets(cov, u, raw, period, ex))
    compiled = [_outcome(c) for c in cases]
    monkeypatch.setattr(cons, "COMPILED", False)
    assert compiled == [_outcome(c) for c in cases]
    assert isinstance(compiled[-1], dict), compiled[-1]


def test_nulls_take_the_arrow_route_and_match_nothing():
    coverage = pd.DataFrame({"message_id": ["o1", "r1"], "waba_id": "W", "charged_at": None,
                             "billing_month": ["2025-07", None], "outcome": ["unit_opener", None],
                             "unit_opening_message_id": ["o1", None]})
    units = pd.DataFrame({"opening_message_id": ["o1"], "message_count": [1], "billing_month": ["2025-07"]})
    assert cons.message_buckets(coverage, units, units, Period.parse("2025-07"), set()) == {
        "billable_in_period": 1, "covered_by_unit_of_period": 1, "covered_by_window_before_period": 0,
        "free_not_a_unit": 0, "excluded_by_data_quality_rule": 0, "messages_in_units_of_period": 1}


@pytest.mark.parametrize("values", [["unit_opener", "rode_on_unit", "", "excluded"],
                                    ["a" * 16, "a" * 17, "a" * 15, "b"], ["é", "2025-07"]])
def test_vocabulary_codes_are_exact(values):
    rng = np.random.default_rng(1)
    pool = values + ["", "a", "a" * 16 + "b", "unit_opene", "unit_openerr", "é" * 9, "2025-0", "excluded"]
    strings = pa.array(list(rng.choice(pool, 500)) + ["a" * 16, "é"], type=pa.large_string())
    for arr in (strings, strings.slice(3, 400), strings.slice(490), strings.cast(pa.string())):
        expected = np.full(len(arr), -1)
        for code in range(len(values) - 1, -1, -1):
            expected[pc.equal(arr, values[code]).to_numpy(zero_copy_only=False)] = code
        assert cons._codes_in(arr, values).tolist() == expected.tolist()
