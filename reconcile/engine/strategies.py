"""Windowing strategies as switch tables for the kernel (rule book sections 1-6).

Each regime of :mod:`reconcile.rules.eras` names a strategy (NBP, CBP-1, CBP-2, PMP,
PMP-2) and carries switches (free entry point length, utility inside the CSW free, …).
The compiled kernel in :mod:`reconcile.engine.windows` never looks at names or dates: it
reads these per-regime arrays. A new era is a new registry entry; a new *strategy* is a
new code here plus its branch in the kernel.

Codes shared with the kernel:

* strategies: ``NBP`` 0, ``CBP-1`` 1, ``CBP-2`` 2, ``PMP`` 3, ``PMP-2`` 4;
* unit categories: index into :data:`UNIT_CATEGORIES`;
* pricing types: index into :data:`RAW_PRICING_TYPES`;
* outcomes per billable message: index into :data:`OUTCOMES`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rules import eras

STRATEGY_CODES = {"NBP": 0, "CBP-1": 1, "CBP-2": 2, "PMP": 3, "PMP-2": 4}
NBP, CBP1, CBP2, PMP, PMP2 = 0, 1, 2, 3, 4

#: the window's category written into raw units (authentication-international is decided later)
UNIT_CATEGORIES = ("notification", "user_initiated", "business_initiated", "marketing", "utility",
                   "authentication", "service", "free_entry_point")
CAT_NOTIFICATION, CAT_USER_INITIATED, CAT_BUSINESS_INITIATED = 0, 1, 2
CAT_MARKETING, CAT_UTILITY, CAT_AUTHENTICATION, CAT_SERVICE, CAT_FEP = 3, 4, 5, 6, 7
#: template_category → unit category code (empty → -1)
TEMPLATE_CATEGORY_CODES = {"marketing": CAT_MARKETING, "utility": CAT_UTILITY,
                           "authentication": CAT_AUTHENTICATION}

RAW_PRICING_TYPES = ("regular", "free_entry_point", "free_customer_service")
PT_REGULAR, PT_FEP, PT_FREE_CS = 0, 1, 2

OUTCOMES = ("unit_opener", "rode_on_unit", "free_not_unit", "excluded")
OUT_OPENER, OUT_RODE, OUT_FREE, OUT_EXCLUDED = 0, 1, 2, 3

HOUR_NS = 3_600_000_000_000
CSW_NS = 24 * HOUR_NS          # customer service window and conversation length (sections 0, 2, 3)
ENTRY_POINT_REPLY_NS = 24 * HOUR_NS   # the business must answer an entry point within 24h (section 0)
CONVERSATION_NS = 24 * HOUR_NS


@dataclass(frozen=True)
class RegimeSwitches:
    """Per-regime arrays (index = position in ``eras.REGIMES``) read by the kernel."""

    strategy: np.ndarray            # int64 strategy code
    era: np.ndarray                 # int64 index into eras.ERAS
    fep_ns: np.ndarray              # int64 free entry point window length (0 = none)
    utility_in_csw_free: np.ndarray  # bool
    pricing_model: tuple[str, ...]  # NBP / CBP / PMP per regime
    era_name: tuple[str, ...]


def regime_switches() -> RegimeSwitches:
    regimes = eras.REGIMES
    unknown = [r.strategy for r in regimes if r.strategy not in STRATEGY_CODES]
    if unknown:
        raise ValueError(f"era registry names strategies the engine does not implement: {unknown}")
    return RegimeSwitches(
        strategy=np.array([STRATEGY_CODES[r.strategy] for r in regimes], dtype=np.int64),
        era=eras.regime_era_index(),
        fep_ns=np.array([r.fep_hours * HOUR_NS for r in regimes], dtype=np.int64),
        utility_in_csw_free=np.array([r.utility_in_csw_free for r in regimes], dtype=np.bool_),
        pricing_model=tuple(r.pricing_model for r in regimes),
        era_name=tuple(r.era for r in regimes),
    )
