"""Golden scenarios: free entry point windows (rule book section 0, sections 2-5)."""
import pandas as pd

from builders import inbound, msg, run_windows


def ts(text):
    return pd.Timestamp(text)


def test_fep_reply_within_24h_opens_72h_window_everything_free():
    # a1 ad inbound 03-01 10:00. The key's first billable delivery after it, m1 at 12:00, is within 24h
    # → free entry point window [03-01 12:00, 03-04 12:00) (72h, CBP-2).
    # m2 utility, m3 free-form, m4 authentication (at +71:59:59) all ride free on it (count 4);
    # the ordinary inbound o1 changes nothing.
    # m5 marketing at 03-04 12:00:00 is outside (half-open) → opens a marketing conversation.
    run = run_windows([
        inbound("a1", "2024-03-01T10:00:00Z", entry_point="ad"),
        msg("m1", "2024-03-01T12:00:00Z", category="marketing"),
        msg("m2", "2024-03-02T12:00:00Z", category="utility"),
        inbound("o1", "2024-03-03T11:00:00Z"),
        msg("m3", "2024-03-03T12:00:00Z", kind="free_form"),
        msg("m4", "2024-03-04T11:59:59Z", category="authentication"),
        msg("m5", "2024-03-04T12:00:00Z", category="marketing"),
    ])
    assert run.summary() == [("m1", "free_entry_point", "free_entry_point", 4), ("m5", "marketing", "regular", 1)]
    assert run.unit("m1")["expires_at"] == ts("2024-03-04T12:00:00Z")
    assert run.unit("m1")["pricing_model"] == "CBP"
    assert {m: o for m, (o, _) in run.outcome().items()} == {
        "m1": "unit_opener", "m2": "rode_on_unit", "m3": "rode_on_unit", "m4": "rode_on_unit", "m5": "unit_opener"}
    assert run.codes() == []


def test_fep_reply_exactly_24h_later_is_no_fep():
    # a1 page_cta at 03-01 10:00; the reply m1 at 03-02 10:00:00 is not < 24h → an ordinary marketing
    # conversation; m2 rides on it.
    run = run_windows([
        inbound("a1", "2024-03-01T10:00:00Z", entry_point="page_cta"),
        msg("m1", "2024-03-02T10:00:00Z"),
        msg("m2", "2024-03-02T11:00:00Z"),
    ])
    assert run.summary() == [("m1", "marketing", "regular", 2)]


def test_fep_opens_even_when_a_conversation_is_open():
    # CBP-2: q0 marketing 09:00 opens marketing until 03-02 09:00. a1 ad 10:00; q1 (11:00) is the first
    # delivery after it → the FEP opens at q1 anyway ("whether or not a conversation is already open").
    # q0 keeps its own charge but nothing rides on it while the FEP lasts: q2 marketing rides on the FEP.
    # After the FEP ends (03-04 11:00) the next delivery q3 opens anew (q0's 24h would have ended long ago;
    # q3 is marketing → new marketing conversation).
    run = run_windows([
        msg("q0", "2024-03-01T09:00:00Z", category="marketing"),
        inbound("a1", "2024-03-01T10:00:00Z", entry_point="ad"),
        msg("q1", "2024-03-01T11:00:00Z", category="utility"),
        msg("q2", "2024-03-01T12:00:00Z", category="marketing"),
        msg("q3", "2024-03-04T11:00:00Z", category="marketing"),
    ])
    assert run.summary() == [("q0", "marketing", "regular", 1), ("q1", "free_entry_point", "free_entry_point", 2),
                             ("q3", "marketing", "regular", 1)]


def test_conversation_open_before_fep_does_not_resume_after_it():
    # CBP-1 (2022-06, FEP length 24h): c0 at 10:00 opens business_initiated (no CSW) until 06-02 10:00.
    # a1 ad 10:30; c1 at 11:00 is the first delivery after it → FEP [06-01 11:00, 06-02 11:00) although c0
    # is open; c0 keeps its charge. c2 at 06-02 10:59:59 rides on the FEP (not on c0).
    # c3 at 06-02 11:00: the FEP ended, nothing open; CSW closed (a1 + 24h = 06-02 10:30)
    # → business_initiated.
    run = run_windows([
        msg("c0", "2022-06-01T10:00:00Z"),
        inbound("a1", "2022-06-01T10:30:00Z", entry_point="ad"),
        msg("c1", "2022-06-01T11:00:00Z"),
        msg("c2", "2022-06-02T10:59:59Z"),
        msg("c3", "2022-06-02T11:00:00Z"),
    ])
    assert run.summary() == [("c0", "business_initiated", "regular", 1),
                             ("c1", "free_entry_point", "free_entry_point", 2),
                             ("c3", "business_initiated", "regular", 1)]
    assert run.unit("c1")["expires_at"] == ts("2022-06-02T11:00:00Z")


def test_fep_24h_before_2023_02_01_and_72h_from_it():
    # Opened 2023-01-31 11:00 (24h regime) → ends 02-01 11:00 even though it runs into the 72h regime.
    # e2 at 02-01 10:59:59 rides; e3 at 02-01 11:00 opens a conversation: CSW closed (a1 + 24h = 02-01 10:00)
    # → business_initiated. User U2: opened 2023-02-01 01:00 (72h regime) → ends 02-04 01:00.
    run = run_windows([
        inbound("a1", "2023-01-31T10:00:00Z", entry_point="ad"),
        msg("e1", "2023-01-31T11:00:00Z"),
        msg("e2", "2023-02-01T10:59:59Z"),
        msg("e3", "2023-02-01T11:00:00Z"),
        inbound("b1", "2023-02-01T00:00:00Z", entry_point="ad", user="5511999990002"),
        msg("f1", "2023-02-01T01:00:00Z", user="5511999990002"),
        msg("f2", "2023-02-04T00:59:59Z", user="5511999990002"),
    ])
    assert run.unit("e1")["expires_at"] == ts("2023-02-01T11:00:00Z")
    assert run.unit("e1")["message_count"] == 2
    assert run.unit("e3")["category"] == "business_initiated"
    assert run.unit("f1")["expires_at"] == ts("2023-02-04T01:00:00Z")
    assert run.unit("f1")["message_count"] == 2
    assert len(run.units) == 3


def test_no_fep_in_nbp():
    # 2021: free entry points do not exist; the reply is an ordinary notification.
    run = run_windows([
        inbound("a1", "2021-06-01T10:00:00Z", entry_point="ad"),
        msg("n1", "2021-06-01T11:00:00Z"),
    ])
    assert run.summary() == [("n1", "notification", "regular", 1)]


def test_pmp_fep_one_unit_per_template_and_missing_category_inside():
    # PMP: a1 ad 08-01 10:00; p1 marketing 11:00 opens the FEP [08-01 11:00, 08-04 11:00) and is itself a
    # free_entry_point unit; p2 utility → own free_entry_point unit; p3 free-form → free, not a unit;
    # p4 template without category inside the window → a free_entry_point unit as usual (no finding).
    # After it: p5 marketing 08-04 11:00 → regular marketing unit; p6 without category → excluded with
    # missing_template_category (error).
    run = run_windows([
        inbound("a1", "2025-08-01T10:00:00Z", entry_point="ad"),
        msg("p1", "2025-08-01T11:00:00Z", category="marketing"),
        msg("p2", "2025-08-02T11:00:00Z", category="utility"),
        msg("p3", "2025-08-02T11:30:00Z", kind="free_form"),
        msg("p4", "2025-08-03T11:00:00Z", category=""),
        msg("p5", "2025-08-04T11:00:00Z", category="marketing"),
        msg("p6", "2025-08-04T12:00:00Z", category=""),
    ])
    assert run.summary() == [("p1", "free_entry_point", "free_entry_point", 1),
                             ("p2", "free_entry_point", "free_entry_point", 1),
                             ("p4", "free_entry_point", "free_entry_point", 1),
                             ("p5", "marketing", "regular", 1)]
    assert run.unit("p1")["pricing_model"] == "PMP" and pd.isna(run.unit("p1")["expires_at"])
    out = run.outcome()
    assert out["p3"] == ("free_not_unit", "") and out["p6"] == ("excluded", "")
    # p3 is outside the CSW (a1 + 24h = 08-02 10:00) → warning as well
    assert run.codes() == [("error", "missing_template_category", "p6"), ("warning", "free_form_outside_csw", "p3")]
    assert run.counts["rejected"] == 1


def test_fep_opened_by_template_without_category():
    # CBP-2: the opener itself has no category: fine inside a FEP (it opens it).
    run = run_windows([
        inbound("a1", "2024-03-01T10:00:00Z", entry_point="ad"),
        msg("z1", "2024-03-01T10:30:00Z", category=""),
        msg("z2", "2024-03-05T10:30:00Z", category=""),
    ])
    assert run.summary() == [("z1", "free_entry_point", "free_entry_point", 1)]
    assert run.codes() == [("error", "missing_template_category", "z2")]


def test_pmp2_fep_free_form_is_a_unit():
    # PMP-2: inside the FEP, free-form messages are free_entry_point units too.
    run = run_windows([
        inbound("a1", "2026-10-05T10:00:00Z", entry_point="ad"),
        msg("r1", "2026-10-05T10:10:00Z", kind="free_form"),
        msg("r2", "2026-10-05T10:20:00Z", category="utility"),
    ])
    assert run.summary() == [("r1", "free_entry_point", "free_entry_point", 1),
                             ("r2", "free_entry_point", "free_entry_point", 1)]


def test_entry_point_in_nbp_answered_in_cbp1_opens_a_24h_window():
    # UTC account. a1 (ad) arrives 2022-01-31 23:00 under NBP, where free entry points do not exist.
    # The first billable delivery after it, m1 at 2022-02-01 01:00, is within 24h and falls in CBP-1
    # (from 2022-02-01 00:00 account time): the era of the *answer* decides (section 0: free entry
    # points exist from 2022-02-01 on), and the pending entry point carries across the boundary like
    # the CSW does (decisions.md 11). Before 2023-02-01 the window lasts 24h: [02-01 01:00, 02-02 01:00).
    # m2 at 02-02 00:59:59 rides free (count 2); m3 at 02-02 01:00:00 is outside (half-open) and opens a
    # business-initiated conversation (the user's last message a1 is > 24h before it).
    run = run_windows([
        inbound("a1", "2022-01-31T23:00:00Z", entry_point="ad"),
        msg("m1", "2022-02-01T01:00:00Z", category="marketing"),
        msg("m2", "2022-02-02T00:59:59Z", category="utility"),
        msg("m3", "2022-02-02T01:00:00Z", category="marketing"),
    ])
    assert run.summary() == [("m1", "free_entry_point", "free_entry_point", 2),
                             ("m3", "business_initiated", "regular", 1)]
    assert run.unit("m1")["expires_at"] == ts("2022-02-02T01:00:00Z")
    assert run.unit("m1")["pricing_model"] == "CBP"
