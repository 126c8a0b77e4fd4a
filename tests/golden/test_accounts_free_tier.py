"""Golden: free tier (rule book sections 2, 3) and free customer service from 2024-11-01 (section 3)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reconcile.contracts import Period
from reconcile.engine.accounts import finalize_units
from reconcile.quality import QualityLog
from test_accounts_builders import accounts, rate_card, raw_unit, raw_units

CBP1_RATES = rate_card(("2022-02-01", "Brazil", "business_initiated", 0.05),
                       ("2022-02-01", "Brazil", "user_initiated", 0.03))
CBP2_RATES = rate_card(("2023-06-01", "Brazil", "service", 0.02), ("2023-06-01", "Brazil", "marketing", 0.06))


def _cbp1_march_units() -> list[dict]:
    rows = [
        # free entry point conversation opened first of all: never counts toward the free tier
        raw_unit("fep-0", "2022-03-01T00:00:00Z", category="free_entry_point", pricing_type="free_entry_point"),
        # opened first but its id sorts last: order is by open instant first → rank 1
        raw_unit("zz-early", "2022-03-01T00:00:01Z", category="business_initiated"),
    ]
    # 998 conversations, alternating categories (both count in CBP-1): ranks 2..999
    for i in range(998):
        rows.append(raw_unit(f"f{i:04d}", f"2022-03-02T00:00:00Z", category="user_initiated"
                             if i % 2 else "business_initiated"))
        rows[-1]["opened_at"] += pd.Timedelta(minutes=i)
    # two conversations at the same instant: tie broken by opening message id → tie-a rank 1000, tie-b 1001
    rows.append(raw_unit("tie-b", "2022-03-25T12:00:00Z", category="business_initiated"))
    rows.append(raw_unit("tie-a", "2022-03-25T12:00:00Z", category="business_initiated"))
    return rows


def test_cbp1_free_tier_crossing_1000_orders_by_open_instant_then_id():
    rows = _cbp1_march_units()
    # another account: its own free tier (rank 1 → free) ; same account next month: a fresh tier
    rows.append(raw_unit("w2-1", "2022-03-30T00:00:00Z", waba_id="W2", category="business_initiated"))
    rows.append(raw_unit("apr-1", "2022-04-01T00:00:00Z", category="business_initiated"))
    q = QualityLog()
    units, counts = finalize_units(raw_units(rows), accounts({"waba_id": "W1"}, {"waba_id": "W2"}), CBP1_RATES,
                                   Period.parse("2022-03..2022-04"), q)
    by_id = units.set_index("opening_message_id")
    # 1,001 counted conversations in W1/2022-03: ranks 1..1000 free, tie-b (rank 1001) is the one regular
    march = units[(units["waba_id"] == "W1") & (units["billing_month"] == "2022-03")]
    assert len(march) == 1002
    assert (march["pricing_type"] == "free_tier").sum() == 1000
    assert march.loc[march["pricing_type"] == "regular", "opening_message_id"].tolist() == ["tie-b"]
    assert by_id.loc["tie-a", "pricing_type"] == "free_tier"
    assert by_id.loc["zz-early", "pricing_type"] == "free_tier"
    # tie-b: business_initiated Brazil 0.05 (rate card 2022-02-01), amount = rate × 1
    assert by_id.loc["tie-b", "rate"] == 0.05 and by_id.loc["tie-b", "amount"] == 0.05
    assert by_id.loc["tie-b", "unit_id"] == "tie-b:business_initiated"
    # the free entry point unit keeps its own type, amount 0
    assert by_id.loc["fep-0", ["pricing_type", "category", "amount"]].tolist() == \
        ["free_entry_point", "free_entry_point", 0.0]
    assert by_id.loc["w2-1", "pricing_type"] == "free_tier"
    assert by_id.loc["apr-1", "pricing_type"] == "free_tier"
    assert counts["units_free_tier"] == 1002 and counts["units_regular"] == 1
    assert counts["units_free_entry_point"] == 1 and counts["units_free"] == 1003
    assert len(q) == 0


def test_cbp2_free_tier_covers_only_service_before_2024_11():
    rows = [raw_unit("mkt-first", "2024-10-01T00:00:00Z", category="marketing")]
    # 1,001 service conversations in 2024-10: the first 1,000 free, the last (s1000) regular at 0.02
    for i in range(1001):
        rows.append(raw_unit(f"s{i:04d}", "2024-10-02T00:00:00Z", category="service"))
        rows[-1]["opened_at"] += pd.Timedelta(seconds=i)
    units, counts = finalize_units(raw_units(rows), accounts({}), CBP2_RATES, Period.parse("2024-10"), QualityLog())
    by_id = units.set_index("opening_message_id")
    # marketing opened first yet is not covered by the CBP-2 free tier (service only)
    assert by_id.loc["mkt-first", ["pricing_type", "rate"]].tolist() == ["regular", 0.06]
    service = units[units["category"] == "service"]
    assert (service["pricing_type"] == "free_tier").sum() == 1000
    assert by_id.loc["s1000", ["pricing_type", "rate", "amount"]].tolist() == ["regular", 0.02, 0.02]
    assert counts["units_regular"] == 2


def test_service_is_free_customer_service_from_2024_11_01_in_account_time():
    sp = "America/Sao_Paulo"
    rows = [
        # 2024-11-01T02:00Z = 2024-10-31 23:00 in Sao Paulo: still the free-tier regime → free_tier
        raw_unit("late-oct", "2024-11-01T02:00:00Z", category="service", timezone=sp),
        # 2024-11-01T03:00Z = 00:00 local on 2024-11-01: every service conversation free_customer_service
        raw_unit("nov-1", "2024-11-01T03:00:00Z", category="service", timezone=sp),
        raw_unit("nov-2", "2024-11-02T03:00:00Z", category="service", timezone=sp),
        # no free tier any more: the first marketing conversation of November is regular
        raw_unit("nov-mkt", "2024-11-01T04:00:00Z", category="marketing", timezone=sp),
    ]
    units, counts = finalize_units(raw_units(rows), accounts({"timezone": sp}), CBP2_RATES,
                                   Period.parse("2024-10..2024-11"), QualityLog())
    got = units.set_index("opening_message_id")[["billing_month", "pricing_type", "rate", "amount"]]
    assert got.loc["late-oct"].tolist() == ["2024-10", "free_tier", 0.0, 0.0]
    assert got.loc["nov-1"].tolist() == ["2024-11", "free_customer_service", 0.0, 0.0]
    assert got.loc["nov-2"].tolist() == ["2024-11", "free_customer_service", 0.0, 0.0]
    assert got.loc["nov-mkt"].tolist() == ["2024-11", "regular", 0.06, 0.06]
    assert counts["units_free_customer_service"] == 2


def test_pmp2_service_allowance_per_phone_number_and_month():
    from dataclasses import replace

    from reconcile.rules.eras import REGIMES
    # a registry whose PMP-2 regime grants 2 free service messages per phone number and month
    regimes = tuple(replace(r, free_service_messages_per_phone_per_month=2) if r.era == "PMP-2" else r
                    for r in REGIMES)
    rates = rate_card(("2026-10-01", "Brazil", "service", 0.004))
    rows = [raw_unit(f"p1-{i}", f"2026-10-0{i + 1}T10:00:00Z", category="service") for i in range(3)]
    rows += [raw_unit("p2-0", "2026-10-05T10:00:00Z", category="service", phone_number_id="P2")]
    units, _ = finalize_units(raw_units(rows), accounts({}), rates, Period.parse("2026-10"), QualityLog(),
                              regimes=regimes)
    got = units.set_index("opening_message_id")["pricing_type"].to_dict()
    # P1: first two free_tier, third regular; P2 has its own allowance
    assert got == {"p1-0": "free_tier", "p1-1": "free_tier", "p1-2": "regular", "p2-0": "free_tier"}
    # with the shipped registry (allowance 0) every service message is regular
    units0, _ = finalize_units(raw_units(rows), accounts({}), rates, Period.parse("2026-10"), QualityLog())
    assert (units0["pricing_type"] == "regular").all()
    assert np.allclose(units0["amount"], 0.004)
