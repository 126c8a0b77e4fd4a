"""Golden scenarios: conversation windows of the CBP eras (rule book sections 0, 2, 3).

Every expected unit is derived by hand in the comments. Account W1 is in UTC unless said otherwise.
"""
import pandas as pd

from builders import accounts_frame, inbound, msg, run_windows


def ts(text):
    return pd.Timestamp(text)


def test_window_boundary_exactly_24h_cbp2():
    # m1 marketing 2024-03-01 10:00:00 opens marketing [10:00, next day 10:00).
    # m2 at +23:59:59 (03-02 09:59:59) is inside → rides on m1 (count 2).
    # m3 at +24:00:00 (03-02 10:00:00) is outside the half-open window → opens a new marketing one.
    run = run_windows([
        msg("m1", "2024-03-01T10:00:00Z"),
        msg("m2", "2024-03-02T09:59:59Z"),
        msg("m3", "2024-03-02T10:00:00Z"),
    ])
    assert run.summary() == [("m1", "marketing", "regular", 2), ("m3", "marketing", "regular", 1)]
    u1 = run.unit("m1")
    assert u1["opened_at"] == ts("2024-03-01T10:00:00Z")
    assert u1["expires_at"] == ts("2024-03-02T10:00:00Z")
    assert (u1["pricing_model"], u1["era"], u1["billing_month"]) == ("CBP", "CBP-2", "2024-03")
    assert u1["local_date"] == pd.Timestamp("2024-03-01")
    assert run.outcome() == {"m1": ("unit_opener", "m1"), "m2": ("rode_on_unit", "m1"),
                             "m3": ("unit_opener", "m3")}
    assert run.codes() == []


def test_marketing_and_utility_overlap_cbp2():
    # x1 marketing 10:00 opens marketing until 03-02 10:00.
    # x2 utility 11:00: a utility template opens utility even though marketing is open (until 03-02 11:00).
    # x3 marketing 12:00 rides on x1 (marketing open).
    # in1 user message 12:30 opens the CSW (so the free-form messages below raise no warning).
    # x4 free-form 13:00: conversations open → rides on the earliest opened one, x1.
    # x5 free-form 03-02 10:30: marketing expired at 10:00, utility open → rides on x2.
    # x6 free-form 03-02 11:00: nothing open (utility ended at 11:00) → opens service (CSW open: in1+24h
    #    = 03-02 12:30).
    run = run_windows([
        msg("x1", "2024-03-01T10:00:00Z", category="marketing"),
        msg("x2", "2024-03-01T11:00:00Z", category="utility"),
        msg("x3", "2024-03-01T12:00:00Z", category="marketing"),
        inbound("in1", "2024-03-01T12:30:00Z"),
        msg("x4", "2024-03-01T13:00:00Z", kind="free_form"),
        msg("x5", "2024-03-02T10:30:00Z", kind="free_form"),
        msg("x6", "2024-03-02T11:00:00Z", kind="free_form"),
    ])
    assert run.summary() == [("x1", "marketing", "regular", 3), ("x2", "utility", "regular", 2),
                             ("x6", "service", "regular", 1)]
    assert run.outcome()["x4"] == ("rode_on_unit", "x1")
    assert run.outcome()["x5"] == ("rode_on_unit", "x2")
    assert run.unit("x6")["expires_at"] == ts("2024-03-03T11:00:00Z")
    assert run.codes() == []


def test_free_form_rides_on_earliest_opened_ties_by_message_id():
    # b2 marketing and b1 utility are delivered at the same instant: ties are ordered by message_id, so b1
    # (utility) opens first, then b2 (marketing) opens its own category. The free-form f1 rides on the
    # earliest opened open conversation: b1.
    run = run_windows([
        inbound("in1", "2024-04-01T09:00:00Z"),
        msg("b2", "2024-04-01T10:00:00Z", category="marketing"),
        msg("b1", "2024-04-01T10:00:00Z", category="utility"),
        msg("f1", "2024-04-01T11:00:00Z", kind="free_form"),
    ])
    assert run.summary() == [("b1", "utility", "regular", 2), ("b2", "marketing", "regular", 1)]
    assert run.outcome()["f1"] == ("rode_on_unit", "b1")


def test_service_only_when_nothing_open_and_templates_ignore_service():
    # s1 free-form 10:00, nothing open → service until 04-02 10:00.
    # s2 marketing 11:00: service is another category → opens marketing.
    # s3 free-form 12:00: service (10:00) and marketing (11:00) open → rides on the earliest, s1.
    # s4 utility 13:00 → opens utility.
    run = run_windows([
        inbound("in1", "2024-04-01T09:00:00Z"),
        msg("s1", "2024-04-01T10:00:00Z", kind="free_form"),
        msg("s2", "2024-04-01T11:00:00Z", category="marketing"),
        msg("s3", "2024-04-01T12:00:00Z", kind="free_form"),
        msg("s4", "2024-04-01T13:00:00Z", category="utility"),
    ])
    assert run.summary() == [("s1", "service", "regular", 2), ("s2", "marketing", "regular", 1),
                             ("s4", "utility", "regular", 1)]


def test_cbp1_user_versus_business_initiated_and_free_form_outside_csw():
    # in1 06-01 10:00: CSW [06-01 10:00, 06-02 10:00).
    # t1 template 06-01 12:00: no conversation open, CSW open → user_initiated until 06-02 12:00.
    # t2 06-02 11:59:59 rides on t1 (any category, CBP-1 has one conversation at a time).
    # t3 06-02 12:00: t1 ended, CSW closed → business_initiated.
    # f1 free-form 06-05 10:00 with no user message in 24h → warning free_form_outside_csw; the CSW is
    #    treated as open for it only → opens user_initiated.
    # t4 template 06-06 10:00 (f1's conversation ended, the CSW was not extended) → business_initiated.
    run = run_windows([
        inbound("in1", "2022-06-01T10:00:00Z"),
        msg("t1", "2022-06-01T12:00:00Z", category="marketing"),
        msg("t2", "2022-06-02T11:59:59Z", category="utility"),
        msg("t3", "2022-06-02T12:00:00Z", category=""),
        msg("f1", "2022-06-05T10:00:00Z", kind="free_form"),
        msg("t4", "2022-06-06T10:00:00Z"),
    ])
    assert run.summary() == [("t1", "user_initiated", "regular", 2), ("t3", "business_initiated", "regular", 1),
                             ("f1", "user_initiated", "regular", 1), ("t4", "business_initiated", "regular", 1)]
    assert run.unit("t1")["era"] == "CBP-1" and run.unit("t1")["pricing_model"] == "CBP"
    assert run.codes() == [("warning", "free_form_outside_csw", "f1")]


def test_free_form_outside_csw_cbp2_opens_service_with_warning():
    # No inbound at all: the free-form g1 is delivered outside the CSW → warning, it may open service.
    run = run_windows([msg("g1", "2024-05-01T10:00:00Z", kind="free_form")])
    assert run.summary() == [("g1", "service", "regular", 1)]
    f = run.findings.iloc[0]
    assert (f["severity"], f["code"], f["source"], f["row"], f["column"]) == \
        ("warning", "free_form_outside_csw", "messages.csv", 1, "message_kind")


def test_nbp_templates_are_notifications_and_free_form_is_free():
    # NBP (before 2022-02-01): each template is one unit `notification`; free-form costs nothing and is
    # not a unit. No expiry for NBP units.
    run = run_windows([
        inbound("in1", "2021-05-01T09:00:00Z"),
        msg("n1", "2021-05-01T10:00:00Z"),
        msg("n2", "2021-05-01T10:05:00Z", category=""),
        msg("n3", "2021-05-01T10:10:00Z", kind="free_form"),
    ])
    assert run.summary() == [("n1", "notification", "regular", 1), ("n2", "notification", "regular", 1)]
    assert pd.isna(run.unit("n1")["expires_at"])
    assert run.unit("n1")["pricing_model"] == "NBP"
    assert run.outcome()["n3"] == ("free_not_unit", "")
    assert run.codes() == []


def test_keys_are_phone_and_user():
    # Same user on two business phone numbers: two separate conversations.
    run = run_windows([
        msg("k1", "2024-03-01T10:00:00Z", phone="P1"),
        msg("k2", "2024-03-01T11:00:00Z", phone="P2"),
        msg("k3", "2024-03-01T12:00:00Z", phone="P1"),
    ])
    assert run.summary() == [("k1", "marketing", "regular", 2), ("k2", "marketing", "regular", 1)]
