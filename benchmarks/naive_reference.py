"""A deliberately naive, per-key Python implementation of the whole rule book (a second opinion).

It is written from the rule book (pricing-rules.md, mirrored in docs/) alone, not from the vectorised
engine: dictionaries, sorted lists and one ``for`` loop per message. Its value is being a second,
obviously-correct implementation that the property tests compare with ``reconcile.engine.compute_units``
unit by unit, and a speed baseline for ``benchmarks/engine.py``.

Entry point: :func:`naive_units(messages, accounts, rates, market_map, period)` → the period's units with
``UNIT_COLUMNS`` + ``era``, ``regime_index``, ``local_date``, ``tier_rank``, ordered by ``UNIT_ORDER``.
Data-quality problems are collected as ``(code, message_id)`` pairs in ``naive_units.last_findings``.
"""
from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import phonenumbers

from reconcile.contracts import UNIT_COLUMNS, UNIT_ORDER, Period
from reconcile.rules.eras import REGIMES, era_starts

H = 3_600 * 10**9
DAY = 24 * H
STATUS_RANK = {"read": 4, "delivered": 3, "sent": 2, "failed": 1}
CATEGORY_ERAS = ("CBP-2", "PMP", "PMP-2")
FREE = ("free_tier", "free_customer_service", "free_entry_point")


def _ns(value) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        return None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value)


def _s(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


# --------------------------------------------------------------------------- markets
def _market_of(number: str, market_of_country: dict, cache: dict) -> tuple[str, str]:
    """Section 0 "Market": country from the calling code with phonenumbers; unknown → ("", "Other")."""
    if number in cache:
        return cache[number]
    country = ""
    try:
        parsed = phonenumbers.parse("+" + number.lstrip("+"), None)
        region = phonenumbers.region_code_for_number(parsed)
        if (not region or region == "ZZ") and parsed.country_code == 1:
            region = _nanp_region(str(parsed.national_number)[:3])
        if not region or region in ("ZZ", "001"):
            region = phonenumbers.region_code_for_country_code(parsed.country_code)
        if region and region not in ("ZZ", "001"):
            country = region
    except phonenumbers.NumberParseException:
        pass
    result = (country, market_of_country.get(country, "Other") if country else "Other")
    cache[number] = result
    return result


_NANP: dict[str, str | None] = {}


def _nanp_region(area_code: str) -> str | None:
    """``+1`` is split by area code (section 0): the region whose plan holds a valid number with that area
    code (tried with a few sample subscriber numbers), else None (→ the code's main region)."""
    if area_code not in _NANP:
        found = None
        for exchange in ("234", "456", "555", "212", "987", "300", "700", "863", "620", "441"):
            for line in ("4567", "0100", "1234"):
                n = phonenumbers.parse(f"+1{area_code}{exchange}{line}", None)
                if phonenumbers.is_valid_number(n):
                    found = phonenumbers.region_code_for_number(n)
                    break
            if found:
                break
        _NANP[area_code] = found
    return _NANP[area_code]


# --------------------------------------------------------------------------- dedupe
def _dedupe(messages: pd.DataFrame, findings: list) -> list[dict]:
    """Section 0 "Duplicates": one message per id; best status; earliest delivered/read; conflicts excluded."""
    by_id: dict[str, list[dict]] = defaultdict(list)
    cols = ["message_id", "waba_id", "phone_number_id", "user_wa_id", "direction", "sent_at", "status",
            "delivered_at", "read_at", "message_kind", "template_category", "entry_point"]
    data = {c: messages[c].tolist() for c in cols}
    for i in range(len(messages)):
        row = {c: data[c][i] for c in cols}
        by_id[_s(row["message_id"])].append(row)
    out = []
    fields = ["waba_id", "phone_number_id", "user_wa_id", "direction", "message_kind", "template_category",
              "entry_point"]
    for mid, rows in by_id.items():
        merged = {"message_id": mid}
        conflict = False
        for f in fields:
            values = {_s(r[f]) for r in rows} - {""}
            if len(values) > 1:
                conflict = True
            merged[f] = values.pop() if len(values) == 1 else (sorted(values)[0] if values else "")
        if conflict:
            findings.append(("conflicting_duplicate", mid))
            continue
        best = None
        for r in rows:
            st = _s(r["status"])
            if best is None or STATUS_RANK.get(st, 0) > STATUS_RANK.get(best, 0):
                best = st
        merged["status"] = best
        for f in ("sent_at", "delivered_at", "read_at"):
            values = [v for v in (_ns(r[f]) for r in rows) if v is not None]
            merged[f] = min(values) if values else None
        out.append(merged)
    return out


# --------------------------------------------------------------------------- windows per key
class _Clock:
    """Local dates, regimes and era boundaries of one account timezone."""

    def __init__(self, tz: str):
        self.zone = ZoneInfo(tz or "UTC")
        self.boundaries = [int(datetime(d.year, d.month, d.day, tzinfo=self.zone).timestamp()) * 10**9
                           for d in era_starts()]
        self._regimes: dict[date, int] = {}

    def local(self, ns: int) -> datetime:
        return datetime.fromtimestamp(ns // 10**9, tz=timezone.utc).astimezone(self.zone)

    def regime_index(self, day: date) -> int:
        if day not in self._regimes:
            idx = 0
            for i, r in enumerate(REGIMES):
                if r.starts <= day:
                    idx = i
            self._regimes[day] = idx
        return self._regimes[day]

    def window_end(self, opened: int, length: int) -> int:
        """A window ends after ``length`` or at the next era start (account midnight), whichever first."""
        end = opened + length
        for b in self.boundaries:
            if opened < b < end:
                return b
        return end


def _key_units(events: list[dict], clock: _Clock, findings: list) -> list[dict]:
    """One key's messages (already sorted) → its units, following sections 0-5 literally."""
    units = []
    last_inbound = None          # CSW: [last_inbound, last_inbound + 24h)
    pending_entry = None         # latest entry-point inbound not yet answered by a billable delivery
    fep = None                   # open free entry point window: {"end", "unit" or None}
    conversations = []           # CBP open conversations: dicts with category, end, unit
    for e in events:
        t = e["t"]
        if e["direction"] == "inbound":
            last_inbound = t
            if e["entry_point"]:
                pending_entry = t
            continue
        local = clock.local(t)
        ri = clock.regime_index(local.date())
        regime = REGIMES[ri]
        era = regime.era
        kind, cat = e["message_kind"], e["template_category"]

        def new_unit(category, pricing_type, end=None):
            u = {"waba_id": e["waba_id"], "phone_number_id": e["phone_number_id"], "user_wa_id": e["user_wa_id"],
                 "pricing_model": regime.pricing_model, "category": category, "pricing_type": pricing_type,
                 "opened_at": t, "expires_at": end, "opening_message_id": e["message_id"], "message_count": 1,
                 "era": era, "regime_index": ri, "local_date": local.date(),
                 "billing_month": f"{local.year:04d}-{local.month:02d}"}
            units.append(u)
            return u

        per_message = era in ("PMP", "PMP-2")
        answered_entry = pending_entry is not None and t < pending_entry + DAY
        pending_entry = None                                   # this delivery is the first answer
        # ---- free entry point window (section 0): rides on an open one, or opens one
        if fep is not None and t < fep["end"]:
            if per_message:
                if kind == "template" or era == "PMP-2":
                    new_unit("free_entry_point", "free_entry_point")
            else:
                fep["unit"]["message_count"] += 1
            continue
        fep = None
        if answered_entry and regime.fep_hours > 0:
            end = clock.window_end(t, regime.fep_hours * H)
            fep = {"end": end, "unit": None}
            if per_message:
                if kind == "template" or era == "PMP-2":
                    new_unit("free_entry_point", "free_entry_point")
            else:
                fep["unit"] = new_unit("free_entry_point", "free_entry_point", end)
            continue
        # ---- ordinary delivery
        if kind == "template" and not cat and era in CATEGORY_ERAS:
            findings.append(("template_without_category", e["message_id"]))
            continue
        csw_open = last_inbound is not None and t < last_inbound + DAY
        if kind == "free_form" and not csw_open:
            findings.append(("free_form_outside_csw", e["message_id"]))
        conversations = [c for c in conversations if t < c["end"]]
        if era == "NBP":
            if kind == "template":
                new_unit("notification", "regular")
        elif era == "CBP-1":
            if conversations:
                conversations[0]["unit"]["message_count"] += 1
            else:
                category = "user_initiated" if (csw_open or kind == "free_form") else "business_initiated"
                end = clock.window_end(t, DAY)
                conversations.append({"category": category, "end": end, "unit": new_unit(category, "regular", end)})
        elif era == "CBP-2":
            if kind == "template":
                same = [c for c in conversations if c["category"] == cat]
                if same:
                    same[0]["unit"]["message_count"] += 1
                else:
                    end = clock.window_end(t, DAY)
                    conversations.append({"category": cat, "end": end, "unit": new_unit(cat, "regular", end)})
            else:
                if conversations:
                    first = min(conversations, key=lambda c: (c["unit"]["opened_at"], c["unit"]["opening_message_id"]))
                    first["unit"]["message_count"] += 1
                else:
                    end = clock.window_end(t, DAY)
                    conversations.append({"category": "service", "end": end,
                                          "unit": new_unit("service", "regular", end)})
        elif era == "PMP":
            if kind == "template":
                free = cat == "utility" and csw_open and regime.utility_in_csw_free
                new_unit(cat, "free_customer_service" if free else "regular")
        elif era == "PMP-2":
            if kind == "template":
                free = cat == "utility" and csw_open and regime.utility_in_csw_free
                new_unit(cat, "free_customer_service" if free else "regular")
            else:
                new_unit("service", "regular")
    return units


# --------------------------------------------------------------------------- rates
def _rate_versions(rates: pd.DataFrame) -> dict:
    """(market, category, currency) → {effective date: [(tier_from, tier_to, rate, version)]}."""
    table: dict = defaultdict(lambda: defaultdict(list))
    for r in rates.to_dict("records"):
        eff = pd.Timestamp(r["effective_from"]).date()
        rate = r["rate"]
        if rate is None or pd.isna(rate):
            continue
        tf = None if pd.isna(r["tier_from"]) else int(r["tier_from"])
        tt = None if pd.isna(r["tier_to"]) else int(r["tier_to"])
        version = _s(r.get("version", "")) or eff.isoformat()
        table[(_s(r["market"]).strip(), _s(r["category"]).strip(), _s(r["currency"]).strip())][eff].append(
            (tf, tt, float(rate), version))
    return table


def _version_in_force(table, market, category, currency, day: date):
    versions = table.get((market, category, currency))
    if not versions:
        return None
    best = None
    for eff in versions:
        if eff <= day and (best is None or eff > best):
            best = eff
    return None if best is None else versions[best]


def _price(rows, rank: int):
    """Tier row holding ``rank`` (an untiered row holds every rank) → (rate, tier label, version)."""
    tiered = [r for r in rows if r[0] is not None or r[1] is not None]
    for tf, tt, rate, version in sorted(tiered, key=lambda r: (r[0] or 1)):
        if (tf or 1) <= rank and (tt is None or rank <= tt):
            return rate, f"{tf or 1}:{'' if tt is None else tt}", version
    if tiered:
        return None
    tf, tt, rate, version = rows[0]
    return rate, "", version


# --------------------------------------------------------------------------- whole run
def naive_units(messages: pd.DataFrame, accounts: pd.DataFrame, rates: pd.DataFrame, market_map: pd.DataFrame,
                period, regimes=REGIMES) -> pd.DataFrame:
    period = Period.parse(period) if isinstance(period, str) else period
    findings: list = []
    acc = {_s(r["waba_id"]): r for r in accounts.to_dict("records")}
    market_of_country = dict(zip(market_map["country"].astype(str), market_map["market"].astype(str)))
    clocks = {w: _Clock(_s(a.get("timezone")) or "UTC") for w, a in acc.items()}

    keys: dict[tuple, list] = defaultdict(list)
    for m in _dedupe(messages, findings):
        if m["waba_id"] not in acc:
            findings.append(("unknown_account", m["message_id"]))
            continue
        if m["direction"] == "inbound":
            if m["sent_at"] is None:
                continue
            m["t"] = m["sent_at"]
        else:
            if m["status"] not in ("delivered", "read"):
                continue
            t = m["delivered_at"] if m["delivered_at"] is not None else m["read_at"]
            if t is None:
                findings.append(("missing_delivery_time", m["message_id"]))
                continue
            m["t"] = t
        keys[(m["waba_id"], m["phone_number_id"], m["user_wa_id"])].append(m)

    units = []
    for key in sorted(keys):
        events = sorted(keys[key], key=lambda m: (m["t"], 0 if m["direction"] == "inbound" else 1, m["message_id"]))
        units.extend(_key_units(events, clocks[key[0]], findings))

    # ---------------- account passes (sections 2-5)
    cache: dict = {}
    table = _rate_versions(rates)
    kept = []
    for u in units:
        if not period.contains(u["billing_month"]):
            continue
        a = acc[u["waba_id"]]
        u["country"], u["market"] = _market_of(u["user_wa_id"], market_of_country, cache)
        u["currency"] = _s(a["currency"])
        u["portfolio_id"] = _s(a.get("portfolio_id")) or u["waba_id"]
        business_country = _s(a.get("business_country"))
        if (u["category"] == "authentication" and u["country"] and business_country
                and u["country"] != business_country
                and _version_in_force(table, u["market"], "authentication_international", u["currency"],
                                      u["local_date"]) is not None):
            u["category"] = "authentication_international"
        regime = regimes[u["regime_index"]]
        if regime.service_free and u["category"] == "service" and u["pricing_type"] == "regular":
            u["pricing_type"] = "free_customer_service"
        kept.append(u)

    def delivery_order(u):
        return (u["opened_at"], u["opening_message_id"])

    used: dict = defaultdict(int)
    for u in sorted(kept, key=delivery_order):
        regime = regimes[u["regime_index"]]
        if (u["pricing_type"] == "regular" and regime.free_tier_size > 0
                and u["category"] in regime.free_tier_categories):
            k = (u["waba_id"], u["billing_month"])
            used[k] += 1
            if used[k] <= regime.free_tier_size:
                u["pricing_type"] = "free_tier"
    allowance: dict = defaultdict(int)
    for u in sorted(kept, key=delivery_order):
        size = regimes[u["regime_index"]].free_service_messages_per_phone_per_month
        if size > 0 and u["category"] == "service" and u["pricing_type"] == "regular":
            k = (u["phone_number_id"], u["billing_month"])
            allowance[k] += 1
            if allowance[k] <= size:
                u["pricing_type"] = "free_tier"
    ranks: dict = defaultdict(int)
    for u in sorted(kept, key=delivery_order):
        u["tier_rank"] = 0
        u["tier"], u["rate"], u["amount"] = "", 0.0, 0.0
        if u["pricing_type"] != "regular":
            continue
        scope = u["waba_id"] if u["pricing_model"] == "NBP" else u["portfolio_id"]
        k = (scope, u["market"], u["category"], u["billing_month"])
        ranks[k] += 1
        u["tier_rank"] = ranks[k]
        rows = _version_in_force(table, u["market"], u["category"], u["currency"], u["local_date"])
        priced = _price(rows, u["tier_rank"]) if rows else None
        if priced is None:
            u["rate"] = u["amount"] = float("nan")
            findings.append(("missing_rate", u["opening_message_id"]))
        else:
            u["rate"], u["tier"], _ = priced
            u["amount"] = u["rate"]

    for u in kept:
        u["unit_id"] = f"{u['opening_message_id']}:{u['category']}"
    naive_units.last_findings = findings
    columns = UNIT_COLUMNS + ["era", "regime_index", "local_date", "tier_rank"]
    out = pd.DataFrame(kept, columns=columns)
    out["opened_at"] = pd.to_datetime(out["opened_at"].astype("int64"), utc=True).astype("datetime64[ns, UTC]") \
        if len(out) else pd.Series(dtype="datetime64[ns, UTC]")
    out["expires_at"] = pd.to_datetime(out["expires_at"].astype("Int64").astype("float64"), utc=True,
                                       unit="ns").astype("datetime64[ns, UTC]") if len(out) else \
        pd.Series(dtype="datetime64[ns, UTC]")
    out["local_date"] = pd.to_datetime(out["local_date"]).astype("datetime64[ns]") if len(out) else \
        pd.Series(dtype="datetime64[ns]")
    out["message_count"] = out["message_count"].astype("int64")
    out["rate"] = out["rate"].astype("float64")
    out["amount"] = out["amount"].astype("float64")
    return out.sort_values(UNIT_ORDER, kind="stable").reset_index(drop=True)


naive_units.last_findings = []
