"""Tiny builders for readable hand-written engine scenarios.

    rows = [inbound("in1", "2025-07-01T10:00:00Z"),
            msg("m1", "2025-07-01T11:00:00Z", category="utility")]
    messages = messages_frame(rows)

``msg`` builds an outbound message (delivered at ``at`` unless told otherwise), ``inbound`` a
user message received at ``at``. Defaults: account ``W1``, phone ``P1``, user ``5511999990001``
(Brazil). ``accounts_frame`` builds the accounts table (``W1`` in UTC unless told otherwise).
``messages_frame`` adds provenance ``source = "messages.csv"`` and ``row`` = 1-based position.
"""
from __future__ import annotations

import pandas as pd

from reconcile.contracts import ACCOUNT_COLUMNS, MESSAGE_COLUMNS

USER = "5511999990001"
PHONE = "P1"
WABA = "W1"
SOURCE = "messages.csv"


def _ts(value):
    if value is None or value == "":
        return pd.NaT
    return pd.Timestamp(value).tz_convert("UTC") if pd.Timestamp(value).tzinfo else pd.Timestamp(value, tz="UTC")


def msg(message_id: str, at=None, *, kind: str = "template", category: str = "marketing", status: str = "delivered",
        user: str = USER, phone: str = PHONE, waba: str = WABA, delivered_at="same", read_at=None,
        sent_at=None) -> dict:
    """An outbound message; ``delivered_at`` defaults to ``at`` (pass ``None`` for none)."""
    if kind == "free_form":
        category = ""
    delivered = at if delivered_at == "same" else delivered_at
    if status in ("sent", "failed") and delivered_at == "same":
        delivered = None
    return {"message_id": message_id, "waba_id": waba, "phone_number_id": phone, "user_wa_id": user,
            "direction": "outbound", "sent_at": _ts(sent_at if sent_at is not None else at), "status": status,
            "delivered_at": _ts(delivered), "read_at": _ts(read_at), "message_kind": kind,
            "template_category": category, "entry_point": ""}


def inbound(message_id: str, at, *, entry_point: str = "", user: str = USER, phone: str = PHONE,
            waba: str = WABA) -> dict:
    """A user message received at ``at`` (``entry_point`` ``ad`` / ``page_cta`` for entry points)."""
    return {"message_id": message_id, "waba_id": waba, "phone_number_id": phone, "user_wa_id": user,
            "direction": "inbound", "sent_at": _ts(at), "status": "received", "delivered_at": pd.NaT,
            "read_at": pd.NaT, "message_kind": "", "template_category": "", "entry_point": entry_point}


def messages_frame(rows: list[dict], source: str = SOURCE) -> pd.DataFrame:
    """Canonical messages frame (contract dtypes, provenance columns)."""
    frame = pd.DataFrame(rows, columns=MESSAGE_COLUMNS)
    for col in ("sent_at", "delivered_at", "read_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[ns, UTC]")
    for col in MESSAGE_COLUMNS:
        if col not in ("sent_at", "delivered_at", "read_at"):
            frame[col] = frame[col].fillna("").astype("str")
    frame["source"] = pd.Series([source] * len(frame), dtype="str")
    frame["row"] = pd.array(range(1, len(frame) + 1), dtype="Int64")
    return frame


def accounts_frame(*accounts: tuple) -> pd.DataFrame:
    """``accounts_frame(("W1", "UTC"), ("W2", "America/Sao_Paulo", "BRL", "BR"))``; default one UTC account."""
    if not accounts:
        accounts = (("W1", "UTC"),)
    rows = []
    for a in accounts:
        waba, tz = a[0], a[1]
        currency = a[2] if len(a) > 2 else "USD"
        country = a[3] if len(a) > 3 else "US"
        portfolio = a[4] if len(a) > 4 else ""
        rows.append({"waba_id": waba, "name": f"Account {waba}", "timezone": tz, "currency": currency,
                     "business_country": country, "portfolio_id": portfolio})
    frame = pd.DataFrame(rows, columns=ACCOUNT_COLUMNS)
    return frame.astype("str")


def market_map_frame() -> pd.DataFrame:
    """A small country → market map for tests."""
    pairs = [("BR", "Brazil"), ("IN", "India"), ("US", "North America"), ("CA", "North America"),
             ("DE", "Germany"), ("GB", "United Kingdom"), ("MX", "Mexico"), ("AR", "Argentina")]
    return pd.DataFrame(pairs, columns=["country", "market"]).astype("str")
