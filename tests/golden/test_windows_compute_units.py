"""compute_units wiring: dedupe → window_units → finalize_units on one small hand-derived log."""
import pandas as pd

from builders import accounts_frame, inbound, market_map_frame, messages_frame, msg

from reconcile.contracts import RATE_COLUMNS, UNIT_COLUMNS
from reconcile.engine import EngineResult, compute_units
from reconcile.quality import QualityLog


def test_compute_units_prices_the_period_only():
    # June (CBP-2): j1 marketing conversation (history, not emitted for period 2025-07).
    # July (PMP): in1 opens the CSW; p1 utility inside it → free_customer_service (rate 0);
    # p2 marketing → regular at the Brazil marketing rate 0.0625.
    rows = [msg("j1", "2025-06-10T10:00:00Z"),
            inbound("in1", "2025-07-02T09:00:00Z"),
            msg("p1", "2025-07-02T10:00:00Z", category="utility"),
            msg("p2", "2025-07-02T11:00:00Z", category="marketing")]
    rates = pd.DataFrame([{"effective_from": "2025-07-01", "market": "Brazil", "currency": "USD",
                           "category": c, "tier_from": "", "tier_to": "", "rate": r}
                          for c, r in (("marketing", "0.0625"), ("utility", "0.0068"))], columns=RATE_COLUMNS)
    quality = QualityLog()
    result = compute_units(messages_frame(rows), accounts_frame(), rates, market_map_frame(), "2025-07", quality)
    assert isinstance(result, EngineResult)
    units = result.units
    assert list(units.columns[:len(UNIT_COLUMNS)]) == UNIT_COLUMNS
    got = list(zip(units["unit_id"], units["pricing_type"], units["amount"].round(4)))
    assert got == [("p1:utility", "free_customer_service", 0.0), ("p2:marketing", "regular", 0.0625)]
    assert len(result.raw_units) == 3
    assert result.counts["raw_units"] == 3 and result.counts["input_rows"] == 4
    assert result.counts["billable_outbound"] == 3


def test_compute_units_warns_when_history_is_shorter_than_seven_days():
    # Section 0: pipelines pass the previous month as lookback; less than 7 days of history before the
    # period start (00:00 account time) is a warning. W1 (UTC) starts 2025-06-25 00:00 → 6 days before
    # 2025-07-01 → warned; W2 (UTC) starts 2025-06-20 → 11 days → not warned. Nothing is trimmed:
    # both accounts' units are still computed.
    rows = [msg("a1", "2025-06-25T00:00:00Z"), msg("a2", "2025-07-02T10:00:00Z"),
            msg("b1", "2025-06-20T00:00:00Z", waba="W2", phone="P2"),
            msg("b2", "2025-07-02T10:00:00Z", waba="W2", phone="P2")]
    rates = pd.DataFrame([{"effective_from": "2025-07-01", "market": "Brazil", "currency": "USD",
                           "category": "marketing", "tier_from": "", "tier_to": "", "rate": "0.0625"}],
                         columns=RATE_COLUMNS)
    quality = QualityLog()
    result = compute_units(messages_frame(rows), accounts_frame(("W1", "UTC"), ("W2", "UTC")), rates,
                           market_map_frame(), "2025-07", quality)
    findings = quality.frame()
    lookback = findings[findings["code"] == "short_lookback"]
    assert lookback["severity"].tolist() == ["warning"]
    assert lookback["detail"].str.startswith("account W1:").all()
    assert sorted(result.units["opening_message_id"]) == ["a2", "b2"]


def test_a_user_number_filled_in_by_a_duplicate_is_the_units_number():
    # compute_units codes the user numbers beside the deduplication. d1's first row has no user number
    # and its duplicate has 5511999990002: the merged message belongs to that user (first non-empty
    # value), so d1 opens its own unit for 5511999990002 beside p1's for the default user. The numbers
    # coded before the merge must not be used for the merged column.
    rows = [msg("p1", "2025-07-02T10:00:00Z"),
            msg("d1", "2025-07-02T10:30:00Z", user=""),
            msg("d1", "2025-07-02T10:30:00Z", user="5511999990002")]
    rates = pd.DataFrame([{"effective_from": "2025-07-01", "market": "Brazil", "currency": "USD",
                           "category": "marketing", "tier_from": "", "tier_to": "", "rate": "0.0625"}],
                         columns=RATE_COLUMNS)
    result = compute_units(messages_frame(rows), accounts_frame(), rates, market_map_frame(), "2025-07", QualityLog())
    got = sorted(zip(result.units["unit_id"], result.units["user_wa_id"]))
    assert got == [("d1:marketing", "5511999990002"), ("p1:marketing", msg("x")["user_wa_id"])]
    assert result.counts["duplicates_merged"] == 1
