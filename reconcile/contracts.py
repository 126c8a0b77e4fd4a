"""Column names, dtypes and vocabularies of every table (one place).

The in-memory shapes below are what every module exchanges; the file shapes are
fixed by the project's data contracts (docs/contracts.md mirrors them).

In-memory conventions (all frames are pandas DataFrames):

* string columns hold Python/pandas strings; an *empty* value is ``""``, never NaN,
  so that comparisons need no NA handling;
* instants are ``datetime64[ns, UTC]`` with ``NaT`` for empty;
* money (``rate``, ``amount``) is ``float64`` with NaN meaning "no rate found"
  (never silently 0); rounding happens only when writing (see ``reconcile.io.outputs``);
* frames read from files carry provenance columns ``source`` (file or object) and
  ``row`` (1-based data row in that source) so that data-quality findings can name them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

# --------------------------------------------------------------------------- inputs
MESSAGE_COLUMNS = [
    "message_id", "waba_id", "phone_number_id", "user_wa_id", "direction", "sent_at", "status",
    "delivered_at", "read_at", "message_kind", "template_category", "entry_point",
]
MESSAGE_TIMESTAMPS = ["sent_at", "delivered_at", "read_at"]
PROVENANCE_COLUMNS = ["source", "row"]
#: evidence kept from Meta webhooks (``statuses[].pricing``); empty for plain logs
WEBHOOK_EVIDENCE_COLUMNS = ["pricing_billable", "pricing_model_reported", "pricing_category_reported",
                            "pricing_type_reported", "conversation_id_reported"]

DIRECTIONS = ("inbound", "outbound")
MESSAGE_STATUSES = ("sent", "delivered", "read", "failed", "received")
#: best status wins when duplicates are merged (rule book section 0)
STATUS_RANK = {"read": 4, "delivered": 3, "sent": 2, "failed": 1, "received": 0, "deleted": 0, "expired": 0}
MESSAGE_KINDS = ("template", "free_form")
TEMPLATE_CATEGORIES = ("marketing", "utility", "authentication")
ENTRY_POINTS = ("ad", "page_cta")

ACCOUNT_COLUMNS = ["waba_id", "name", "timezone", "currency", "business_country", "portfolio_id"]

RATE_COLUMNS = ["effective_from", "market", "currency", "category", "tier_from", "tier_to", "rate"]
RATE_CATEGORIES = ("marketing", "utility", "authentication", "authentication_international", "service",
                   "user_initiated", "business_initiated", "notification")

MARKET_MAP_COLUMNS = ["country", "market"]
OTHER_MARKET = "Other"

INVOICE_COLUMNS = ["invoice_id", "waba_id", "phone_number_id", "billing_month", "market", "pricing_model",
                   "category", "pricing_type", "quantity", "amount", "currency"]

# --------------------------------------------------------------------------- outputs
PRICING_MODELS = ("NBP", "CBP", "PMP")
CATEGORIES = RATE_CATEGORIES + ("free_entry_point",)
PRICING_TYPES = ("regular", "free_tier", "free_customer_service", "free_entry_point")
FREE_PRICING_TYPES = ("free_tier", "free_customer_service", "free_entry_point")

UNIT_COLUMNS = [
    "unit_id", "waba_id", "phone_number_id", "user_wa_id", "country", "market", "pricing_model", "category",
    "pricing_type", "opened_at", "expires_at", "opening_message_id", "message_count", "billing_month", "tier",
    "rate", "amount", "currency",
]
UNIT_ORDER = ["waba_id", "billing_month", "opened_at", "unit_id"]

VARIANCE_GROUP = ["waba_id", "billing_month", "market", "pricing_model", "category", "pricing_type"]
VARIANCE_COLUMNS = VARIANCE_GROUP + [
    "expected_quantity", "invoiced_quantity", "quantity_diff", "expected_amount", "invoiced_amount",
    "amount_diff", "currency", "status",
]
VARIANCE_STATUSES = ("match", "over_billed", "under_billed", "not_invoiced", "not_expected", "unpriced")
#: when several statuses could apply, the first of this order wins
VARIANCE_STATUS_PRECEDENCE = ("not_invoiced", "not_expected", "unpriced")

DQ_COLUMNS = ["severity", "code", "source", "row", "column", "message_id", "detail"]
DQ_SEVERITIES = ("error", "warning")

OUTPUT_FILES = ("billable_units.csv", "billable_units.parquet", "variance.csv", "data_quality.csv",
                "report.xlsx", "run.json")
SUCCESS_MANIFEST = "_SUCCESS"
TIMING_KEYS = ("read", "engine", "compare", "publish", "total")

MONEY_DECIMALS = 4
DEFAULT_TOLERANCE = 0.01
DEFAULT_EXCEL_MAX_UNITS = 50_000

# ISO 4217 codes accepted in inputs (active codes; a typo such as "USS" is rejected).
CURRENCIES = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF
CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG
HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA
MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD
RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX
USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL
""".split())


# --------------------------------------------------------------------------- period
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class PeriodError(ValueError):
    """A period string that is not ``YYYY-MM`` or ``YYYY-MM..YYYY-MM``."""


@dataclass(frozen=True)
class Period:
    """An inclusive range of billing months, e.g. ``2025-07`` or ``2025-06..2025-07``."""

    first: str
    last: str

    @classmethod
    def parse(cls, text: str) -> "Period":
        parts = text.strip().split("..")
        if len(parts) not in (1, 2) or not all(_MONTH.match(p) for p in parts):
            raise PeriodError(f"period {text!r} is not YYYY-MM or YYYY-MM..YYYY-MM")
        first, last = parts[0], parts[-1]
        if last < first:
            raise PeriodError(f"period {text!r} ends before it starts")
        return cls(first, last)

    @property
    def months(self) -> list[str]:
        y, m = int(self.first[:4]), int(self.first[5:])
        out = []
        while True:
            s = f"{y:04d}-{m:02d}"
            out.append(s)
            if s == self.last:
                return out
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)

    @property
    def start_date(self) -> date:
        """First day of the period (a local date in each account's timezone)."""
        return date(int(self.first[:4]), int(self.first[5:]), 1)

    @property
    def end_date(self) -> date:
        """First day *after* the period (exclusive)."""
        y, m = int(self.last[:4]), int(self.last[5:])
        return date(y + 1, 1, 1) if m == 12 else date(y, m + 1, 1)

    def contains(self, month: str) -> bool:
        return self.first <= month <= self.last

    def __str__(self) -> str:
        return self.first if self.first == self.last else f"{self.first}..{self.last}"

    @property
    def slug(self) -> str:
        """Folder-name form used for the default output folder (``out/<period>``)."""
        return self.first if self.first == self.last else f"{self.first}_{self.last}"


def previous_month(day: date) -> str:
    """``YYYY-MM`` of the calendar month before ``day`` (the period a monthly run reconciles)."""
    return f"{day.year - 1:04d}-12" if day.month == 1 else f"{day.year:04d}-{day.month - 1:02d}"


def months_with_lookback(period: Period, lookback_months: int) -> list[str]:
    """The period's months preceded by ``lookback_months`` months of history (rule book section 0:
    pipelines pass the whole previous calendar month as lookback)."""
    if lookback_months < 0:
        raise PeriodError(f"lookback_months must be >= 0, got {lookback_months}")
    y, m = int(period.first[:4]), int(period.first[5:]) - lookback_months
    while m < 1:
        y, m = y - 1, m + 12
    return Period(f"{y:04d}-{m:02d}", period.last).months
