"""Graph API analytics exports → invoice lines (contracts.md, "invoice", analytics adapters).

``conversation_analytics`` (pricing_model ``CBP``) and ``pricing_analytics`` (``PMP``) responses,
one response (one account) per file, detected by their top-level key:

* response ``id`` → ``waba_id``; currency = the account's; ``phone_number`` → extra column
  ``display_phone_number``;
* ``billing_month`` = month of the midpoint of the data point's ``[start, end)`` (epoch seconds)
  in the account's timezone (exports are bucketed by UTC day or month);
* ``country`` (ISO code) → ``market`` through the market map (``market_reported`` keeps the code);
* quantity = ``conversation`` or ``volume``; amount = ``cost``;
* category = ``conversation_category`` / ``pricing_category`` lower-cased with the rule book's
  spellings (section 7); in the CBP-1 era (by the midpoint's local date, ``eras.era_for``) an
  ``UNKNOWN`` or absent category becomes ``user_initiated`` / ``business_initiated`` from
  ``conversation_direction``;
* pricing_type = ``conversation_type`` / ``pricing_type`` lower-cased (``FREE_ENTRY`` =
  ``FREE_ENTRY_POINT``; ``UNKNOWN`` → ``regular``); a free entry point data point gets category
  and pricing_type ``free_entry_point``;
* data points of one group (account, phone, month, market, model, category, type) are summed;
  ``invoice_id`` = ``analytics:<waba_id>:<billing_month>``; ``row`` = the group's first data
  point (1-based, in file order).

An account not in the run → error ``invoice_unknown_account`` (its lines are left out); an
unreadable data point (no start/end, quantity or cost not numbers) → error
``bad_analytics_point``; an unknown category or type → ``unknown_category`` /
``unknown_pricing_type`` (left out).
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from ..contracts import CATEGORIES, PRICING_TYPES
from ..quality import QualityLog
from ..rules.eras import era_for

ANALYTICS_KEYS = ("conversation_analytics", "pricing_analytics")
_MODEL = {"conversation_analytics": "CBP", "pricing_analytics": "PMP"}
_TYPE_SPELLINGS = {"free_entry": "free_entry_point", "unknown": "regular", "": "regular"}
_CATEGORY_SPELLINGS = {"referral_conversion": "free_entry_point", "marketing_lite": "marketing",
                       "authentication-international": "authentication_international"}


def _lower(v) -> str:
    return str(v or "").strip().lower().replace("-", "_").replace(" ", "_")


def read_analytics(doc: dict, source: str, quality: QualityLog, *, accounts: pd.DataFrame | None,
                   market_map: pd.DataFrame) -> pd.DataFrame:
    """One analytics response → invoice lines (columns of ``tables.INVOICE_OUTPUT_COLUMNS``)."""
    from ..rules.markets import country_to_market
    from .tables import INVOICE_OUTPUT_COLUMNS, _empty_invoice

    key = next(k for k in ANALYTICS_KEYS if k in doc)
    model = _MODEL[key]
    waba = str(doc.get("id") or "").strip()
    if accounts is not None and waba not in set(accounts["waba_id"].astype(str)):
        quality.add("error", "invoice_unknown_account", source=source, column="id",
                    detail=f"analytics export of account {waba!r}, which is not in this run: left out")
        return _empty_invoice()
    tz, currency = "UTC", ""
    if accounts is not None:
        acc = accounts[accounts["waba_id"].astype(str) == waba].iloc[0]
        tz, currency = str(acc["timezone"] or "UTC"), str(acc["currency"])
    zone = ZoneInfo(tz)

    points = []
    for block in (doc.get(key) or {}).get("data") or ():
        points.extend(block.get("data_points") or ())
    records = []
    for i, p in enumerate(points, start=1):
        try:
            start, end = int(p["start"]), int(p["end"])
            qty = float(p.get("conversation", p.get("volume", 0)) or 0)
            cost = float(p.get("cost", 0) or 0)
        except (KeyError, TypeError, ValueError) as exc:
            quality.add("error", "bad_analytics_point", source=source, row=i,
                        detail=f"data point without readable start/end/quantity/cost ({exc}): left out")
            continue
        mid = datetime.fromtimestamp((start + end) / 2, tz=timezone.utc).astimezone(zone)
        category = _lower(p.get("conversation_category", p.get("pricing_category")))
        category = _CATEGORY_SPELLINGS.get(category, category)
        ptype = _lower(p.get("conversation_type", p.get("pricing_type")))
        ptype = _TYPE_SPELLINGS.get(ptype, ptype)
        if category in ("", "unknown") and era_for(mid.date()) == "CBP-1":
            direction = _lower(p.get("conversation_direction"))
            if direction in ("user_initiated", "business_initiated"):
                category = direction
        if ptype == "free_entry_point" or category == "free_entry_point":
            category = ptype = "free_entry_point"
        records.append({
            "row": i, "waba_id": waba, "billing_month": mid.strftime("%Y-%m"),
            "display_phone_number": str(p.get("phone_number") or ""),
            "market_reported": str(p.get("country") or "").strip(),
            "category": category, "pricing_type": ptype, "quantity": qty, "amount": cost,
        })
    if not records:
        return _empty_invoice()
    f = pd.DataFrame.from_records(records)
    f["source"] = source
    f["message_id"] = ""
    bad = np.zeros(len(f), dtype=bool)
    for col, allowed, code in (("category", CATEGORIES, "unknown_category"),
                               ("pricing_type", PRICING_TYPES, "unknown_pricing_type")):
        mask = ~f[col].isin(allowed).to_numpy() & ~bad
        if mask.any():
            sub = f[mask]
            quality.add_many("error", code, source=source, row=sub["row"].to_numpy(), column=col,
                             detail=(f"{col} " + sub[col].map(repr) + " is not known: data point left out")
                             .to_numpy(dtype=object))
            bad |= mask
    f = f[~bad]
    if f.empty:
        return _empty_invoice()
    f = f.assign(market=country_to_market(f["market_reported"].str.upper().to_numpy(), market_map))
    group = ["waba_id", "display_phone_number", "billing_month", "market", "market_reported", "category",
             "pricing_type"]
    lines = (f.groupby(group, sort=True, dropna=False)
             .agg(quantity=("quantity", "sum"), amount=("amount", "sum"), row=("row", "min"))
             .reset_index())
    lines["quantity"] = np.rint(lines["quantity"].to_numpy()).astype("int64")
    lines["amount"] = lines["amount"].astype("float64")
    lines["invoice_id"] = "analytics:" + lines["waba_id"] + ":" + lines["billing_month"]
    lines["phone_number_id"] = ""
    lines["pricing_model"] = model
    lines["currency"] = currency
    lines["source"] = source
    lines["row"] = lines["row"].astype("int64")
    lines = lines.sort_values("row", kind="stable").reset_index(drop=True)
    for c in INVOICE_OUTPUT_COLUMNS:
        if c not in ("quantity", "amount", "row"):
            lines[c] = lines[c].astype("str")
    return lines[INVOICE_OUTPUT_COLUMNS]
