"""Property tests of the window kernel (rule book sections 0-5) on generated message logs.

Properties: conversation windows never overlap per key and category (CBP); every billable message
is accounted for exactly once and, in the CBP eras, covered by exactly one unit (opener or rider, inside
the unit's window); permuting input rows never changes the raw units; windowing each key alone and
concatenating gives the same units as windowing everything at once.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
from builders import accounts_frame, inbound, market_map_frame, messages_frame, msg  # noqa: E402

from reconcile.engine import dedupe_messages, window_units  # noqa: E402
from reconcile.quality import QualityLog  # noqa: E402

BASES = ["2021-12-30T20:00:00Z", "2022-06-01T00:00:00Z", "2023-01-30T12:00:00Z", "2023-05-30T22:00:00Z",
         "2024-10-30T08:00:00Z", "2025-06-29T18:00:00Z", "2026-09-29T21:00:00Z"]
USERS = ["5511999990001", "919876543210", "12025550123"]
PHONES = ["P1", "P2"]
ZONES = ["UTC", "America/Sao_Paulo", "Asia/Kolkata"]

event = st.tuples(
    st.integers(0, 100 * 60),                 # minutes after the base
    st.sampled_from(PHONES), st.sampled_from(USERS),
    st.sampled_from(["in", "in_ad", "tmpl", "tmpl", "tmpl", "ff", "ff"]),
    st.sampled_from(["marketing", "utility", "authentication", ""]),
    st.sampled_from(["delivered", "delivered", "read", "sent", "failed"]),
    st.booleans(),                            # also emit a duplicate `sent` row for this message
)


@st.composite
def logs(draw):
    base = pd.Timestamp(draw(st.sampled_from(BASES)))
    zone = draw(st.sampled_from(ZONES))
    events = draw(st.lists(event, min_size=1, max_size=40))
    rows = []
    for i, (minutes, phone, user, what, category, status, dup) in enumerate(events):
        at = base + pd.Timedelta(minutes=minutes)
        mid = f"m{i:03d}"
        if what.startswith("in"):
            rows.append(inbound(mid, at, entry_point="ad" if what == "in_ad" else "", user=user, phone=phone))
            continue
        kind = "template" if what == "tmpl" else "free_form"
        read_at = at + pd.Timedelta(minutes=1) if status == "read" else None
        rows.append(msg(mid, at, kind=kind, category=category, status=status, user=user, phone=phone,
                        read_at=read_at))
        if dup:
            rows.append(msg(mid, None, kind=kind, category=category, status="sent", delivered_at=None, user=user,
                            phone=phone, sent_at=at))
    return rows, accounts_frame(("W1", zone))


def run(rows_or_frame, accounts):
    quality = QualityLog()
    frame = rows_or_frame if isinstance(rows_or_frame, pd.DataFrame) else messages_frame(rows_or_frame)
    deduped, _ = dedupe_messages(frame, quality)
    units, coverage, counts = window_units(deduped, accounts, market_map_frame(), quality)
    return units, coverage, counts, quality.frame()


def canonical(units: pd.DataFrame) -> pd.DataFrame:
    return units.sort_values(["phone_number_id", "user_wa_id", "opened_at", "opening_message_id"]) \
        .reset_index(drop=True)


def settings_for(n: int):
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings_for(50)
@given(logs())
def test_windows_never_overlap_and_every_billable_message_is_accounted_for_once(log):
    rows, accounts = log
    units, coverage, counts, _ = run(rows, accounts)
    assert_no_overlap(units)
    assert_accounted_once(rows, units, coverage, counts)


def assert_no_overlap(units):
    """CBP windows never overlap per key and category (rule book sections 2, 3)."""
    cbp = units[units["pricing_model"] == "CBP"]
    for (_, _, category), group in cbp.groupby(["phone_number_id", "user_wa_id", "category"]):
        group = group.sort_values("opened_at")
        assert (group["expires_at"] > group["opened_at"]).all()
        assert (group["opened_at"].iloc[1:].to_numpy() >= group["expires_at"].iloc[:-1].to_numpy()).all(), category
    # CBP-1 has one conversation at a time whatever its category (free entry points aside)
    cbp1 = cbp[(cbp["era"] == "CBP-1") & (cbp["category"] != "free_entry_point")]
    for _, group in cbp1.groupby(["phone_number_id", "user_wa_id"]):
        group = group.sort_values("opened_at")
        assert (group["opened_at"].iloc[1:].to_numpy() >= group["expires_at"].iloc[:-1].to_numpy()).all()


def assert_accounted_once(rows, units, coverage, counts):
    """Every billable message once in the coverage; CBP: covered by exactly one unit, inside its window."""
    assert coverage["message_id"].is_unique
    assert len(coverage) == counts["billable_outbound"]
    assert counts["inbound"] + counts["non_billable"] + counts["billable_outbound"] == len(
        {r["message_id"] for r in rows})
    covered = coverage[coverage["unit_opening_message_id"] != ""]
    # message_count of each unit = messages whose unit it is
    per_unit = covered.groupby("unit_opening_message_id").size()
    got = units.set_index("opening_message_id")["message_count"]
    assert per_unit.sort_index().to_dict() == got.sort_index().to_dict()
    assert set(coverage.loc[coverage["outcome"] == "unit_opener", "message_id"]) == set(units["opening_message_id"])
    # every rider is inside the window of its unit; in CBP nothing is free without a unit
    opened = units.set_index("opening_message_id")
    riders = coverage[coverage["outcome"] == "rode_on_unit"]
    for mid, t, op in zip(riders["message_id"], riders["charged_at"], riders["unit_opening_message_id"]):
        unit = opened.loc[op]
        assert unit["pricing_model"] == "CBP"
        assert unit["opened_at"] <= t < unit["expires_at"], mid
    cbp_msgs = coverage.merge(units[["opening_message_id", "pricing_model"]], how="left",
                              left_on="unit_opening_message_id", right_on="opening_message_id")
    assert not ((cbp_msgs["pricing_model"] == "CBP") & (cbp_msgs["outcome"] == "free_not_unit")).any()
    # per-message models: each unit covers exactly its own message
    assert (units.loc[units["pricing_model"] != "CBP", "message_count"] == 1).all()


@settings_for(30)
@given(logs(), st.randoms(use_true_random=False))
def test_permuting_input_rows_never_changes_raw_units(log, rnd):
    rows, accounts = log
    units, coverage, _, findings = run(rows, accounts)
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    units2, coverage2, _, findings2 = run(shuffled, accounts)
    pd.testing.assert_frame_equal(units, units2)
    key = ["message_id"]
    pd.testing.assert_frame_equal(coverage.sort_values(key).reset_index(drop=True),
                                  coverage2.sort_values(key).reset_index(drop=True))
    assert sorted(zip(findings["code"], findings["message_id"])) == sorted(zip(findings2["code"],
                                                                             findings2["message_id"]))


@settings_for(20)
@given(logs())
def test_windowing_each_key_alone_equals_the_whole(log):
    rows, accounts = log
    quality = QualityLog()
    deduped, _ = dedupe_messages(messages_frame(rows), quality)
    whole, _, _ = window_units(deduped, accounts, market_map_frame(), QualityLog())
    parts = []
    for _, part in deduped.groupby(["phone_number_id", "user_wa_id"], sort=False):
        units, _, _ = window_units(part.reset_index(drop=True), accounts, market_map_frame(), QualityLog())
        parts.append(units)
    joined = pd.concat(parts, ignore_index=True) if parts else whole.iloc[:0]
    # each part has its own category lists (concatenated: objects): compare the values
    pd.testing.assert_frame_equal(as_str(canonical(whole)), as_str(canonical(joined)), check_dtype=False)


def as_str(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical (and object) string columns as ``str`` columns."""
    return frame.astype({c: "str" for c, t in frame.dtypes.items()
                         if isinstance(t, pd.CategoricalDtype) or t == object})


@settings_for(30)
@given(logs())
def test_masking_merged_duplicates_equals_copying_the_deduplicated_rows(log):
    # compute_units merges duplicates in place and masks the other rows (merge_duplicates + dropped);
    # dedupe_messages copies the kept rows: the window pass must not see the difference
    from reconcile.engine.prepare import merge_duplicates

    rows, accounts = log
    frame = messages_frame(rows)
    units, coverage, counts, findings = run(frame, accounts)
    quality = QualityLog()
    merged, keep, _ = merge_duplicates(frame, quality)
    dropped = None if keep is None else ~keep
    units2, coverage2, counts2 = window_units(merged, accounts, market_map_frame(), quality, dropped=dropped)
    pd.testing.assert_frame_equal(units, units2)
    pd.testing.assert_frame_equal(coverage, coverage2)
    assert counts == counts2
    pd.testing.assert_frame_equal(findings, quality.frame())
    assert frame["message_id"].duplicated().sum() == 0 or keep is not None
