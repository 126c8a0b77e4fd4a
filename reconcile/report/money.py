"""Formatting helpers shared by the outputs: money rounding and strings, masking, spreadsheet escaping.

Everything here is vectorised (numpy / pyarrow / pandas string methods), so it can be applied to
millions of values without a Python loop per value.

* :func:`round_half_up` — half-up (away from zero) rounding of float64 to N places, agreeing with
  ``decimal.ROUND_HALF_UP`` applied to the shortest decimal repr of each float (rule book section 0,
  "Rounding"; contracts.md, variance: ``amount_diff`` is rounded half-up to 4 places before comparing).
* :func:`money_text` / :func:`money_strings` — money strings with a fixed number of places (CSV).
* :func:`mask_phone` — ``*`` for every digit but the last 4 (workbook and logs only).
* :func:`mask_digit_runs` — inside free text, mask every run of 8+ digits to its last 4.
* :func:`escape_formula` — spreadsheet formula-injection escaping (see the function's docstring).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

MONEY_PLACES = 4

#: first characters that make a spreadsheet application read a text cell as a formula (OWASP CSV injection)
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: strings openpyxl would store as error cells instead of text
_ERROR_LITERALS = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A")
#: control characters XML 1.0 (hence xlsx) cannot hold; openpyxl refuses them
_ILLEGAL_XML = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_DIGIT_RUN = re.compile(r"\d{8,}")


def round_half_up(values, places: int = MONEY_PLACES) -> np.ndarray:
    """Round float64 values half-up (away from zero) to ``places`` decimals; NaN stays NaN.

    A float such as ``1.00005`` is stored as ``1.0000499999…``; a naive ``floor(x * 10**p + 0.5)`` would
    round it down while ``Decimal("1.00005")`` rounds up. The scaled value is therefore first snapped to 6
    further decimals (removing binary noise far below the rounding unit) and then rounded half-up, so the
    result agrees with a decimal implementation for every value with at most ``places + 6`` significant
    decimals (all money in this project).
    """
    x = np.asarray(values, dtype="float64")
    factor = 10.0 ** places
    scaled = x * factor
    with np.errstate(invalid="ignore"):
        small = np.abs(scaled) < 1e9  # beyond that float64 has no sub-unit precision left to clean
        snapped = np.where(small, np.round(scaled, 6), scaled)
        rounded = np.sign(snapped) * np.floor(np.abs(snapped) + 0.5)
    out = rounded / factor
    out = out + 0.0  # turn -0.0 into 0.0
    return out


def money_text(values, places: int = MONEY_PLACES) -> pa.Array:
    """Money as an Arrow string array of plain decimals with exactly ``places`` decimals
    (``"12.3400"``, ``"-0.0100"``); NaN → null. Integer arithmetic and pyarrow string kernels only."""
    x = round_half_up(values, places)
    nan = np.isnan(x)
    units = np.where(nan, 0, np.rint(np.abs(x) * 10.0 ** places)).astype("int64")
    whole = units // (10 ** places)
    frac = units % (10 ** places)
    negative = (x < 0) & ~nan
    whole_s = pc.cast(pa.array(whole), pa.string())
    if places:
        frac_s = pc.utf8_lpad(pc.cast(pa.array(frac), pa.string()), width=places, padding="0")
        text = pc.binary_join_element_wise(whole_s, frac_s, ".")
    else:
        text = whole_s
    sign = pa.array(np.where(negative, "-", ""), type=pa.string())
    text = pc.binary_join_element_wise(sign, text, "")
    return pc.if_else(pa.array(nan), pa.scalar(None, pa.string()), text)


def money_strings(values, places: int = MONEY_PLACES) -> np.ndarray:
    """:func:`money_text` as an object array with ``""`` for NaN."""
    return np.asarray(pc.fill_null(money_text(values, places), "").to_numpy(zero_copy_only=False), dtype=object)


def _as_str_series(values) -> pd.Series:
    s = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    return s.astype(object).where(s.notna(), "").astype(str)


def mask_phone(values) -> pd.Series:
    """Replace every digit but the last 4 of each value by ``*`` (``5511987651234`` → ``*********1234``).

    Non-digit characters (``+``, spaces, dashes) are kept in place; values with at most 4 digits are
    unchanged; ``""`` stays ``""``. Returns an object Series aligned with the input."""
    s = _as_str_series(values)
    if s.empty:
        return s.astype(object)
    digits_only = s.str.fullmatch(r"\d*")
    if bool(digits_only.all()):
        arr = pa.array(s.to_numpy(dtype=object), type=pa.string())
        n = pc.utf8_length(arr)
        stars = pc.binary_repeat(pa.scalar("*"), pc.max_element_wise(pc.subtract(n, 4), 0))
        tail = pc.utf8_slice_codeunits(arr, start=-4)
        masked = pc.binary_join_element_wise(stars, tail, "")
        return pd.Series(np.asarray(masked.to_numpy(zero_copy_only=False), dtype=object), index=s.index)
    # every digit followed by at least 4 more digits (anywhere later in the value) becomes '*'
    return s.str.replace(r"\d(?=(?:\D*\d){4})", "*", regex=True).astype(object)


def mask_digit_runs(values) -> pd.Series:
    """In free text, replace every run of 8 or more digits by ``*`` for each digit but its last 4
    (phone numbers inside data-quality details); shorter numbers (rows, counts) are kept."""
    s = _as_str_series(values)
    return s.str.replace(_DIGIT_RUN, lambda m: "*" * (len(m.group(0)) - 4) + m.group(0)[-4:],
                         regex=True).astype(object)


def escape_formula(values) -> pd.Series:
    """Make text safe for spreadsheets: a value starting with ``= + - @``, TAB or CR gets a leading
    apostrophe (``=HYPERLINK(…)`` → ``'=HYPERLINK(…)``); so do the literals openpyxl would store as
    error cells (``#N/A`` …). XML-illegal control characters are removed.

    Method (documented in docs/operations.md): the workbook writes every text as a *string* cell
    (``data_type 's'``), never as a formula, and the escaped value keeps the visible apostrophe as part of
    the text. Excel and LibreOffice both display it as text, nothing is evaluated, and the value stays
    inert when finance copies it or saves the sheet as CSV (the OWASP "CSV injection" advice).
    """
    index = values.index if isinstance(values, pd.Series) else None
    return pd.Series(escape_formula_arrow(values).to_numpy(zero_copy_only=False), index=index, dtype=object)


def escape_formula_arrow(values) -> pa.Array:
    """:func:`escape_formula` as an Arrow ``string`` array (no Python string per value; empty/NA → ``""``)."""
    arr = _arrow_text(values)
    if len(arr) == 0:
        return arr
    arr = pc.replace_substring_regex(arr, _ILLEGAL_XML, "")
    risky = pc.or_(pc.is_in(pc.utf8_slice_codeunits(arr, 0, 1), value_set=pa.array(FORMULA_TRIGGERS)),
                   pc.is_in(arr, value_set=pa.array(_ERROR_LITERALS)))
    return pc.if_else(risky, pc.binary_join_element_wise("'", arr, ""), arr)


def _arrow_text(values) -> pa.Array:
    """Any column as one Arrow ``string`` array with ``""`` for empty/NA (as :func:`_as_str_series`)."""
    from ..engine.prepare import arrow_strings

    arr = arrow_strings(values)
    return arr.cast(pa.string()) if arr.type != pa.string() else arr


def escape_text(value: str) -> str:
    """:func:`escape_formula` for one scalar string (headers, parameters, single cells)."""
    value = re.sub(_ILLEGAL_XML, "", value)
    if value[:1] in FORMULA_TRIGGERS or value in _ERROR_LITERALS:
        return "'" + value
    return value
