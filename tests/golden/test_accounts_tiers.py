"""Golden: volume tiers (rule book section 4, PMP portfolio scope; section 1, NBP account scope)."""
from __future__ import annotations

from reconcile.contracts import Period
from reconcile.engine.accounts import finalize_units
from reconcile.quality import QualityLog
from test_accounts_builders import accounts, rate_card, raw_unit, raw_units

SP = "America/Sao_Paulo"
# Brazil utility: ranks 1-2 at 0.01, 3-4 at 0.008, 5+ at 0.005; marketing untiered; India utility untiered
PMP_RATES = rate_card(("2025-07-01", "Brazil", "utility", 0.01, 1, 2), ("2025-07-01", "Brazil", "utility", 0.008, 3, 4),
                      ("2025-07-01", "Brazil", "utility", 0.005, 5, None), ("2025-07-01", "Brazil", "marketing", 0.06),
                      ("2025-07-01", "India", "utility", 0.002))


def test_pmp_tiers_rank_across_the_portfolio_in_delivery_order_each_in_its_own_month():
    acc = accounts({"waba_id": "W1", "portfolio_id": "PF"}, {"waba_id": "W2", "portfolio_id": "PF", "timezone": SP},
                   {"waba_id": "W3"})
    u = lambda mid, at, **kw: raw_unit(mid, at, category=kw.pop("category", "utility"),  # noqa: E731
                                       timezone=SP if kw.get("waba_id") == "W2" else "UTC", **kw)
    rows = [
        # 2025-07-01T02:00Z is 2025-06-30 23:00 in Sao Paulo: W2's June (before the period): not ranked in July
        u("w2-june", "2025-07-01T02:00:00Z", waba_id="W2"),
        u("a1", "2025-07-01T10:00:00Z", waba_id="W1"),          # rank 1 → 1:2
        u("a2", "2025-07-01T11:00:00Z", waba_id="W2"),          # rank 2 → 1:2 (other account, same portfolio)
        u("a3", "2025-07-02T00:00:00Z", waba_id="W2"),          # rank 3 → 3:4
        # free units do not count toward tiers: utility inside the CSW, free entry point
        u("free-cs", "2025-07-02T01:00:00Z", waba_id="W1", pricing_type="free_customer_service"),
        u("fep", "2025-07-02T02:00:00Z", waba_id="W1", category="free_entry_point", pricing_type="free_entry_point"),
        u("a4", "2025-07-03T00:00:00Z", waba_id="W1"),          # rank 4 → 3:4
        # same instant in both accounts: tie by opening message id → m-a rank 5, m-b rank 6 (both 5:)
        u("m-b", "2025-07-04T00:00:00Z", waba_id="W1"),
        u("m-a", "2025-07-04T00:00:00Z", waba_id="W2"),
        # 2025-08-01T02:00Z: still July in Sao Paulo (W2, rank 7), already August in UTC (W1, rank 1 of August)
        u("w2-late", "2025-08-01T02:00:00Z", waba_id="W2"),
        u("w1-aug", "2025-08-01T02:00:00Z", waba_id="W1"),
        # other market and other portfolio: their own rank 1; untiered category: tier ""
        u("india", "2025-07-05T00:00:00Z", waba_id="W1", market="India", country="IN"),
        u("w3", "2025-07-05T00:00:00Z", waba_id="W3"),
        u("mkt", "2025-07-05T00:00:00Z", waba_id="W1", category="marketing"),
    ]
    q = QualityLog()
    units, counts = finalize_units(raw_units(rows), acc, PMP_RATES, Period.parse("2025-07..2025-08"), q)
    got = {r.opening_message_id: (r.billing_month, r.tier_rank, r.tier, r.rate)
           for r in units.itertuples()}
    assert "w2-june" not in got and counts["units_before_period"] == 1
    assert got["a1"] == ("2025-07", 1, "1:2", 0.01)
    assert got["a2"] == ("2025-07", 2, "1:2", 0.01)
    assert got["a3"] == ("2025-07", 3, "3:4", 0.008)
    assert got["free-cs"] == ("2025-07", 0, "", 0.0)
    assert got["fep"] == ("2025-07", 0, "", 0.0)
    assert got["a4"] == ("2025-07", 4, "3:4", 0.008)
    assert got["m-a"] == ("2025-07", 5, "5:", 0.005)
    assert got["m-b"] == ("2025-07", 6, "5:", 0.005)
    assert got["w2-late"] == ("2025-07", 7, "5:", 0.005)
    assert got["w1-aug"] == ("2025-08", 1, "1:2", 0.01)
    assert got["india"] == ("2025-07", 1, "", 0.002)
    assert got["w3"] == ("2025-07", 1, "1:2", 0.01)
    assert got["mkt"] == ("2025-07", 1, "", 0.06)
    assert len(q) == 0


def test_nbp_notification_tiers_are_per_account_not_per_portfolio():
    rates = rate_card(("2021-01-01", "Brazil", "notification", 0.02, 1, 1),
                      ("2021-01-01", "Brazil", "notification", 0.01, 2, None))
    acc = accounts({"waba_id": "W1", "portfolio_id": "PF"}, {"waba_id": "W2", "portfolio_id": "PF"})
    rows = [raw_unit("n1", "2021-12-01T00:00:00Z", category="notification"),
            raw_unit("n2", "2021-12-02T00:00:00Z", category="notification", waba_id="W2"),
            raw_unit("n3", "2021-12-03T00:00:00Z", category="notification")]
    units, _ = finalize_units(raw_units(rows), acc, rates, Period.parse("2021-12"), QualityLog())
    got = units.set_index("opening_message_id")[["pricing_model", "tier_rank", "tier", "amount"]]
    # W1: n1 rank 1 (1:1, 0.02), n3 rank 2 (2:, 0.01); W2 ranks separately: n2 rank 1
    assert got.loc["n1"].tolist() == ["NBP", 1, "1:1", 0.02]
    assert got.loc["n3"].tolist() == ["NBP", 2, "2:", 0.01]
    assert got.loc["n2"].tolist() == ["NBP", 1, "1:1", 0.02]
