"""The era registry: WhatsApp pricing rules as dated data (rule book sections 0-6).

Each :class:`Regime` is a dated segment in which one set of switches holds. A regime
belongs to one of the five named eras (NBP, CBP-1, CBP-2, PMP, PMP-2); switches
inside an era (the 72h free entry point from 2023-02-01, free customer service from
2024-11-01) are new regimes of the same era. Dates are local dates in the account's
timezone: a regime starts at 00:00 account time.

Windows (conversations, free entry point windows) end at the start of a new *era*
(not at a switch inside an era): see :func:`era_starts`.

Adding a future Meta change = appending a regime here (and a rate card file).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

#: windowing strategies implemented in ``reconcile.engine.strategies``
STRATEGIES = ("NBP", "CBP-1", "CBP-2", "PMP", "PMP-2")


@dataclass(frozen=True)
class Regime:
    era: str                       # one of the five named eras
    starts: date                   # first local date (inclusive)
    strategy: str                  # windowing strategy (one of STRATEGIES)
    pricing_model: str             # NBP / CBP / PMP as reported in units
    fep_hours: int                 # free entry point window length, 0 = no free entry points
    free_tier_size: int            # free units per account and billing month (0 = none)
    free_tier_categories: tuple[str, ...] = ()   # unit categories the free tier covers
    service_free: bool = False     # every service conversation is free_customer_service
    utility_in_csw_free: bool = False            # PMP: utility template inside the CSW is free
    free_service_messages_per_phone_per_month: int = 0   # PMP-2 allowance (unconfirmed; default 0)
    note: str = ""
    ends: date | None = field(default=None, compare=False)  # filled by the registry


_RAW = [
    Regime("NBP", date(1970, 1, 1), "NBP", "NBP", fep_hours=0, free_tier_size=0,
           note="business-initiated template notifications charged per message"),
    Regime("CBP-1", date(2022, 2, 1), "CBP-1", "CBP", fep_hours=24, free_tier_size=1000,
           free_tier_categories=("user_initiated", "business_initiated"),
           note="24h conversations, user- vs business-initiated; FEP window 24h"),
    Regime("CBP-1", date(2023, 2, 1), "CBP-1", "CBP", fep_hours=72, free_tier_size=1000,
           free_tier_categories=("user_initiated", "business_initiated"),
           note="free entry point window grows to 72h"),
    Regime("CBP-2", date(2023, 6, 1), "CBP-2", "CBP", fep_hours=72, free_tier_size=1000,
           free_tier_categories=("service",),
           note="conversation categories; first 1,000 service conversations free"),
    Regime("CBP-2", date(2024, 11, 1), "CBP-2", "CBP", fep_hours=72, free_tier_size=0, service_free=True,
           note="every service conversation free; no free tier"),
    Regime("PMP", date(2025, 7, 1), "PMP", "PMP", fep_hours=72, free_tier_size=0, utility_in_csw_free=True,
           note="per delivered template; utility inside the CSW free; volume tiers"),
    Regime("PMP-2", date(2026, 10, 1), "PMP-2", "PMP", fep_hours=72, free_tier_size=0,
           utility_in_csw_free=False, free_service_messages_per_phone_per_month=0,
           note="free-form service messages and utility inside the CSW charged"),
]


def _chain(raw: list[Regime]) -> tuple[Regime, ...]:
    out = []
    for i, r in enumerate(raw):
        nxt = raw[i + 1].starts if i + 1 < len(raw) else None
        out.append(Regime(**{**r.__dict__, "ends": nxt}))
    return tuple(out)


REGIMES: tuple[Regime, ...] = _chain(_RAW)
ERAS: tuple[str, ...] = tuple(dict.fromkeys(r.era for r in REGIMES))


def regime_for(day: date) -> Regime:
    """The regime in force on a local date."""
    found = REGIMES[0]
    for r in REGIMES:
        if r.starts <= day:
            found = r
    return found


def era_for(day: date) -> str:
    return regime_for(day).era


def era_starts() -> list[date]:
    """Local dates at whose 00:00 every open window ends (the first day of each named era)."""
    seen, out = set(), []
    for r in REGIMES:
        if r.era not in seen:
            seen.add(r.era)
            out.append(r.starts)
    return out[1:]


def regimes_between(first: date, end_exclusive: date) -> list[Regime]:
    """Regimes overlapping the local-date range ``[first, end_exclusive)``."""
    return [r for r in REGIMES if r.starts < end_exclusive and (r.ends is None or r.ends > first)]


# --------------------------------------------------------------------------- arrays for the kernel
_EPOCH = date(1970, 1, 1)


def regime_start_days():
    """First local day of each regime as days since 1970-01-01 (``int64``), for ``np.searchsorted``."""
    import numpy as np

    return np.array([(r.starts - _EPOCH).days for r in REGIMES], dtype=np.int64)


def era_start_days():
    """First local day of each named era (in :data:`ERAS` order) as days since 1970-01-01."""
    import numpy as np

    firsts: dict[str, date] = {}
    for r in REGIMES:
        firsts.setdefault(r.era, r.starts)
    return np.array([(firsts[e] - _EPOCH).days for e in ERAS], dtype=np.int64)


def regime_era_index():
    """Index into :data:`ERAS` of each regime (``int64``)."""
    import numpy as np

    return np.array([ERAS.index(r.era) for r in REGIMES], dtype=np.int64)
