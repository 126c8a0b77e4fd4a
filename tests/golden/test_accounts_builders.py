"""Builders shared by the account-level golden tests (raw units, accounts, rate cards built by hand).

Imported by the other ``test_accounts_*`` files; holds one self-check so pytest has something to run.
"""
from __future__ import annotations

from datetime import date

import pandas as pd

from reconcile.contracts import ACCOUNT_COLUMNS, RATE_COLUMNS
from reconcile.rules.eras import REGIMES, regime_for

UTC = "UTC"


def regime_index_for(day: date) -> int:
    return REGIMES.index(regime_for(day))


def raw_unit(opening_message_id: str, opened_at: str, *, waba_id: str = "W1", phone_number_id: str = "P1",
             user_wa_id: str = "5511999990001", country: str = "BR", market: str = "Brazil",
             category: str = "marketing", pricing_type: str = "regular", pricing_model: str | None = None,
             timezone: str = UTC, expires_at: str | None = None, message_count: int = 1) -> dict:
    """One raw unit as the window kernel emits it; local_date / billing_month / era derived from
    ``opened_at`` in ``timezone`` exactly as the kernel documents it."""
    t = pd.Timestamp(opened_at).tz_convert("UTC") if pd.Timestamp(opened_at).tzinfo else \
        pd.Timestamp(opened_at).tz_localize("UTC")
    local = t.tz_convert(timezone).tz_localize(None)
    day = local.normalize()
    reg = regime_for(day.date())
    return {
        "waba_id": waba_id, "phone_number_id": phone_number_id, "user_wa_id": user_wa_id, "country": country,
        "market": market, "pricing_model": pricing_model or reg.pricing_model, "category": category,
        "pricing_type": pricing_type, "opened_at": t,
        "expires_at": pd.Timestamp(expires_at) if expires_at else pd.NaT,
        "opening_message_id": opening_message_id, "message_count": message_count, "era": reg.era,
        "regime_index": REGIMES.index(reg), "local_date": day, "billing_month": local.strftime("%Y-%m"),
        "timezone": timezone,
    }


def raw_units(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["opened_at"] = pd.to_datetime(frame["opened_at"], utc=True).astype("datetime64[ns, UTC]")
    frame["expires_at"] = pd.to_datetime(frame["expires_at"], utc=True).astype("datetime64[ns, UTC]")
    frame["local_date"] = pd.to_datetime(frame["local_date"]).astype("datetime64[ns]")
    return frame


def accounts(*rows: dict) -> pd.DataFrame:
    """Accounts with defaults: USD, business country BR, UTC, portfolio = the account."""
    out = []
    for r in rows:
        base = {"waba_id": "W1", "name": "Acme", "timezone": UTC, "currency": "USD", "business_country": "BR",
                "portfolio_id": ""}
        base.update(r)
        base["portfolio_id"] = base["portfolio_id"] or base["waba_id"]
        out.append(base)
    return pd.DataFrame(out)[ACCOUNT_COLUMNS]


def rate_card(*rows: tuple) -> pd.DataFrame:
    """Rows ``(effective_from 'YYYY-MM-DD', market, category, rate[, tier_from, tier_to][, currency])``."""
    out = []
    for r in rows:
        eff, market, category, rate = r[:4]
        tier_from = r[4] if len(r) > 4 else None
        tier_to = r[5] if len(r) > 5 else None
        currency = r[6] if len(r) > 6 else "USD"
        out.append({"effective_from": date.fromisoformat(eff), "market": market, "currency": currency,
                    "category": category, "tier_from": tier_from, "tier_to": tier_to, "rate": rate})
    frame = pd.DataFrame(out)[RATE_COLUMNS]
    frame["tier_from"] = frame["tier_from"].astype("Int64")
    frame["tier_to"] = frame["tier_to"].astype("Int64")
    frame["source"] = "rates.csv"
    frame["version"] = frame["effective_from"].astype(str)
    return frame


def test_builder_derives_local_date_and_month_in_the_account_timezone():
    # 2025-08-01T02:30Z is 2025-07-31 23:30 in Sao Paulo (UTC-3): billing month 2025-07, era PMP
    u = raw_unit("m1", "2025-08-01T02:30:00Z", timezone="America/Sao_Paulo")
    assert u["billing_month"] == "2025-07"
    assert u["local_date"] == pd.Timestamp("2025-07-31")
    assert u["era"] == "PMP"
