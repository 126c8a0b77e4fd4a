"""Golden scenarios: duplicates, statuses, charge instants (rule book section 0)."""
import pandas as pd

from builders import accounts_frame, inbound, msg, run_windows


def ts(text):
    return pd.Timestamp(text)


def test_out_of_order_statuses_merge_to_best_status_and_earliest_delivery():
    # d1 appears three times: the `read` event arrives first (read_at 10:05, no delivered_at), then `sent`,
    # then `delivered` (10:00). Merged: status read, delivered_at 10:00, read_at 10:05 → charged 10:00,
    # provenance of the first row (row 1). Two rows merged away.
    run = run_windows([
        msg("d1", None, status="read", delivered_at=None, read_at="2024-03-01T10:05:00Z", sent_at="2024-03-01T09:59:00Z"),
        msg("d1", None, status="sent", delivered_at=None, sent_at="2024-03-01T09:59:00Z"),
        msg("d1", "2024-03-01T10:00:00Z", status="delivered"),
    ])
    assert run.dedupe_counts == {"input_rows": 3, "duplicates_merged": 2, "conflicting_duplicates": 0}
    assert run.unit("d1")["opened_at"] == ts("2024-03-01T10:00:00Z")
    assert run.unit("d1")["expires_at"] == ts("2024-03-02T10:00:00Z")


def test_read_without_delivered_at_is_charged_at_read_at():
    run = run_windows([msg("r1", None, status="read", delivered_at=None, read_at="2024-03-01T10:05:00Z")])
    assert run.unit("r1")["opened_at"] == ts("2024-03-01T10:05:00Z")


def test_delivered_without_any_instant_is_an_error():
    run = run_windows([msg("x1", None, status="delivered", delivered_at=None, sent_at="2024-03-01T10:00:00Z")])
    assert run.units.empty
    f = run.findings.iloc[0]
    assert (f["severity"], f["code"], f["source"], f["row"], f["column"], f["message_id"]) == \
        ("error", "missing_delivery_time", "messages.csv", 1, "delivered_at", "x1")
    assert run.outcome() == {"x1": ("excluded", "")}
    assert run.counts == {"inbound": 0, "non_billable": 0, "billable_outbound": 1, "rejected": 1, "units": 0}


def test_sent_and_failed_are_never_charged_and_open_nothing():
    # s1 sent and f1 failed open nothing; m1 delivered at 12:00 opens the conversation.
    run = run_windows([
        msg("s1", "2024-03-01T10:00:00Z", status="sent"),
        msg("f1", "2024-03-01T11:00:00Z", status="failed"),
        msg("m1", "2024-03-01T12:00:00Z"),
        inbound("in1", "2024-03-01T09:00:00Z"),
    ])
    assert run.summary() == [("m1", "marketing", "regular", 1)]
    assert run.counts == {"inbound": 1, "non_billable": 2, "billable_outbound": 1, "rejected": 0, "units": 1}
    assert set(run.coverage["message_id"]) == {"m1"}


def test_conflicting_duplicate_is_excluded_and_reported_once():
    # c1 twice with different users, and c2 three times with two different non-empty categories: both
    # excluded, one finding each; c3 has an empty category in one row: no conflict, merged as marketing.
    run = run_windows([
        msg("c1", "2024-03-01T10:00:00Z", user="5511999990001"),
        msg("c1", "2024-03-01T10:00:00Z", user="5511999990009"),
        msg("c2", "2024-03-01T11:00:00Z", category="marketing"),
        msg("c2", "2024-03-01T11:00:00Z", category="utility"),
        msg("c2", "2024-03-01T11:00:00Z", category="utility"),
        msg("c3", "2024-03-02T11:00:00Z", category=""),
        msg("c3", "2024-03-02T11:00:00Z", category="marketing"),
    ])
    assert run.dedupe_counts == {"input_rows": 7, "duplicates_merged": 4, "conflicting_duplicates": 2}
    f = run.findings.sort_values("message_id").reset_index(drop=True)
    assert list(zip(f["severity"], f["code"], f["message_id"], f["row"], f["column"])) == [
        ("error", "conflicting_duplicate", "c1", 1, "user_wa_id"),
        ("error", "conflicting_duplicate", "c2", 3, "template_category")]
    assert "user_wa_id" in f.loc[0, "detail"]
    assert run.summary() == [("c3", "marketing", "regular", 1)]


def test_unknown_account_is_excluded_with_an_error():
    run = run_windows([msg("w1", "2024-03-01T10:00:00Z", waba="W9"), msg("w2", "2024-03-01T10:00:00Z")],
                      accounts=accounts_frame(("W1", "UTC")))
    assert run.summary() == [("w2", "marketing", "regular", 1)]
    assert run.codes() == [("error", "unknown_account", "w1")]
    assert run.outcome()["w1"] == ("excluded", "")
    assert run.counts["rejected"] == 1
