"""Golden scenarios: era boundaries at 00:00 account time (rule book section 0, "Era boundaries")."""
import pandas as pd

from builders import accounts_frame, inbound, msg, run_windows


def ts(text):
    return pd.Timestamp(text)


def test_conversation_ends_at_pmp_start_sao_paulo():
    # Account in America/Sao_Paulo (UTC-3 in 2025, no DST). s1 marketing on 2025-06-30 23:00 local
    # = 07-01 02:00Z opens a CBP-2 conversation; it ends at 2025-07-01 00:00 local = 03:00Z, not 24h later.
    # s2 free-form at 02:30Z (23:30 local, June 30) rides on s1 (CSW open thanks to in1).
    # s3 marketing at 03:00Z = 00:00 local July 1 → PMP: its own unit, billing month 2025-07.
    # s4 utility at 03:10Z inside the CSW (in1 at 01:00Z) → PMP utility free_customer_service.
    accounts = accounts_frame(("W1", "America/Sao_Paulo", "BRL", "BR"))
    run = run_windows([
        inbound("in1", "2025-07-01T01:00:00Z"),
        msg("s1", "2025-07-01T02:00:00Z", category="marketing"),
        msg("s2", "2025-07-01T02:30:00Z", kind="free_form"),
        msg("s3", "2025-07-01T03:00:00Z", category="marketing"),
        msg("s4", "2025-07-01T03:10:00Z", category="utility"),
    ], accounts=accounts)
    assert run.summary() == [("s1", "marketing", "regular", 2), ("s3", "marketing", "regular", 1),
                             ("s4", "utility", "free_customer_service", 1)]
    s1 = run.unit("s1")
    assert s1["expires_at"] == ts("2025-07-01T03:00:00Z")
    assert (s1["era"], s1["billing_month"], s1["local_date"], s1["timezone"]) == \
        ("CBP-2", "2025-06", pd.Timestamp("2025-06-30"), "America/Sao_Paulo")
    s3 = run.unit("s3")
    assert (s3["era"], s3["pricing_model"], s3["billing_month"], s3["local_date"]) == \
        ("PMP", "PMP", "2025-07", pd.Timestamp("2025-07-01"))


def test_conversation_ends_at_pmp_start_kolkata():
    # Asia/Kolkata (UTC+5:30): k1 at 2025-06-30 23:00 local = 17:30Z; the era boundary is
    # 2025-07-01 00:00 local = 2025-06-30 18:30Z. k2 at 18:29:59Z rides; k3 at 18:30:00Z (UTC date still
    # June 30) is in PMP and billed in 2025-07.
    accounts = accounts_frame(("W1", "Asia/Kolkata", "INR", "IN"))
    run = run_windows([
        msg("k1", "2025-06-30T17:30:00Z", category="utility", user="919876543210"),
        msg("k2", "2025-06-30T18:29:59Z", category="utility", user="919876543210"),
        msg("k3", "2025-06-30T18:30:00Z", category="utility", user="919876543210"),
    ], accounts=accounts)
    assert run.summary() == [("k1", "utility", "regular", 2), ("k3", "utility", "regular", 1)]
    assert run.unit("k1")["expires_at"] == ts("2025-06-30T18:30:00Z")
    assert (run.unit("k3")["era"], run.unit("k3")["billing_month"]) == ("PMP", "2025-07")
    assert (run.unit("k1")["country"], run.unit("k1")["market"]) == ("IN", "India")


def test_fep_ends_at_era_boundary_and_csw_carries_over():
    # UTC account. a1 ad 2025-06-30 20:00; e1 at 21:00 opens a 72h FEP, cut at 2025-07-01 00:00 (PMP).
    # e2 at 23:00 rides. e3 utility at 07-01 00:00 → PMP; CSW (a1 at 06-30 20:00, +24h) carries over →
    # free_customer_service.
    run = run_windows([
        inbound("a1", "2025-06-30T20:00:00Z", entry_point="ad"),
        msg("e1", "2025-06-30T21:00:00Z"),
        msg("e2", "2025-06-30T23:00:00Z"),
        msg("e3", "2025-07-01T00:00:00Z", category="utility"),
    ])
    assert run.summary() == [("e1", "free_entry_point", "free_entry_point", 2),
                             ("e3", "utility", "free_customer_service", 1)]
    assert run.unit("e1")["expires_at"] == ts("2025-07-01T00:00:00Z")


def test_cbp1_to_cbp2_boundary_and_switch_inside_era_does_not_cut():
    # c1 CBP-1 conversation opened 2023-05-31 12:00 UTC ends at 2023-06-01 00:00 (CBP-2 starts);
    # c2 at 06-01 00:00 is a CBP-2 marketing conversation. The 2024-11-01 switch inside CBP-2 does not cut:
    # d1 opened 2024-10-31 12:00 covers d2 at 2024-11-01 11:59:59.
    run = run_windows([
        msg("c1", "2023-05-31T12:00:00Z"),
        msg("c2", "2023-06-01T00:00:00Z"),
        msg("d1", "2024-10-31T12:00:00Z", category="utility"),
        msg("d2", "2024-11-01T11:59:59Z", category="utility"),
    ])
    assert run.summary() == [("c1", "business_initiated", "regular", 1), ("c2", "marketing", "regular", 1),
                             ("d1", "utility", "regular", 2)]
    assert run.unit("c1")["expires_at"] == ts("2023-06-01T00:00:00Z")
    assert run.unit("d1")["expires_at"] == ts("2024-11-01T12:00:00Z")
    assert [run.unit(m)["regime_index"] for m in ("c1", "c2", "d1")] == [2, 3, 3]
