"""The vectorised engine (``reconcile.engine.compute_units``) and the naive per-key reference
(``benchmarks/naive_reference.py``, an independent second implementation of the rule book) agree on
every unit and every column, on random small inputs (hypothesis) and on seeded synthetic data spanning
each era boundary.
"""
from __future__ import annotations

import os
import sys
from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.contracts import MESSAGE_COLUMNS, UNIT_COLUMNS, Period
from reconcile.engine import compute_units
from reconcile.quality import QualityLog
from reconcile.rules.markets import default_market_map

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import generate  # noqa: E402
from naive_reference import naive_units  # noqa: E402

COMPARED = UNIT_COLUMNS + ["era", "regime_index", "local_date"]
MARKET_MAP = default_market_map()
RATES = generate.make_rate_card(("USD",))


def assert_same_units(messages, accounts, rates, period: str):
    engine = compute_units(messages, accounts, rates, MARKET_MAP, Period.parse(period), QualityLog()).units
    naive = naive_units(messages, accounts, rates, MARKET_MAP, period)
    e = engine[COMPARED].reset_index(drop=True)
    n = naive[COMPARED].reset_index(drop=True)
    only_engine = sorted(set(e["unit_id"]) - set(n["unit_id"]))
    only_naive = sorted(set(n["unit_id"]) - set(e["unit_id"]))
    assert not only_engine and not only_naive, f"units only in engine {only_engine[:5]}, only in naive {only_naive[:5]}"
    assert e["unit_id"].tolist() == n["unit_id"].tolist(), "row order differs"
    problems = []
    for c in COMPARED[1:]:
        a, b = e[c], n[c]
        if c == "regime_index":
            a, b = a.astype("int64"), b.astype("int64")
        same = (a == b).fillna(False).to_numpy(dtype=bool) | (a.isna() & b.isna()).to_numpy()
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            problems.append(f"{c}: {(~same).sum()} unit(s) differ, first {e['unit_id'][i]}: engine={a[i]!r} "
                            f"naive={b[i]!r}")
    assert not problems, "\n".join(problems)
    return engine


# --------------------------------------------------------------------------- seeded synthetic data
BOUNDARIES = [("2022-01-20", "2022-01..2022-02"), ("2023-01-20", "2023-01..2023-02"),
              ("2023-05-20", "2023-05..2023-06"), ("2024-10-20", "2024-10..2024-11"),
              ("2025-06-20", "2025-06..2025-07"), ("2026-09-20", "2026-09..2026-10")]


@pytest.mark.parametrize("start,period", BOUNDARIES)
def test_engine_and_naive_agree_on_synthetic_data_across_era_boundaries(start, period):
    accounts = generate.make_accounts(6)
    # few users, many sessions each: windows overlap, chain and cross the boundary
    messages = generate.generate_messages(4000, seed=int(start[:4]) + int(start[5:7]), start=start, days=20, accounts=accounts)
    units = assert_same_units(messages, accounts, RATES, period)
    assert len(units) > 100


# --------------------------------------------------------------------------- hypothesis
ERA_STARTS = [date(2022, 2, 1), date(2023, 2, 1), date(2023, 6, 1), date(2024, 11, 1), date(2025, 7, 1),
              date(2026, 10, 1)]
USERS = ["5511990000001", "919800000002", "14165550003", "447700900004"]
ZONES = ["UTC", "America/Sao_Paulo", "Asia/Kolkata"]


@st.composite
def scenario(draw, j: int):
    """Messages of two accounts ``W{j}1``/``W{j}2`` (3 phone numbers, 3 users) within 36h either side of
    an era start, on a 20-minute grid (ties between inbound and outbound, chained windows)."""
    boundary = draw(st.sampled_from(ERA_STARTS))
    base = pd.Timestamp(boundary, tz="UTC") - pd.Timedelta(hours=36)
    n = draw(st.integers(1, 40))
    rows = []
    for i in range(n):
        minutes = draw(st.integers(0, 72 * 60 // 20)) * 20          # 20-minute grid → frequent ties
        t = base + pd.Timedelta(minutes=minutes)
        inbound = draw(st.booleans())
        user = draw(st.sampled_from(USERS[:2] + USERS[2:3]))
        phone, waba = draw(st.sampled_from([(f"P{j}1", f"W{j}1"), (f"P{j}2", f"W{j}1"), (f"P{j}3", f"W{j}2")]))
        mid = f"wamid.{draw(st.integers(0, 10**6)):07d}.{i}"
        if inbound:
            rows.append(dict(message_id=mid, waba_id=waba, phone_number_id=phone, user_wa_id=user,
                             direction="inbound", sent_at=t, status="received", delivered_at=pd.NaT,
                             read_at=pd.NaT, message_kind="", template_category="",
                             entry_point=draw(st.sampled_from(["", "", "ad", "page_cta"]))))
        else:
            kind = draw(st.sampled_from(["template", "template", "free_form"]))
            cat = draw(st.sampled_from(["marketing", "utility", "authentication", ""])) if kind == "template" else ""
            status = draw(st.sampled_from(["delivered", "read", "read", "failed", "sent"]))
            delay = pd.Timedelta(seconds=draw(st.sampled_from([0, 1, 60])))
            delivered = t + delay if status in ("delivered", "read") and draw(st.integers(0, 9)) else pd.NaT
            read = t + delay + pd.Timedelta(minutes=5) if status == "read" else pd.NaT
            rows.append(dict(message_id=mid, waba_id=waba, phone_number_id=phone, user_wa_id=user,
                             direction="outbound", sent_at=t, status=status, delivered_at=delivered, read_at=read,
                             message_kind=kind, template_category=cat, entry_point=""))
        dup_kind = draw(st.integers(0, 19))
        if dup_kind <= 1:                                                 # a duplicate event of the same id
            dup = dict(rows[-1])
            if dup["direction"] == "outbound":
                dup.update(status="sent", delivered_at=pd.NaT, read_at=pd.NaT, template_category="")
            rows.append(dup)
        elif dup_kind == 2:                                               # a conflicting duplicate (other user)
            rows.append(dict(rows[-1], user_wa_id=USERS[3]))
    frame = pd.DataFrame(rows)[MESSAGE_COLUMNS]
    for c in ("sent_at", "delivered_at", "read_at"):
        frame[c] = pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]")
    zones = draw(st.lists(st.sampled_from(ZONES), min_size=2, max_size=2))
    accounts = pd.DataFrame({"waba_id": [f"W{j}1", f"W{j}2"], "name": ["One", "Two"], "timezone": zones,
                             "currency": ["USD", "USD"], "business_country": ["BR", "IN"],
                             "portfolio_id": draw(st.sampled_from([[f"PF{j}", f"PF{j}"], [f"W{j}1", f"W{j}2"]]))})
    return frame, accounts


@st.composite
def scenarios(draw):
    """1-4 independent scenarios in one input (the engine's fixed cost is paid once per example)."""
    parts = [draw(scenario(j)) for j in range(draw(st.integers(1, 4)))]
    return (pd.concat([p[0] for p in parts], ignore_index=True),
            pd.concat([p[1] for p in parts], ignore_index=True))


@settings(max_examples=int(os.environ.get("NAIVE_AGREE_EXAMPLES", "35")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_engine_and_naive_agree_on_random_small_inputs(inputs):
    messages, accounts = inputs
    # the period spans every boundary drawn: all units (lookback months included) are compared
    assert_same_units(messages, accounts, RATES, "2022-01..2026-10")
