"""Demo inputs with known discrepancies (``reconcile demo``; also the Airflow stack's sample data).

:func:`write_demo_inputs` writes, under one folder, everything two runs need — period ``2025-07``
(the CBP-2 → PMP era change, June as lookback) and period ``2026-10`` (PMP → PMP-2, September as
lookback):

``reference/accounts.csv``
    four accounts in four time zones and currencies; two of them share a ``portfolio_id``
    (volume tiers are ranked per portfolio, rule book section 4).
``reference/rate_cards/rates_long.csv``
    the long format for BRL, INR and EUR: every (market, category) used, ``utility`` and
    ``authentication`` in tiers ``1:50`` / ``51:`` (the demo crosses a tier), a version effective
    2025-07-01 and one effective 2026-10-01 with ``service`` rates (PMP-2, section 5).
``reference/rate_cards/meta_rate_card_usd.csv``
    Meta's wide layout for USD, dated by its ``# … effective YYYY-MM-DD`` comment line.
``messages/<YYYY-MM>/``
    the platform's message log in three formats: ``platform_log.csv.gz`` (two accounts, with one
    row whose timestamp is unreadable and one conflicting duplicate), ``platform_log.parquet`` (one
    account) and ``webhooks.jsonl`` (raw Meta webhook bodies of one account). The traffic has
    inbound bursts, click-to-WhatsApp entry points (``ad`` and ``page_cta``) answered inside and
    outside 24h, failed and never-delivered messages, retries and out-of-order status events
    (also across month files), numbers of several markets including a Canadian and a Caribbean
    ``+1`` number and numbers without a known calling code, and hand-made scenarios across both
    era changes (a conversation opened on 2025-06-30 late evening account time, a utility
    template in the customer service window on each side of 2026-10-01 00:00).
``invoices/<YYYY-MM>/``
    the invoice of each period, built from the engine's *own* result on these inputs (the files
    are read back with the production readers and priced by :func:`reconcile.engine.compute_units`)
    and then altered by the discrepancies of :data:`DEMO_DISCREPANCIES`; one account's 2025-07
    invoice comes as a Graph API ``pricing_analytics`` export instead of CSV lines.

Deterministic for a seed: the same seed writes byte-identical files. Everything is generated with
vectorised numpy/pandas; the only per-row Python is the JSON encoding of the (small) webhook file.
"""
from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from .contracts import INVOICE_COLUMNS, MESSAGE_COLUMNS, VARIANCE_GROUP, Period

# --------------------------------------------------------------------------- the demo world
PERIODS = ("2025-07", "2026-10")
LOOKBACK_MONTHS = 1

W_BR, W_IN, W_DE, W_US = "104000000000001", "104000000000002", "104000000000003", "104000000000004"

ACCOUNTS = pd.DataFrame([
    # waba_id, name, timezone, currency, business_country, portfolio_id
    (W_BR, "Loja Verde", "America/Sao_Paulo", "BRL", "BR", ""),
    (W_IN, "Chai Point", "Asia/Kolkata", "INR", "IN", ""),
    (W_DE, "Berliner Haus", "Europe/Berlin", "EUR", "DE", "portfolio-atlantic"),
    (W_US, "Northwind Support", "UTC", "USD", "US", "portfolio-atlantic"),
], columns=["waba_id", "name", "timezone", "currency", "business_country", "portfolio_id"])

#: business phone numbers of each account (phone_number_id, display number)
PHONES = {
    W_BR: [("105000000000011", "551130030011"), ("105000000000012", "551130030012")],
    W_IN: [("105000000000021", "918030030021")],
    W_DE: [("105000000000031", "493030030031")],
    W_US: [("105000000000041", "12125550041")],
}

#: user number families: (prefix, random digits after it, market)
NUMBER_FAMILIES = {
    "BR": ("55119", 8, "Brazil"),
    "IN": ("919", 9, "India"),
    "DE": ("49151", 8, "Germany"),
    "US": ("1212", 7, "North America"),
    "CA": ("1416", 7, "North America"),          # Toronto: +1 but Canada
    "JM": ("1876", 7, "Rest of Latin America"),  # Jamaica: a Caribbean +1 number
    "BO": ("5917", 7, "Rest of Latin America"),  # Bolivia
    "ID": ("62812", 8, "Indonesia"),
    "XX": ("999", 9, "Other"),                   # no assigned calling code → Other + warning
}
#: per account: (family, share of its users)
USER_MIX = {
    W_BR: [("BR", 0.70), ("IN", 0.06), ("BO", 0.08), ("JM", 0.04), ("US", 0.06), ("CA", 0.06)],
    W_IN: [("IN", 0.86), ("ID", 0.10), ("XX", 0.04)],
    W_DE: [("DE", 0.75), ("US", 0.10), ("CA", 0.05), ("XX", 0.10)],
    W_US: [("US", 0.50), ("CA", 0.10), ("IN", 0.20), ("ID", 0.20)],
}
#: an unparseable user number (too short to hold a national number) used by one account
UNPARSEABLE_USER = "1"
#: business-initiated template categories of each account and their weights
BI_CATEGORIES = {
    W_BR: ({"marketing": 0.55, "utility": 0.30, "authentication": 0.15}, 150),
    W_IN: ({"marketing": 0.20, "utility": 0.55, "authentication": 0.25}, 190),
    W_DE: ({"marketing": 0.40, "utility": 0.40, "authentication": 0.20}, 110),
    W_US: ({"marketing": 0.30, "utility": 0.30, "authentication": 0.40}, 110),
}
USERS_PER_ACCOUNT = 60
INBOUND_PER_MONTH = 90

#: message-log format of each account: the CSV.gz, the Parquet or Meta webhook bodies
LOG_FORMAT = {W_BR: "webhooks", W_IN: "csv", W_DE: "csv", W_US: "parquet"}

# --------------------------------------------------------------------------- rates
MARKETS = ["Brazil", "India", "Germany", "North America", "Rest of Latin America", "Indonesia", "Other"]
#: USD base rates per market: marketing, utility, authentication, authentication_international, service
BASE_RATES = {
    "Brazil": (0.0625, 0.0068, 0.0068, None, 0.0050),
    "India": (0.0118, 0.0014, 0.0014, 0.0280, 0.0010),
    "Germany": (0.1365, 0.0550, 0.0550, None, 0.0400),
    "North America": (0.0250, 0.0034, 0.0034, None, 0.0030),
    "Rest of Latin America": (0.0740, 0.0113, 0.0113, None, 0.0090),
    "Indonesia": (0.0411, 0.0250, 0.0250, 0.1360, 0.0200),
    "Other": (0.0604, 0.0077, 0.0077, None, 0.0060),
}
RATE_CATEGORIES_ORDER = ("marketing", "utility", "authentication", "authentication_international", "service")
LONG_CURRENCIES = {"BRL": 5.5, "INR": 85.0, "EUR": 0.92}
WIDE_CURRENCY = "USD"
TIERED_CATEGORIES = ("utility", "authentication")
#: tiers of the long card: ranks 1..50 pay the full rate, 51 and above 80 % of it
TIERS = ((1, 50, 1.0), (51, None, 0.8))
RATE_VERSIONS = ("2025-07-01", "2026-10-01")
#: the 2026-10-01 version raises marketing by 5 % and introduces service rates
RATE_CHANGE_2026 = {"marketing": 1.05}

# --------------------------------------------------------------------------- discrepancies
#: every discrepancy injected into the demo invoices, with the finding the run must report.
#: ``status`` is the variance status of the group; ``None`` = not in the variance, reported in the
#: data-quality output with ``quality_code``.
DEMO_DISCREPANCIES: list[dict] = [
    {"kind": "over_billing", "waba_id": W_BR, "billing_month": "2025-07", "market": "Brazil",
     "pricing_model": "PMP", "category": "marketing", "pricing_type": "regular", "status": "over_billed",
     "quantity_diff": 3, "quality_code": None,
     "detail": "the pricing_analytics export counts 3 more Brazil marketing messages than were delivered"},
    {"kind": "under_billing", "waba_id": W_IN, "billing_month": "2025-07", "market": "India",
     "pricing_model": "PMP", "category": "utility", "pricing_type": "regular", "status": "under_billed",
     "quantity_diff": -2, "quality_code": None,
     "detail": "the invoice leaves out 2 paid utility messages"},
    {"kind": "no_traffic", "waba_id": W_DE, "billing_month": "2025-07", "market": "Indonesia",
     "pricing_model": "PMP", "category": "marketing", "pricing_type": "regular", "status": "not_expected",
     "quantity_diff": 5, "quality_code": None,
     "detail": "a line for a market the account never messaged"},
    {"kind": "missing_line", "waba_id": W_US, "billing_month": "2025-07", "market": "North America",
     "pricing_model": "PMP", "category": "authentication", "pricing_type": "regular", "status": "not_invoiced",
     "quantity_diff": None, "quality_code": None,
     "detail": "the invoice has no line for North America authentication"},
    {"kind": "other_currency", "waba_id": W_DE, "billing_month": "2025-07", "market": "Germany",
     "pricing_model": "PMP", "category": "marketing", "pricing_type": "regular", "status": None,
     "quantity_diff": None, "quality_code": "invoice_currency_mismatch",
     "detail": "an extra line in USD for a EUR account: left out of the variance, listed in data quality"},
    {"kind": "rate_mismatch", "waba_id": W_IN, "billing_month": "2026-10", "market": "India",
     "pricing_model": "PMP", "category": "service", "pricing_type": "regular", "status": "under_billed",
     "quantity_diff": 0, "quality_code": None,
     "detail": "service messages billed at a lower rate (same quantity, amount 1.50 less)"},
    {"kind": "over_billing", "waba_id": W_DE, "billing_month": "2026-10", "market": "Germany",
     "pricing_model": "PMP", "category": "utility", "pricing_type": "regular", "status": "over_billed",
     "quantity_diff": 1, "quality_code": None,
     "detail": "one utility message too many"},
]
#: the account whose 2025-07 invoice is a ``pricing_analytics`` export instead of CSV lines
ANALYTICS_ACCOUNT, ANALYTICS_PERIOD = W_BR, "2025-07"
#: data-quality codes the demo's inputs are built to raise (besides those of the discrepancies)
DEMO_QUALITY_CODES = ("bad_timestamp", "conflicting_duplicate", "unknown_calling_code", "unparseable_number",
                      "invoice_currency_mismatch")


# --------------------------------------------------------------------------- result type
@dataclass
class DemoPeriodInputs:
    """The :class:`reconcile.pipeline.RunConfig` arguments of one demo period."""

    period: str
    messages: list[str]
    accounts: str
    rate_cards: list[str]
    invoices: list[str]

    def run_config(self, **overrides):
        from .pipeline import RunConfig

        return RunConfig(messages=list(self.messages), accounts=self.accounts, rate_cards=list(self.rate_cards),
                         invoices=list(self.invoices), period=Period.parse(self.period), **overrides)


@dataclass
class DemoInputs:
    directory: str
    periods: dict[str, DemoPeriodInputs] = field(default_factory=dict)
    discrepancies: list[dict] = field(default_factory=lambda: [dict(d) for d in DEMO_DISCREPANCIES])

    def __getitem__(self, period: str) -> DemoPeriodInputs:
        return self.periods[period]


# --------------------------------------------------------------------------- entry point
def write_demo_inputs(directory: str, seed: int = 7) -> DemoInputs:
    """Write the demo's inputs under ``directory`` (see the module docstring); return their paths."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    reference = os.path.join(directory, "reference")
    cards = os.path.join(reference, "rate_cards")
    os.makedirs(cards, exist_ok=True)

    accounts_path = os.path.join(reference, "accounts.csv")
    ACCOUNTS.to_csv(accounts_path, index=False, lineterminator="\n")
    long_path = os.path.join(cards, "rates_long.csv")
    long_rate_card().to_csv(long_path, index=False, lineterminator="\n")
    wide_path = os.path.join(cards, "meta_rate_card_usd.csv")
    with open(wide_path, "w", encoding="utf-8", newline="") as f:
        f.write(wide_rate_card_text())

    users = _user_pool(rng)
    out = DemoInputs(directory)
    for period in PERIODS:
        months = _window_months(period)
        messages = pd.concat([_traffic(rng, waba, users[waba], months) for waba in ACCOUNTS["waba_id"]]
                             + [_scenarios(period)], ignore_index=True)
        message_paths = _write_message_logs(directory, messages, months, rng)
        out.periods[period] = DemoPeriodInputs(period, message_paths, accounts_path, [long_path, wide_path], [])

    for period in PERIODS:
        out.periods[period].invoices = _write_invoices(directory, out.periods[period])
    return out


# --------------------------------------------------------------------------- reference data
def long_rate_card() -> pd.DataFrame:
    """The long-format rate card for :data:`LONG_CURRENCIES` (both versions)."""
    rows = []
    for version in RATE_VERSIONS:
        for currency, fx in LONG_CURRENCIES.items():
            for market in MARKETS:
                for category, usd in zip(RATE_CATEGORIES_ORDER, BASE_RATES[market]):
                    if usd is None or (category == "service" and version < "2026-10-01"):
                        continue
                    base = usd * fx * (RATE_CHANGE_2026.get(category, 1.0) if version >= "2026-10-01" else 1.0)
                    tiers = TIERS if category in TIERED_CATEGORIES else ((None, None, 1.0),)
                    for tier_from, tier_to, factor in tiers:
                        rows.append((version, market, currency, category, tier_from, tier_to,
                                     round(base * factor, 6)))
    card = pd.DataFrame(rows, columns=["effective_from", "market", "currency", "category", "tier_from",
                                       "tier_to", "rate"])
    for c in ("tier_from", "tier_to"):
        card[c] = card[c].astype("Int64")
    return card


def wide_rate_card_text() -> str:
    """Meta's wide rate-card layout for :data:`WIDE_CURRENCY`, effective 2025-07-01 (comment line)."""
    lines = [
        "# WhatsApp Business Platform rate card (demo)",
        f"# Rates in {WIDE_CURRENCY} per message; effective {RATE_VERSIONS[0]} 00:00 in the WABA timezone",
        'Market,Currency,Marketing,Utility,Authentication,"Authentication-\nInternational",Service',
    ]
    for market in MARKETS:
        cells = ["n/a" if r is None else f"{r:.4f}" for r in BASE_RATES[market]]
        lines.append(",".join([market, WIDE_CURRENCY, *cells]))
    return "\n".join(lines) + "\n"


def _window_months(period: str) -> list[str]:
    first = pd.Period(period, freq="M") - LOOKBACK_MONTHS
    return [str(first + i) for i in range(LOOKBACK_MONTHS + 1)]


def _user_pool(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``USERS_PER_ACCOUNT`` distinct user numbers per account, drawn from its market mix."""
    pools = {}
    for waba, mix in USER_MIX.items():
        counts = np.maximum(1, np.round(np.array([s for _, s in mix]) * USERS_PER_ACCOUNT).astype(int))
        parts = []
        for (family, _), n in zip(mix, counts):
            prefix, digits, _market = NUMBER_FAMILIES[family]
            tail = rng.integers(0, 10 ** digits, size=n, dtype=np.int64)
            parts.append(pd.Series(tail).astype(str).str.zfill(digits).radd(prefix).to_numpy())
        users = np.unique(np.concatenate(parts))
        if waba == W_IN:
            users = np.append(users, UNPARSEABLE_USER)
        pools[waba] = users
    return pools


# --------------------------------------------------------------------------- traffic
def _local_bounds(tz: str, months: list[str]) -> tuple[int, int]:
    """UTC epoch seconds of 00:00 account time on the first day of ``months[0]`` and after ``months[-1]``."""
    zone = ZoneInfo(tz)
    first = pd.Period(months[0], freq="M")
    after = pd.Period(months[-1], freq="M") + 1
    start = datetime(first.year, first.month, 1, tzinfo=zone)
    end = datetime(after.year, after.month, 1, tzinfo=zone)
    return int(start.timestamp()), int(end.timestamp())


def _ids(prefix: str, n: int) -> np.ndarray:
    return pd.Series(np.arange(n)).astype(str).str.zfill(6).radd(prefix).to_numpy()


def _traffic(rng: np.random.Generator, waba: str, users: np.ndarray, months: list[str]) -> pd.DataFrame:
    """Random traffic of one account over ``months`` (message-log rows, one row per message, final
    status; duplicates are added when the logs are written)."""
    tz = ACCOUNTS.set_index("waba_id").at[waba, "timezone"]
    start, end = _local_bounds(tz, months)
    phones = np.array([p for p, _ in PHONES[waba]], dtype=object)
    tag = f"wamid.demo{waba[-1]}{months[-1].replace('-', '')}"

    # inbound: user messages, some from click-to-WhatsApp ads / page buttons, some in bursts
    n_in = INBOUND_PER_MONTH * len(months)
    in_t = np.sort(rng.integers(start, end - 3 * 86_400, size=n_in))
    in_user = rng.choice(users, size=n_in)
    in_phone = rng.choice(phones, size=n_in)
    in_entry = rng.choice(np.array(["", "ad", "page_cta"], dtype=object), size=n_in, p=[0.82, 0.12, 0.06])
    burst = rng.random(n_in) < 0.15
    b_idx = np.repeat(np.flatnonzero(burst), rng.integers(1, 4, size=int(burst.sum())))
    inbound = pd.DataFrame({
        "user_wa_id": np.concatenate([in_user, in_user[b_idx]]),
        "phone_number_id": np.concatenate([in_phone, in_phone[b_idx]]),
        "sent_at": np.concatenate([in_t, in_t[b_idx] + rng.integers(5, 300, size=len(b_idx))]),
        "entry_point": np.concatenate([in_entry, np.full(len(b_idx), "", dtype=object)]),
    })
    inbound["direction"], inbound["message_kind"], inbound["template_category"] = "inbound", "", ""

    # replies to the (first) inbound messages: free-form or utility inside 24h, marketing after it
    reply = rng.choice(np.array(["free_form", "utility", "late_marketing", ""], dtype=object), size=n_in,
                       p=[0.45, 0.20, 0.10, 0.25])
    delay = np.where(reply == "late_marketing", rng.integers(25 * 3600, 47 * 3600, size=n_in),
                     np.where(reply == "utility", rng.integers(60, 23 * 3600, size=n_in),
                              rng.integers(60, 20 * 3600, size=n_in)))
    has = reply != ""
    replies = pd.DataFrame({
        "user_wa_id": in_user[has], "phone_number_id": in_phone[has], "sent_at": in_t[has] + delay[has],
        "message_kind": np.where(reply[has] == "free_form", "free_form", "template"),
        "template_category": np.where(reply[has] == "free_form", "",
                                      np.where(reply[has] == "utility", "utility", "marketing")),
    })

    # business-initiated templates
    weights, per_month = BI_CATEGORIES[waba]
    n_bi = per_month * len(months)
    cats = np.array(list(weights), dtype=object)
    business = pd.DataFrame({
        "user_wa_id": rng.choice(users, size=n_bi), "phone_number_id": rng.choice(phones, size=n_bi),
        "sent_at": rng.integers(start, end - 3600, size=n_bi), "message_kind": "template",
        "template_category": rng.choice(cats, size=n_bi, p=np.array(list(weights.values()))),
    })
    outbound = pd.concat([replies, business], ignore_index=True)
    outbound["direction"], outbound["entry_point"] = "outbound", ""

    # outcomes: failed, sent and never delivered, delivered, read (some read without a delivered time)
    n_out = len(outbound)
    status = rng.choice(np.array(["failed", "sent", "delivered", "read"], dtype=object), size=n_out,
                        p=[0.08, 0.04, 0.38, 0.50])
    delivered = outbound["sent_at"].to_numpy() + rng.integers(1, 90, size=n_out)
    read = delivered + rng.integers(30, 6 * 3600, size=n_out)
    no_delivered_time = (status == "read") & (rng.random(n_out) < 0.03)
    outbound["status"] = status
    outbound["delivered_at"] = np.where(np.isin(status, ["delivered", "read"]) & ~no_delivered_time, delivered, -1)
    outbound["read_at"] = np.where(status == "read", read, -1)

    inbound["status"], inbound["delivered_at"], inbound["read_at"] = "received", -1, -1
    frame = pd.concat([inbound, outbound], ignore_index=True)
    frame = frame.sort_values(["sent_at", "direction"], kind="stable").reset_index(drop=True)
    frame["message_id"] = _ids(tag, len(frame))
    frame["waba_id"] = waba
    return frame[_FRAME_COLUMNS]


_FRAME_COLUMNS = ["message_id", "waba_id", "phone_number_id", "user_wa_id", "direction", "sent_at", "status",
                  "delivered_at", "read_at", "message_kind", "template_category", "entry_point"]


def _at(text: str, tz: str) -> int:
    """Epoch seconds of a local wall-clock time ``YYYY-MM-DD HH:MM`` in ``tz``."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo(tz)).timestamp())


def _scenarios(period: str) -> pd.DataFrame:
    """Hand-made message sequences around each era change (small, explicit)."""
    rows = []

    def msg(mid, waba, user, direction, local, *, kind="", category="", entry="", status=None, tz=None):
        tz = tz or ACCOUNTS.set_index("waba_id").at[waba, "timezone"]
        t = _at(local, tz)
        if direction == "inbound":
            rows.append((mid, waba, PHONES[waba][0][0], user, "inbound", t, "received", -1, -1, "", "", entry))
        else:
            status = status or "delivered"
            rows.append((mid, waba, PHONES[waba][0][0], user, "outbound", t, status,
                         t + 5 if status in ("delivered", "read") else -1, t + 600 if status == "read" else -1,
                         kind, category, ""))

    if period == "2025-07":
        br = "5511900000001"
        # a CBP-2 marketing conversation opened on June 30 late evening (Sao Paulo): billed in June;
        # at 00:00 on July 1 the PMP era starts, the window ends and the next template is its own unit
        msg("wamid.scn.br.0001", W_BR, br, "outbound", "2025-06-30 22:40", kind="template", category="marketing")
        msg("wamid.scn.br.0002", W_BR, br, "outbound", "2025-07-01 00:20", kind="template", category="marketing")
        # a click-to-WhatsApp ad answered within 24h: a 72h free entry point window
        msg("wamid.scn.br.0003", W_BR, br, "inbound", "2025-07-01 09:00", entry="ad")
        msg("wamid.scn.br.0004", W_BR, br, "outbound", "2025-07-01 09:05", kind="template", category="utility")
        msg("wamid.scn.br.0005", W_BR, br, "outbound", "2025-07-02 10:00", kind="template", category="marketing")
        msg("wamid.scn.br.0006", W_BR, br, "outbound", "2025-07-04 12:00", kind="template", category="marketing")
        # a page call-to-action answered after 30h: no free entry point
        br2 = "5511900000002"
        msg("wamid.scn.br.0007", W_BR, br2, "inbound", "2025-07-10 08:00", entry="page_cta")
        msg("wamid.scn.br.0008", W_BR, br2, "outbound", "2025-07-11 14:00", kind="template", category="marketing")
        # India: a conversation opened just before midnight IST on June 30
        inn = "919800000001"
        msg("wamid.scn.in.0001", W_IN, inn, "outbound", "2025-06-30 23:50", kind="template", category="utility")
        msg("wamid.scn.in.0002", W_IN, inn, "outbound", "2025-07-01 00:10", kind="template", category="utility")
        # Berlin: an authentication template to an Indian user (authentication-international rate)
        msg("wamid.scn.de.0001", W_DE, "919800000002", "outbound", "2025-07-03 10:00", kind="template",
            category="authentication")
    else:
        inn = "919800000003"
        # utility in the customer service window: free in PMP (September), charged in PMP-2 (October)
        msg("wamid.scn.in.1001", W_IN, inn, "inbound", "2026-09-30 22:00")
        msg("wamid.scn.in.1002", W_IN, inn, "outbound", "2026-09-30 23:30", kind="template", category="utility")
        msg("wamid.scn.in.1003", W_IN, inn, "outbound", "2026-10-01 00:30", kind="template", category="utility")
        # a free-form reply: a service unit from PMP-2 on
        msg("wamid.scn.in.1004", W_IN, inn, "outbound", "2026-10-01 01:00", kind="free_form")
        # a click-to-WhatsApp ad in PMP-2: free-form and templates inside the window are free
        us = "12125550100"
        msg("wamid.scn.us.1001", W_US, us, "inbound", "2026-10-05 15:00", entry="ad")
        msg("wamid.scn.us.1002", W_US, us, "outbound", "2026-10-05 15:01", kind="free_form")
        msg("wamid.scn.us.1003", W_US, us, "outbound", "2026-10-06 15:00", kind="template", category="marketing")
    return pd.DataFrame(rows, columns=_FRAME_COLUMNS)


# --------------------------------------------------------------------------- message logs
def _iso(seconds: pd.Series) -> pd.Series:
    """Epoch seconds (``-1`` = empty) → ISO 8601 UTC with ``Z`` (``""`` for empty)."""
    t = pd.to_datetime(seconds.where(seconds >= 0), unit="s", utc=True)
    return t.dt.strftime("%Y-%m-%dT%H:%M:%SZ").fillna("")


def _with_duplicates(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Add the rows a real log has besides one row per message: retries (an extra ``sent`` row after
    the final one) and late, out-of-order ``delivered`` events of messages already read."""
    out = frame["direction"].to_numpy() == "outbound"
    retry = out & (rng.random(len(frame)) < 0.05)
    retries = frame[retry].copy()
    retries["status"], retries["delivered_at"], retries["read_at"] = "sent", -1, -1
    late = (frame["status"].to_numpy() == "read") & (frame["delivered_at"].to_numpy() >= 0) \
        & (rng.random(len(frame)) < 0.04)
    events = frame[late].copy()
    events["status"], events["read_at"] = "delivered", -1
    events["delivered_at"] = events["delivered_at"] + 45      # a later copy: the earliest must win
    return pd.concat([frame, retries, events], ignore_index=True)


def _file_month(frame: pd.DataFrame, months: list[str]) -> np.ndarray:
    """Month folder of each row: the UTC month of its event time, clipped to the window."""
    event = frame[["sent_at", "delivered_at", "read_at"]].max(axis=1)
    month = pd.to_datetime(event, unit="s", utc=True).dt.strftime("%Y-%m").to_numpy(dtype=object)
    month = np.where(month < months[0], months[0], month)
    return np.where(month > months[-1], months[-1], month)


def _write_message_logs(directory: str, messages: pd.DataFrame, months: list[str],
                        rng: np.random.Generator) -> list[str]:
    """Write the window's message logs (one folder per month) and return the folders."""
    logs = _with_duplicates(messages, rng)
    logs["month"] = _file_month(logs, months)
    # a read receipt of a message delivered just before the period arrives in the period's file
    fmt = logs["waba_id"].map(LOG_FORMAT).to_numpy()
    paths = []
    for month in months:
        folder = os.path.join(directory, "messages", month)
        os.makedirs(folder, exist_ok=True)
        paths.append(folder)
        part = logs[logs["month"] == month]
        csv_rows = _as_log_table(part[fmt[logs["month"] == month] == "csv"])
        if month == months[-1]:
            csv_rows = _add_bad_rows(csv_rows, month)
        with gzip.GzipFile(os.path.join(folder, "platform_log.csv.gz"), "wb", mtime=0) as gz:
            gz.write(csv_rows.to_csv(index=False, lineterminator="\n").encode("utf-8"))
        _write_parquet_log(part[fmt[logs["month"] == month] == "parquet"],
                           os.path.join(folder, "platform_log.parquet"))
        with open(os.path.join(folder, "webhooks.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            f.writelines(webhook_lines(part[fmt[logs["month"] == month] == "webhooks"]))
    return paths


def _as_log_table(part: pd.DataFrame) -> pd.DataFrame:
    table = part[MESSAGE_COLUMNS].copy()
    for c in ("sent_at", "delivered_at", "read_at"):
        table[c] = _iso(part[c].astype("int64"))
    return table.reset_index(drop=True)


def _add_bad_rows(table: pd.DataFrame, month: str) -> pd.DataFrame:
    """One unreadable timestamp and one conflicting duplicate (same id, another user number)."""
    bad = table.iloc[[0]].copy()
    bad["message_id"] = f"wamid.demo.badtime.{month}"
    bad["sent_at"] = f"{month}-15 25:61"
    outbound = table[(table["direction"] == "outbound") & (table["status"] == "delivered")
                     & (table["user_wa_id"].str.len() > 8)]
    conflict = outbound.iloc[[len(outbound) // 2]].copy()
    conflict["user_wa_id"] = conflict["user_wa_id"].str.slice(0, -4) + "0000"
    return pd.concat([table, bad, conflict], ignore_index=True)


def _write_parquet_log(part: pd.DataFrame, path: str) -> None:
    """The Parquet log keeps typed instants (``timestamp[us, UTC]``, null when empty)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = part[MESSAGE_COLUMNS].reset_index(drop=True)
    for c in ("sent_at", "delivered_at", "read_at"):
        seconds = frame[c].astype("int64")
        frame[c] = pd.to_datetime(seconds.where(seconds >= 0), unit="s", utc=True)
    schema = pa.schema([(c, pa.timestamp("us", tz="UTC") if c in ("sent_at", "delivered_at", "read_at")
                         else pa.string()) for c in MESSAGE_COLUMNS])
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


def webhook_lines(part: pd.DataFrame) -> list[str]:
    """Meta webhook bodies (one JSON line each) for message-log rows: an inbound row becomes a
    ``messages[]`` body, an outbound row one ``statuses[]`` body per event it records (``sent``,
    then ``delivered`` / ``read`` / ``failed``). Retry rows repeat a ``sent`` event."""
    lines = []
    display = {p: d for phones in PHONES.values() for p, d in phones}
    records = part.sort_values(["sent_at", "message_id"], kind="stable").to_dict("records")
    for r in records:
        metadata = {"display_phone_number": display[r["phone_number_id"]], "phone_number_id": r["phone_number_id"]}
        if r["direction"] == "inbound":
            message = {"from": r["user_wa_id"], "id": r["message_id"], "timestamp": str(r["sent_at"]),
                       "type": "text", "text": {"body": "Olá"}}
            if r["entry_point"]:
                message["referral"] = {"source_type": "ad" if r["entry_point"] == "ad" else "post",
                                       "source_id": "120208000000000000", "source_url": "https://fb.me/demo"}
            value = {"messaging_product": "whatsapp", "metadata": metadata,
                     "contacts": [{"profile": {"name": "Cliente"}, "wa_id": r["user_wa_id"]}], "messages": [message]}
            lines.append(_body(r["waba_id"], value))
            continue
        category = r["template_category"] if r["message_kind"] == "template" else "service"
        model = "PMP" if r["sent_at"] >= _at("2025-07-01 00:00", "America/Sao_Paulo") else "CBP"
        pricing = {"billable": True, "pricing_model": model, "category": category, "type": "regular"}
        events = [("sent", r["sent_at"])]
        if r["status"] == "failed":
            events.append(("failed", r["sent_at"] + 2))
        if r["delivered_at"] >= 0:
            events.append(("delivered", r["delivered_at"]))
        if r["read_at"] >= 0:
            events.append(("read", r["read_at"]))
        if r["status"] == "sent":
            events = events[:1]
        for name, ts in events:
            status = {"id": r["message_id"], "status": name, "timestamp": str(int(ts)),
                      "recipient_id": r["user_wa_id"]}
            if name != "failed":
                status["pricing"] = pricing
            else:
                status["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
            value = {"messaging_product": "whatsapp", "metadata": metadata, "statuses": [status]}
            lines.append(_body(r["waba_id"], value))
    return lines


def _body(waba: str, value: dict) -> str:
    body = {"object": "whatsapp_business_account",
            "entry": [{"id": waba, "changes": [{"field": "messages", "value": value}]}]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- invoices
def expected_lines(inputs: DemoPeriodInputs) -> pd.DataFrame:
    """The engine's own result on the demo inputs, grouped as invoice lines (one per variance group)."""
    from .engine import compute_units
    from .io import tables
    from .quality import QualityLog
    from .rules.markets import load_market_map

    quality = QualityLog()
    accounts = tables.read_accounts(inputs.accounts, quality)
    rates, _ = tables.read_rate_cards(inputs.rate_cards, quality)
    messages, _ = tables.read_messages(inputs.messages, quality, accounts=accounts)
    result = compute_units(messages, accounts, rates, load_market_map(None), Period.parse(inputs.period), quality)
    units = result.units
    lines = (units.groupby(VARIANCE_GROUP + ["currency"], sort=True)
             .agg(quantity=("unit_id", "size"), amount=("amount", "sum"), country=("country", "first"))
             .reset_index())
    return lines


def _write_invoices(directory: str, inputs: DemoPeriodInputs) -> list[str]:
    period = inputs.period
    lines = expected_lines(inputs)
    lines["phone_number_id"] = ""
    lines["invoice_id"] = "INV-" + lines["waba_id"] + "-" + lines["billing_month"].str.replace("-", "")
    currency_of = dict(zip(ACCOUNTS["waba_id"], ACCOUNTS["currency"]))
    for d in DEMO_DISCREPANCIES:
        if d["billing_month"] != period:
            continue
        key = np.ones(len(lines), dtype=bool)
        for c in VARIANCE_GROUP:
            key &= (lines[c] == d[c]).to_numpy()
        if d["kind"] == "no_traffic":
            if key.any():
                raise RuntimeError(f"demo: {d['market']} has traffic for {d['waba_id']}; pick another market")
            lines = pd.concat([lines, pd.DataFrame([{
                **{c: d[c] for c in VARIANCE_GROUP}, "currency": currency_of[d["waba_id"]],
                "quantity": d["quantity_diff"], "amount": 0.4321 * d["quantity_diff"], "country": "ID",
                "phone_number_id": "", "invoice_id": f"INV-{d['waba_id']}-{period.replace('-', '')}"}])],
                ignore_index=True)
            continue
        if key.sum() != 1:
            raise RuntimeError(f"demo: no expected group {[d[c] for c in VARIANCE_GROUP]} to alter")
        i = int(np.flatnonzero(key)[0])
        quantity, amount = int(lines.at[i, "quantity"]), float(lines.at[i, "amount"])
        unit_rate = amount / quantity
        if d["kind"] in ("over_billing", "under_billing"):
            lines.at[i, "quantity"] = quantity + d["quantity_diff"]
            lines.at[i, "amount"] = amount + d["quantity_diff"] * unit_rate
        elif d["kind"] == "rate_mismatch":
            lines.at[i, "amount"] = amount - 1.5
        elif d["kind"] == "missing_line":
            lines = lines.drop(index=i).reset_index(drop=True)
        elif d["kind"] == "other_currency":
            extra = lines.iloc[[i]].copy()
            extra["currency"], extra["quantity"], extra["amount"] = "USD", 4, 0.5
            lines = pd.concat([lines, extra], ignore_index=True)

    folder = os.path.join(directory, "invoices", period)
    os.makedirs(folder, exist_ok=True)
    paths = [folder]
    analytics = (lines["waba_id"] == ANALYTICS_ACCOUNT) & (period == ANALYTICS_PERIOD)
    if analytics.any():
        with open(os.path.join(folder, f"pricing_analytics_{ANALYTICS_ACCOUNT}.json"), "w", encoding="utf-8") as f:
            json.dump(pricing_analytics_export(lines[analytics], period), f, indent=2)
            f.write("\n")
    csv_lines = lines[~analytics].sort_values(VARIANCE_GROUP + ["currency"], kind="stable")
    csv_lines = csv_lines.assign(quantity=csv_lines["quantity"].astype(int),
                                 amount=csv_lines["amount"].map(lambda a: f"{a:.4f}"))
    csv_lines[INVOICE_COLUMNS].to_csv(os.path.join(folder, "invoice.csv"), index=False, lineterminator="\n")
    return paths


def pricing_analytics_export(lines: pd.DataFrame, period: str) -> dict:
    """A Graph API ``pricing_analytics`` response of one account: one month-long data point per line."""
    month = pd.Period(period, freq="M")
    start = int(datetime(month.year, month.month, 1, tzinfo=timezone.utc).timestamp())
    after = month + 1
    end = int(datetime(after.year, after.month, 1, tzinfo=timezone.utc).timestamp())
    display = dict(PHONES[lines["waba_id"].iat[0]])
    phone = next(iter(display.values()))
    points = []
    for r in lines.sort_values(["market", "category", "pricing_type"]).to_dict("records"):
        category = "MARKETING" if r["category"] == "free_entry_point" else r["category"].upper()
        points.append({"start": start, "end": end, "phone_number": phone, "country": r["country"],
                       "pricing_type": r["pricing_type"].upper(), "pricing_category": category,
                       "volume": int(r["quantity"]), "cost": round(float(r["amount"]), 4)})
    return {"pricing_analytics": {"data": [{"data_points": points}]}, "id": lines["waba_id"].iat[0]}


def main(argv: list[str] | None = None) -> int:
    """``python -m reconcile.demo DIR [SEED]``: write the demo inputs only (the docker-compose stack
    uploads them to MinIO); ``reconcile demo`` also runs the reconciliation on them."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) > 2:
        print("usage: python -m reconcile.demo DIR [SEED]", file=sys.stderr)
        return 2
    inputs = write_demo_inputs(args[0], int(args[1]) if len(args) > 1 else 7)
    for period, p in inputs.periods.items():
        print(f"{period}: {len(p.messages)} message folders, invoices {', '.join(p.invoices)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
