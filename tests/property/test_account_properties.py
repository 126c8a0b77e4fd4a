"""Properties of the account-level passes (``reconcile.engine.accounts.finalize_units``) on random raw units:
free units cost exactly 0; tier ranks of each scope are 1..n without gaps; the row order of the input
never changes the result; every in-period unit is emitted once; paid amounts equal the rate."""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.contracts import FREE_PRICING_TYPES, Period
from reconcile.engine.accounts import finalize_units
from reconcile.quality import QualityLog
from reconcile.rules.eras import REGIMES, regime_for
from reconcile.rules.rates import RateTable

ZONES = {"W1": "UTC", "W2": "America/Sao_Paulo", "W3": "Asia/Kolkata"}
ACCOUNTS = pd.DataFrame({"waba_id": ["W1", "W2", "W3"], "name": ["a", "b", "c"], "timezone": list(ZONES.values()),
                         "currency": ["USD", "USD", "EUR"], "business_country": ["BR", "IN", "BR"],
                         "portfolio_id": ["PF", "PF", ""]})
CATEGORIES = {"CBP": ["user_initiated", "business_initiated", "marketing", "utility", "authentication", "service"],
              "PMP": ["marketing", "utility", "authentication", "service"], "NBP": ["notification"]}
RATES = pd.DataFrame([
    {"effective_from": date(2021, 1, 1), "market": m, "currency": cur, "category": c, "tier_from": tf,
     "tier_to": tt, "rate": r}
    for m in ("Brazil", "India") for cur in ("USD",)  # EUR deliberately missing → missing_rate findings
    for c, tf, tt, r in [("notification", 1, 3, 0.02), ("notification", 4, None, 0.01),
                         ("user_initiated", None, None, 0.03), ("business_initiated", None, None, 0.04),
                         ("marketing", None, None, 0.06), ("utility", 1, 2, 0.01), ("utility", 3, None, 0.005),
                         ("authentication", 1, 2, 0.02), ("authentication", 3, None, 0.015),
                         ("authentication_international", None, None, 0.05), ("service", None, None, 0.01)]
])
RATES["tier_from"] = RATES["tier_from"].astype("Int64")
RATES["tier_to"] = RATES["tier_to"].astype("Int64")
RATE_TABLE = RateTable(RATES)   # indexed once; finalize_units accepts the frame or the table
# month starts around which units are drawn (CBP-1 free tier, CBP-2, service free, PMP, NBP)
ANCHORS = [pd.Timestamp("2021-12-31T12:00Z"), pd.Timestamp("2022-03-31T12:00Z"), pd.Timestamp("2024-10-31T12:00Z"),
           pd.Timestamp("2025-07-31T12:00Z")]


@st.composite
def raw_unit_frames(draw):
    anchor = draw(st.sampled_from(ANCHORS))
    n = draw(st.integers(0, 60))
    rows = []
    for i in range(n):
        waba = draw(st.sampled_from(list(ZONES)))
        t = anchor + pd.Timedelta(minutes=30 * draw(st.integers(-48, 48)))
        local = t.tz_convert(ZONES[waba]).tz_localize(None)
        reg = regime_for(local.date())
        fep = draw(st.integers(0, 9)) == 0
        cat = "free_entry_point" if fep else draw(st.sampled_from(CATEGORIES[reg.pricing_model]))
        ptype = "free_entry_point" if fep else draw(st.sampled_from(["regular"] * 4 + ["free_customer_service"]))
        rows.append({"waba_id": waba, "phone_number_id": waba + draw(st.sampled_from("ab")),
                     "user_wa_id": "5511990000001", "country": draw(st.sampled_from(["BR", "IN", ""])),
                     "market": draw(st.sampled_from(["Brazil", "India", "Germany"])),
                     "pricing_model": reg.pricing_model, "category": cat, "pricing_type": ptype, "opened_at": t,
                     "expires_at": pd.NaT, "opening_message_id": f"m{draw(st.integers(0, 30)):02d}-{i}",
                     "message_count": 1, "era": reg.era, "regime_index": REGIMES.index(reg),
                     "local_date": local.normalize(), "billing_month": local.strftime("%Y-%m"),
                     "timezone": ZONES[waba]})
    cols = ["waba_id", "phone_number_id", "user_wa_id", "country", "market", "pricing_model", "category",
            "pricing_type", "opened_at", "expires_at", "opening_message_id", "message_count", "era", "regime_index",
            "local_date", "billing_month", "timezone"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["opened_at"] = pd.to_datetime(frame["opened_at"], utc=True).astype("datetime64[ns, UTC]")
    frame["expires_at"] = pd.to_datetime(frame["expires_at"], utc=True).astype("datetime64[ns, UTC]")
    frame["local_date"] = pd.to_datetime(frame["local_date"]).astype("datetime64[ns]")
    month = anchor.strftime("%Y-%m")
    nxt = (anchor + pd.Timedelta(days=2)).strftime("%Y-%m")
    return frame, Period.parse(f"{month}..{nxt}"), draw(st.randoms(use_true_random=False))


def _run(frame, period):
    q = QualityLog()
    units, counts = finalize_units(frame, ACCOUNTS, RATE_TABLE, period, q)
    return units, counts, q.frame()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_unit_frames())
def test_account_pass_invariants(case):
    frame, period, rnd = case
    units, counts, findings = _run(frame, period)

    # every in-period unit emitted exactly once
    in_period = frame["billing_month"].map(period.contains).astype(bool) if len(frame) else pd.Series([], dtype=bool)
    assert len(units) == int(in_period.sum()) == counts["units"]
    assert units["unit_id"].is_unique

    # free units: rate 0 and amount 0, no tier
    free = units["pricing_type"].isin(FREE_PRICING_TYPES)
    assert (units.loc[free, "amount"] == 0).all() and (units.loc[free, "rate"] == 0).all()
    assert (units.loc[free, "tier"] == "").all() and (units.loc[free, "tier_rank"] == 0).all()

    # paid units: amount = rate (one unit each), NaN only together, and each NaN is covered by a finding
    paid = units[~free]
    assert ((paid["amount"] == paid["rate"]) | (paid["amount"].isna() & paid["rate"].isna())).all()
    missing = paid[paid["rate"].isna()]
    groups = missing.groupby(["waba_id", "market", "category", "currency", "billing_month"]).ngroups
    assert (findings["code"] == "missing_rate").sum() == groups

    # tier ranks per scope: 1..n without gaps, in delivery order
    scope = paid["portfolio_id"].where(paid["pricing_model"] != "NBP", paid["waba_id"])
    for _, g in paid.assign(_scope=scope).groupby(["_scope", "market", "category", "billing_month"]):
        g = g.sort_values(["opened_at", "opening_message_id"])
        assert g["tier_rank"].tolist() == list(range(1, len(g) + 1))

    # the free tier never exceeds the regime's size per account and month
    ft = units[units["pricing_type"] == "free_tier"]
    for (_, _), g in ft.groupby(["waba_id", "billing_month"]):
        assert len(g) <= REGIMES[int(g["regime_index"].iloc[0])].free_tier_size

    # permuting the input rows never changes the result
    order = list(range(len(frame)))
    rnd.shuffle(order)
    units2, counts2, findings2 = _run(frame.iloc[order].reset_index(drop=True), period)
    pd.testing.assert_frame_equal(units, units2)
    pd.testing.assert_frame_equal(findings, findings2)
    assert counts == counts2


def test_free_tier_boundary_with_a_small_registry_size():
    """The same invariants with a free tier of 2 (so hypothesis-sized inputs cross it)."""
    from dataclasses import replace
    regimes = tuple(replace(r, free_tier_size=2) if r.free_tier_size else r for r in REGIMES)
    t0 = pd.Timestamp("2022-03-10T00:00Z")
    frame = pd.DataFrame({
        "waba_id": "W1", "phone_number_id": "W1a", "user_wa_id": "5511990000001", "country": "BR",
        "market": "Brazil", "pricing_model": "CBP", "category": ["business_initiated", "user_initiated"] * 2,
        "pricing_type": "regular", "opened_at": [t0 + pd.Timedelta(hours=h) for h in (3, 1, 2, 1)],
        "expires_at": pd.NaT, "opening_message_id": ["d", "b", "c", "a"], "message_count": 1, "era": "CBP-1",
        "regime_index": REGIMES.index(regime_for(date(2022, 3, 10))), "local_date": pd.Timestamp("2022-03-10"),
        "billing_month": "2022-03", "timezone": "UTC"})
    units, _ = finalize_units(frame, ACCOUNTS, RATES, Period.parse("2022-03"), QualityLog(), regimes=regimes)
    # order: a and b at 01:00 (tie → id), c at 02:00, d at 03:00 → a, b free; c, d regular
    assert dict(zip(units["opening_message_id"], units["pricing_type"])) == {
        "a": "free_tier", "b": "free_tier", "c": "regular", "d": "regular"}
    assert np.allclose(units.set_index("opening_message_id").loc[["c", "d"], "amount"], [0.04, 0.04])  # both business_initiated
