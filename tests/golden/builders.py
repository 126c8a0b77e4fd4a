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


class WindowRun:
    """Outputs of dedupe + window_units on hand-written rows (see :func:`run_windows`)."""

    def __init__(self, units, coverage, counts, dedupe_counts, findings):
        self.units, self.coverage, self.counts = units, coverage, counts
        self.dedupe_counts, self.findings = dedupe_counts, findings

    def unit(self, opening_message_id: str) -> dict:
        """The raw unit opened by a message, as a dict (fails if there is not exactly one)."""
        sel = self.units[self.units["opening_message_id"] == opening_message_id]
        assert len(sel) == 1, f"{len(sel)} units opened by {opening_message_id}"
        return sel.iloc[0].to_dict()

    def summary(self) -> list[tuple]:
        """``(opening_message_id, category, pricing_type, message_count)`` per unit, by opened_at."""
        u = self.units.sort_values(["opened_at", "opening_message_id"])
        return list(zip(u["opening_message_id"], u["category"], u["pricing_type"], u["message_count"].astype(int)))

    def outcome(self) -> dict:
        """message_id → (outcome, unit_opening_message_id) for every billable outbound message."""
        return {m: (o, op) for m, o, op in zip(self.coverage["message_id"], self.coverage["outcome"],
                                              self.coverage["unit_opening_message_id"])}

    def codes(self) -> list[tuple]:
        """Sorted ``(severity, code, message_id)`` of every finding."""
        f = self.findings
        return sorted(zip(f["severity"], f["code"], f["message_id"]))


def run_windows(rows: list[dict], accounts=None, market_map=None) -> WindowRun:
    from reconcile.engine import dedupe_messages, window_units
    from reconcile.quality import QualityLog

    quality = QualityLog()
    deduped, dedupe_counts = dedupe_messages(messages_frame(rows), quality)
    units, coverage, counts = window_units(deduped, accounts if accounts is not None else accounts_frame(),
                                           market_map if market_map is not None else market_map_frame(), quality)
    return WindowRun(units, coverage, counts, dedupe_counts, quality.frame())
