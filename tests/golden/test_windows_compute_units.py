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
