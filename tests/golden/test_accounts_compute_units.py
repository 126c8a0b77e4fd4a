"""Golden, end to end through ``reconcile.engine.compute_units``: month end in America/Sao_Paulo and
Asia/Kolkata (rule book section 0 "Billing month", "Era boundaries") from hand-written messages."""
from __future__ import annotations

import pandas as pd

from reconcile.contracts import MESSAGE_COLUMNS, Period
from reconcile.engine import compute_units
from reconcile.quality import QualityLog
from reconcile.rules.markets import default_market_map
from test_accounts_builders import accounts, rate_card

RATES = rate_card(("2023-06-01", "Brazil", "marketing", 0.05), ("2025-07-01", "Brazil", "marketing", 0.0625),
                  ("2023-06-01", "India", "marketing", 0.01), ("2025-07-01", "India", "marketing", 0.0107))


def _template(mid, waba, phone, user, delivered):
    return dict(message_id=mid, waba_id=waba, phone_number_id=phone, user_wa_id=user, direction="outbound",
                sent_at=pd.Timestamp(delivered) - pd.Timedelta(seconds=1), status="delivered",
                delivered_at=pd.Timestamp(delivered), read_at=pd.NaT, message_kind="template",
                template_category="marketing", entry_point="")


def test_month_end_and_era_start_in_account_time_through_the_whole_engine():
    messages = pd.DataFrame([
        # Sao Paulo (UTC-3): 02:59:59Z on Aug 1 is still July 31 local → July; 03:00:00Z is August → not emitted
        _template("sp-july", "SP", "P-SP", "5511990000001", "2025-08-01T02:59:59Z"),
        _template("sp-aug", "SP", "P-SP", "5511990000001", "2025-08-01T03:00:00Z"),
        # Kolkata (UTC+5:30): 18:29:59Z on Jun 30 is June 30 23:59:59 local → CBP-2 marketing conversation,
        # billed in June (lookback, not emitted); it ends at the PMP era start 00:00 local = 18:30:00Z,
        # so the template delivered at exactly 18:30:00Z (July 1 local) is its own PMP unit in July
        _template("in-june", "IN", "P-IN", "919800000002", "2025-06-30T18:29:59Z"),
        _template("in-july", "IN", "P-IN", "919800000002", "2025-06-30T18:30:00Z"),
    ])[MESSAGE_COLUMNS]
    for c in ("sent_at", "delivered_at", "read_at"):
        messages[c] = pd.to_datetime(messages[c], utc=True).astype("datetime64[ns, UTC]")
    acc = accounts({"waba_id": "SP", "timezone": "America/Sao_Paulo"},
                   {"waba_id": "IN", "timezone": "Asia/Kolkata", "business_country": "IN"})
    result = compute_units(messages, acc, RATES, default_market_map(), Period.parse("2025-07"), QualityLog())

    units = result.units
    assert units[["unit_id", "billing_month", "pricing_model", "rate"]].values.tolist() == [
        ["in-july:marketing", "2025-07", "PMP", 0.0107],
        ["sp-july:marketing", "2025-07", "PMP", 0.0625],
    ]
    assert units["market"].tolist() == ["India", "Brazil"]
    raw = result.raw_units.set_index("opening_message_id")
    assert raw.loc["in-june", "billing_month"] == "2025-06" and raw.loc["in-june", "era"] == "CBP-2"
    assert raw.loc["in-june", "expires_at"] == pd.Timestamp("2025-06-30T18:30:00Z")
    assert raw.loc["sp-aug", "billing_month"] == "2025-08"
    assert result.counts["units_before_period"] == 1 and result.counts["units_after_period"] == 1
