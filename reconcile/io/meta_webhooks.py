"""Meta webhook bodies (JSON Lines, one body a line) → canonical message rows (contracts.md,
"messages", webhook mapping; rule book section 7).

* ``entry[].id`` → ``waba_id``; ``value.metadata.phone_number_id`` → ``phone_number_id``;
* ``value.messages[]`` → one inbound row: ``from`` → ``user_wa_id``, ``timestamp`` →
  ``sent_at``, status ``received``; ``referral.source_type`` ``ad`` → entry point ``ad``, any
  other referral → ``page_cta``;
* ``value.statuses[]`` → one outbound row *per status event* of message ``id`` to
  ``recipient_id``: a ``sent`` event fills ``sent_at``, ``delivered`` → ``delivered_at``,
  ``read`` → ``read_at``; ``failed`` gives status failed and carries no kind/category;
* category from ``pricing.category``, else ``conversation.origin.type``: ``service`` → kind
  ``free_form``, empty category; ``marketing`` / ``utility`` / ``authentication`` (also
  ``marketing_lite`` → marketing, ``authentication-international`` /
  ``authentication_international`` → authentication: the engine recomputes international
  pricing) → kind ``template`` with that category; ``user_initiated`` / ``business_initiated`` /
  ``referral_conversion`` → kind ``template`` with an empty category;
* ``pricing`` is kept as evidence (``WEBHOOK_EVIDENCE_COLUMNS``), never trusted.

Decision: events are **not** merged here. Each status event is its own row (``row`` = the line
number) and the engine's dedupe merges the rows of one id exactly as the duplicates rule says
(best status, earliest delivered/read instant, first non-empty field), so a webhook archive and a
platform log of the same message merge the same way. A line that is not JSON is an error
``bad_json`` naming the line; lines without message events (e.g. template updates) are skipped.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..contracts import MESSAGE_COLUMNS, MESSAGE_TIMESTAMPS, WEBHOOK_EVIDENCE_COLUMNS
from ..quality import QualityLog

try:  # pragma: no cover - optional speed-up
    import orjson as _orjson

    _loads = _orjson.loads
    _JSON_ERRORS: tuple = (ValueError, _orjson.JSONDecodeError)
except ImportError:  # pragma: no cover
    _loads = json.loads
    _JSON_ERRORS = (ValueError,)

_FIELDS = MESSAGE_COLUMNS + WEBHOOK_EVIDENCE_COLUMNS
_TEMPLATE_CATEGORY = {"marketing": "marketing", "marketing_lite": "marketing", "utility": "utility",
                      "authentication": "authentication", "authentication_international": "authentication",
                      "user_initiated": "", "business_initiated": "", "referral_conversion": "",
                      "free_entry_point": ""}


def webhook_category(raw: str) -> tuple[str, str]:
    """(message_kind, template_category) of a webhook pricing/origin category."""
    key = str(raw or "").strip().lower().replace("-", "_").replace(" ", "_")
    if not key:
        return "", ""
    if key == "service":
        return "free_form", ""
    if key in _TEMPLATE_CATEGORY:
        return "template", _TEMPLATE_CATEGORY[key]
    return "template", key   # unknown spelling: kept, reported by the reader's validation


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v).strip()


def json_objects(lines, source: str, quality: QualityLog):
    """Yield ``(line number, object)`` for every JSON-object line of a JSON Lines file; blank lines
    are skipped, anything else is a ``bad_json`` error finding naming the line."""
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            body = _loads(line)
        except _JSON_ERRORS as exc:
            quality.add("error", "bad_json", source=source, row=line_no, detail=f"line is not JSON: {exc}")
            continue
        if not isinstance(body, dict):
            quality.add("error", "bad_json", source=source, row=line_no, detail="line is not a JSON object")
            continue
        yield line_no, body


def read_webhook_lines(lines_or_bytes, source: str, quality: QualityLog) -> pd.DataFrame:
    """Parse webhook bodies into rows of ``MESSAGE_COLUMNS`` + evidence + ``source``, ``row``.

    ``lines_or_bytes``: bytes/str of the whole file or an iterable of lines. Timestamps come back
    as ``datetime64[ns, UTC]``.
    """
    if isinstance(lines_or_bytes, (bytes, bytearray)):
        lines = bytes(lines_or_bytes).decode("utf-8-sig").splitlines()
    elif isinstance(lines_or_bytes, str):
        lines = lines_or_bytes.lstrip("\ufeff").splitlines()
    else:
        lines = list(lines_or_bytes)
    cols: dict[str, list] = {c: [] for c in _FIELDS}
    rows: list[int] = []

    def emit(line_no, **values):
        for c in _FIELDS:
            cols[c].append(values.get(c, ""))
        rows.append(line_no)

    for line_no, body in json_objects(lines, source, quality):
        for entry in body.get("entry") or ():
            waba = _text(entry.get("id"))
            for change in entry.get("changes") or ():
                value = change.get("value") or {}
                phone = _text((value.get("metadata") or {}).get("phone_number_id"))
                for m in value.get("messages") or ():
                    referral = m.get("referral")
                    entry_point = ""
                    if referral:
                        entry_point = "ad" if _text(referral.get("source_type")).lower() == "ad" else "page_cta"
                    emit(line_no, message_id=_text(m.get("id")), waba_id=waba, phone_number_id=phone,
                         user_wa_id=_text(m.get("from")), direction="inbound", sent_at=_text(m.get("timestamp")),
                         status="received", entry_point=entry_point)
                for st in value.get("statuses") or ():
                    status = _text(st.get("status")).lower()
                    ts = _text(st.get("timestamp"))
                    pricing = st.get("pricing") or {}
                    conversation = st.get("conversation") or {}
                    raw_cat = pricing.get("category") or (conversation.get("origin") or {}).get("type") or ""
                    kind, category = ("", "") if status == "failed" else webhook_category(raw_cat)
                    emit(line_no, message_id=_text(st.get("id")), waba_id=waba, phone_number_id=phone,
                         user_wa_id=_text(st.get("recipient_id")), direction="outbound", status=status,
                         sent_at=ts if status == "sent" else "",
                         delivered_at=ts if status == "delivered" else "",
                         read_at=ts if status == "read" else "",
                         message_kind=kind, template_category=category,
                         pricing_billable=_text(pricing.get("billable")),
                         pricing_model_reported=_text(pricing.get("pricing_model")),
                         pricing_category_reported=_text(pricing.get("category")),
                         pricing_type_reported=_text(pricing.get("type")),
                         conversation_id_reported=_text(conversation.get("id")))

    frame = pd.DataFrame({c: pd.Series(cols[c], dtype="str") for c in _FIELDS})
    frame["source"] = pd.Series([source] * len(rows), dtype="str")
    frame["row"] = np.asarray(rows, dtype=np.int64)
    from .tables import parse_instants

    for c in MESSAGE_TIMESTAMPS:
        parsed, bad, _ = parse_instants(frame[c])
        if bad.any():
            sub = frame[bad]
            quality.add_many("error", "bad_timestamp", source=sub["source"].to_numpy(dtype=object),
                             row=sub["row"].to_numpy(), column=c, message_id=sub["message_id"].to_numpy(dtype=object),
                             detail="unreadable webhook timestamp: event left out")
            frame = frame.assign(**{c: parsed})[~bad].reset_index(drop=True)
        else:
            frame[c] = parsed
    return frame
