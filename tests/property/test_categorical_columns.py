"""The reader hands the few-valued message columns over as pandas Categoricals (codes over the
distinct values) instead of ``str`` columns; the engine answers per category and gathers by code.
Property: on any generated log, Categorical columns (categories in any order, with values that occur
on no row) give exactly the units, coverage, counts and findings of the same log in ``str`` columns,
duplicates and conflicting duplicates included."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
from builders import messages_frame, msg  # noqa: E402
from test_window_properties import logs, run, settings_for  # noqa: E402

CODED = ["waba_id", "phone_number_id", "direction", "status", "message_kind", "template_category", "entry_point"]


def as_categoricals(frame: pd.DataFrame, order: str) -> pd.DataFrame:
    out = frame.copy()
    for c in CODED:
        values = list(dict.fromkeys(out[c].fillna("").astype(str)))       # first-appearance order
        values = sorted(values, reverse=order == "reversed") if order != "appearance" else values
        categories = pd.Index(values + [f"unused-{c}"], dtype="str")     # a value that occurs on no row
        out[c] = pd.Categorical(out[c].fillna("").astype(str), categories=categories)
    return out


@settings_for(40)
@given(logs(), st.sampled_from(["appearance", "sorted", "reversed"]), st.integers(0, 10_000))
def test_categorical_columns_give_the_same_result_as_str_columns(log, order, seed):
    rows, accounts = log
    frame = messages_frame(rows).sample(frac=1, random_state=seed).reset_index(drop=True)  # dups first too
    dup = frame["message_id"].duplicated(keep=False).to_numpy()
    if dup.any() and seed % 3 == 0:         # make one duplicated id conflict on its category
        at = int(frame.index[dup][seed % int(dup.sum())])
        frame.loc[at, "template_category"] = "authentication" if frame.loc[at, "template_category"] != \
            "authentication" else "marketing"
    units, coverage, counts, findings = run(frame, accounts)
    units_c, coverage_c, counts_c, findings_c = run(as_categoricals(frame, order), accounts)
    pd.testing.assert_frame_equal(units, units_c)
    assert coverage.columns.tolist() == coverage_c.columns.tolist()
    pd.testing.assert_frame_equal(coverage.astype(str), coverage_c.astype(str))
    assert counts == counts_c
    pd.testing.assert_frame_equal(findings, findings_c)


def test_a_categorical_log_is_really_processed_by_code():
    # guard against the property passing vacuously: the converted frame does hold Categoricals,
    # and a duplicated id merges to its best status through the codes
    at = pd.Timestamp("2025-07-01T10:00:00Z")
    frame = messages_frame([msg("m1", None, status="sent", delivered_at=None, sent_at=at),
                            msg("m1", at, status="read", delivered_at=None, read_at=at)])
    cat = as_categoricals(frame, "reversed")
    assert all(isinstance(cat[c].dtype, pd.CategoricalDtype) for c in CODED)
    from reconcile.engine import dedupe_messages
    from reconcile.quality import QualityLog

    deduped, counts = dedupe_messages(cat, QualityLog())
    assert counts["duplicates_merged"] == 1 and isinstance(deduped["status"].dtype, pd.CategoricalDtype)
    assert deduped["status"].tolist() == ["read"]
