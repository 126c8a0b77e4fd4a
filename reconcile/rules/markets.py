"""User number → country → market (rule book section 0, "Market").

The country comes from the calling code of ``user_wa_id`` (E.164 digits). Shared codes are
split by prefix: ``+1`` by its 3-digit area code (US/CA → North America, the Caribbean members
to their own country), ``+7`` RU/KZ, ``+44`` GB/GG/JE/IM, ``+39``, ``+47``, ``+61``, ``+262``,
``+590``, ``+599`` … by a short prefix of the national number, resolved with
``phonenumbers.region_code_for_number`` and falling back to the code's main region. Validity
(``phonenumbers.is_valid_number``) is deliberately *not* a criterion: Meta prices by calling code.

Speed: ``phonenumbers.parse`` never runs per row. The distinct numbers are factorised, their
prefixes computed with vectorised string slicing, one representative per distinct prefix is
resolved (a few hundred to a few thousand calls, cached across calls) and the answer is mapped
back with numpy indexing.

Country → market comes from the market map (``country``, ``market``). The package ships a
complete default (``reconcile/data/market_map.csv``) built from Meta's published market list:
the named markets, the "Rest of …" regions as Meta lists their countries, ``North America`` =
US + CA; territories that share their main country's calling code (GG/JE/IM, VA, SJ, AX, CC/CX,
EH) follow that country; every other country known to ``phonenumbers`` is ``Other``.
A file given on the command line replaces the default.
"""
from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from ..contracts import MARKET_MAP_COLUMNS, OTHER_MARKET

#: problem codes of :func:`resolve_numbers` (the engine turns them into data-quality warnings)
UNPARSEABLE_NUMBER = "unparseable_number"
UNKNOWN_CALLING_CODE = "unknown_calling_code"

#: ``+1`` is split by its 3-digit area code
_NANP_PREFIX = 3
#: phonenumbers' own limits on the national significant number
_MIN_NSN, _MAX_NSN = 2, 17
#: synthetic subscriber part for ``+1`` prefixes: exchange 234, line 5678 — fits every NANP
#: number pattern, so an area code resolves by itself whatever the row's own digits are
_NANP_SUFFIX = "2345678"

_GEO_CODES: dict[str, tuple[str, ...]] = {
    str(cc): tuple(r for r in regions if r != "001")
    for cc, regions in COUNTRY_CODE_TO_REGION_CODE.items()
}
_KNOWN_CODES = {cc for cc, regions in _GEO_CODES.items() if regions}
_SHARED_CODES = {cc for cc, regions in _GEO_CODES.items() if len(regions) > 1}
_SINGLE_REGION = {cc: regions[0] for cc, regions in _GEO_CODES.items() if len(regions) == 1}


# --------------------------------------------------------------------------- market map
def load_market_map(path: str | None = None) -> pd.DataFrame:
    """The country → market map: the package default, or the CSV at ``path`` (replaces it).

    Columns ``country`` (ISO 3166 alpha-2, upper case) and ``market``. A file without these
    columns, with an empty cell or with a country listed twice raises :class:`InputError`.
    """
    from ..quality import InputError

    if path is None:
        with resources.files("reconcile").joinpath("data/market_map.csv").open("rb") as fh:
            raw = pd.read_csv(fh, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        source = "reconcile/data/market_map.csv"
    else:
        from ..io.locations import open_binary

        source = path
        try:
            with open_binary(path) as fh:
                raw = pd.read_csv(fh, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"not a readable CSV ({exc})", source=source) from exc
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    for col in MARKET_MAP_COLUMNS:
        if col not in raw.columns:
            raise InputError("missing required column", source=source, column=col)
    out = pd.DataFrame({"country": raw["country"].str.strip().str.upper(), "market": raw["market"].str.strip()})
    for col in MARKET_MAP_COLUMNS:
        empty = np.flatnonzero((out[col] == "").to_numpy())
        if len(empty):
            raise InputError("empty value", source=source, row=int(empty[0]) + 1, column=col)
    dup = np.flatnonzero(out["country"].duplicated().to_numpy())
    if len(dup):
        raise InputError(f"country {out['country'].iat[dup[0]]!r} listed twice", source=source,
                         row=int(dup[0]) + 1, column="country")
    return out.reset_index(drop=True)


@functools.lru_cache(maxsize=1)
def default_market_map() -> pd.DataFrame:
    return load_market_map(None)


def country_to_market(countries, market_map: pd.DataFrame) -> np.ndarray:
    """Market of each ISO country code (vectorised); unknown or empty → ``Other``."""
    keys = pd.Series(np.asarray(countries, dtype=object)).fillna("").astype(str).str.strip().str.upper()
    codes, uniques = pd.factorize(keys)
    lookup = dict(zip(market_map["country"], market_map["market"]))
    mapped = np.array([lookup.get(u, OTHER_MARKET) for u in uniques] + [OTHER_MARKET], dtype=object)
    return mapped[codes]   # factorize gives -1 for NA → last slot (Other)


# --------------------------------------------------------------------------- numbers
@functools.lru_cache(maxsize=4096)
def _region_for_area_code(prefix: str) -> str:
    """Region of a ``+1`` area code ("1" + 3 digits), independent of the subscriber digits."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse("+" + prefix + _NANP_SUFFIX, None))
    except phonenumbers.NumberParseException:
        region = None
    return region if region and region != "001" else _GEO_CODES["1"][0]


_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
               "voicemail", "fixed_line", "mobile")


def _regex_hits(nsn: pd.Series, pattern: str, full: bool) -> np.ndarray:
    """``nsn.str.fullmatch(pattern)`` (``full``) or ``nsn.str.match(pattern)`` as a bool array.

    The national numbers here are ASCII digit strings, for which pandas hands these patterns to
    pyarrow's RE2 unchanged; calling ``pyarrow.compute`` directly (with pandas' anchoring) skips
    pandas' per-call parse of the pattern with Python's ``re``. A pattern RE2 rejects falls back
    to pandas."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = getattr(nsn.array, "_pa_array", None)
    if arr is None:
        arr = pa.array(nsn.to_numpy(dtype=object), type=pa.large_string())
    body = pattern[1:] if pattern.startswith("^") else pattern
    if full and body.endswith("$") and not body.endswith("\\$"):
        body = body[:-1]
    anchored = f"^(({body})$)" if full else f"^({body})"
    try:
        hits = pc.match_substring_regex(arr, anchored)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):    # pragma: no cover - not RE2 syntax
        hits = (nsn.str.fullmatch(pattern) if full else nsn.str.match(pattern)).fillna(False)
        return hits.to_numpy(dtype=bool, copy=True)
    return np.asarray(pc.fill_null(hits, False), dtype=bool).copy()


def _matches_desc(nsn: pd.Series, lengths: np.ndarray, desc, general) -> np.ndarray:
    """Vectorised ``phonenumberutil._is_number_matching_desc``."""
    if desc is None or desc.national_number_pattern is None:
        return np.zeros(len(nsn), dtype=bool)
    possible = desc.possible_length or general.possible_length
    if possible == (-1,) or possible == [-1]:
        return np.zeros(len(nsn), dtype=bool)
    ok_len = np.isin(lengths, np.asarray(list(possible), dtype=np.int64))
    if not ok_len.any():
        return ok_len
    return ok_len & _regex_hits(nsn, desc.national_number_pattern, full=True)


def _regions_for_national_numbers(nsn: pd.Series, code: str) -> np.ndarray:
    """``phonenumbers.region_code_for_number`` for many national numbers (ASCII digits) of one
    shared calling code, evaluated with vectorised regex matching; no region → the code's main region."""
    from phonenumbers import PhoneMetadata

    nsn = nsn.reset_index(drop=True).astype("str")
    lengths = nsn.str.len().to_numpy(dtype=np.int64)
    out = np.full(len(nsn), "", dtype=object)
    todo = np.ones(len(nsn), dtype=bool)
    for region in _GEO_CODES[code]:
        md = PhoneMetadata.metadata_for_region(region)
        if md is None:
            continue
        if md.leading_digits is not None:
            hit = _regex_hits(nsn, md.leading_digits, full=False)
        else:
            general = md.general_desc
            hit = _matches_desc(nsn, lengths, general, general)
            any_type = np.zeros(len(nsn), dtype=bool)
            for name in _TYPE_DESCS:
                any_type |= _matches_desc(nsn, lengths, getattr(md, name, None), general)
            hit &= any_type
        hit &= todo
        out[hit] = region
        todo &= ~hit
    out[todo] = _GEO_CODES[code][0]   # the code's main region comes first in phonenumbers' metadata
    return out


def _factorize(values) -> tuple[np.ndarray, pd.Index]:
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        values = values.array
    if isinstance(values, pd.Categorical):
        return np.asarray(values.codes, dtype=np.intp), pd.Index(values.categories)
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if series.dtype != "str":
        series = series.astype("str")
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.intp), uniques


def _calling_code_of(digits: str) -> str:
    for k in (1, 2, 3):
        if digits[:k] in _KNOWN_CODES:
            return digits[:k]
    return ""


def resolve_numbers(user_wa_ids, market_map: pd.DataFrame) -> pd.DataFrame:
    """Country, market and problem code of each user number, aligned with the input.

    ``problem`` is ``''``, ``'unparseable_number'`` (empty, not digits, or a national number
    outside phonenumbers' 2..17 digits) or ``'unknown_calling_code'`` (no assigned geographic
    calling code: e.g. ``999…``, or non-geographic codes such as ``+800``/``+882``, which have no
    country). Problem rows get country ``''`` and market ``Other``. A leading ``+`` and spaces
    are tolerated. A pandas ``Categorical`` (or ``category`` Series) input is used as is, so a
    caller that already factorised its user numbers pays no hashing here.
    """
    row_codes, uniques = _factorize(user_wa_ids)
    country_u, market_u, problem = resolve_each_number(pd.Series(uniques, dtype="str"), market_map)

    # map back to rows (NA inputs → the extra last slot: unparseable)
    take = np.where(row_codes < 0, len(uniques), row_codes)
    return pd.DataFrame({
        "country": take_strings(np.append(country_u, ""), take),
        "market": take_strings(np.append(market_u, OTHER_MARKET), take),
        "problem": take_strings(np.append(problem, UNPARSEABLE_NUMBER), take),
    }, index=pd.RangeIndex(len(row_codes)))


def resolve_each_number(numbers: pd.Series, market_map: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`resolve_numbers` of a ``str`` Series of (typically distinct) numbers without the
    factorisation and the mapping back: country, market and problem as object arrays aligned
    with ``numbers`` (NA counts as empty)."""
    import pyarrow.compute as pc

    uniq = numbers.reset_index(drop=True).fillna("")
    if pc.any(pc.match_substring_regex(_arrow_strings(uniq), r"[+ ]")).as_py():
        uniq = uniq.str.replace(r"[+ ]", "", regex=True)
    return _resolve_distinct(uniq, market_map)


def _arrow_strings(values: pd.Series):
    """The Arrow string array of a ``str`` Series without missing values (one chunk)."""
    import pyarrow as pa

    arr = getattr(values.array, "_pa_array", None)
    if arr is None:
        return pa.array(values.to_numpy(dtype=object), type=pa.large_string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


#: from this many distinct numbers on, numbers are first reduced to one representative per class
_REDUCE_MIN = 2_000
#: the answer for a digit string outside the non-NANP shared codes depends only on its first
#: ``_CLASS_PREFIX`` digits (calling code ≤ 3 digits, ``+1`` area code) and its length
_CLASS_PREFIX = 1 + _NANP_PREFIX


def _resolve_distinct(uniq: pd.Series, market_map: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Country, market and problem (object arrays) of distinct cleaned numbers.

    Many distinct numbers share their answer: outside the shared calling codes other than ``+1``
    (resolved by phonenumbers' rules on the whole national number), a digit string's calling code,
    country, market and problem follow from its first :data:`_CLASS_PREFIX` digits and its length,
    and every non-digit string is unparseable. One representative per such class is resolved
    (:func:`_resolve_each`) and the answer spread to the class; the members of classes with a
    shared non-``+1`` code get their country from the whole national number (vectorised)."""
    n_u = len(uniq)
    if n_u < max(_REDUCE_MIN, 1):
        return _resolve_each(uniq, market_map)[:3]
    import pyarrow.compute as pc

    arr = _arrow_strings(uniq)                        # Arrow directly: no per-call pandas regex parse
    digits_ok = np.asarray(pc.match_substring_regex(arr, r"^[0-9]+$"), dtype=bool)
    lengths = np.asarray(pc.utf8_length(arr), dtype=np.int64)
    prefix_codes = pc.dictionary_encode(pc.utf8_slice_codeunits(arr, 0, _CLASS_PREFIX)).indices
    # class: (prefix, length) for digit strings; one class (-1) for everything else
    cls = np.where(digits_ok, np.asarray(prefix_codes, dtype=np.int64) * (int(lengths.max()) + 1) + lengths, -1)
    classes, first, of_class = np.unique(cls, return_index=True, return_inverse=True)
    country_r, market_r, problem_r, code_r = _resolve_each(uniq.iloc[first].reset_index(drop=True), market_map,
                                                            shared_regions=False)
    country_u, market_u, problem = country_r[of_class], market_r[of_class], problem_r[of_class]
    shared = np.array([c in _SHARED_CODES and c != "1" for c in code_r], dtype=bool) & (problem_r == "")
    members = np.flatnonzero(shared[of_class])
    if len(members):           # same code and problem as their representative: only the country differs
        member_code = code_r[of_class[members]]
        for cc in sorted(set(member_code)):                           # loop over shared calling codes
            sel = members[member_code == cc]
            country_u[sel] = _regions_for_national_numbers(uniq.iloc[sel].str[len(cc):], cc)
        market_u[members] = country_to_market(country_u[members], market_map)
    return country_u, market_u, problem


def _resolve_each(uniq: pd.Series, market_map: pd.DataFrame, shared_regions: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Country, market, problem and calling code (object arrays) of each cleaned number
    (``shared_regions=False``: numbers of a shared calling code other than ``+1`` get no country)."""
    n_u = len(uniq)
    lengths = uniq.str.len().to_numpy()
    digits_ok = uniq.str.fullmatch(r"[0-9]+").fillna(False).to_numpy(dtype=bool)
    # calling code: E.164 codes are prefix-free, so at most one of the 1/2/3-digit prefixes is known
    code = np.full(n_u, "", dtype=object)
    for k in (3, 2, 1):
        pref = uniq.str[:k].to_numpy(dtype=object)
        hit = (code == "") & digits_ok & (lengths >= k) & pd.Series(pref).isin(_KNOWN_CODES).to_numpy()
        code[hit] = pref[hit]
    code_len = pd.Series(code, dtype="str").str.len().to_numpy(dtype=np.int64)
    nsn_len = lengths - code_len
    problem = np.full(n_u, "", dtype=object)
    problem[~digits_ok | (lengths == 0)] = UNPARSEABLE_NUMBER
    no_code = (problem == "") & (code == "")
    problem[no_code] = UNKNOWN_CALLING_CODE
    bad_len = (problem == "") & ((nsn_len < _MIN_NSN) | (nsn_len > _MAX_NSN))
    problem[bad_len] = UNPARSEABLE_NUMBER
    ok = problem == ""

    # country per distinct number: single-region codes directly; +1 by area code (one
    # phonenumbers call per distinct area code); other shared codes by phonenumbers' own
    # region rules evaluated vectorised over the distinct numbers of that code
    code_s = pd.Series(code, dtype=object)
    country_u = code_s.map(_SINGLE_REGION).fillna("").to_numpy(dtype=object)
    is_nanp = ok & (code == "1")
    if is_nanp.any():
        area = uniq[is_nanp].str[: 1 + _NANP_PREFIX]
        acodes, auniques = pd.factorize(area)
        regions = np.array([_region_for_area_code(a) for a in auniques], dtype=object)
        country_u[is_nanp] = regions[acodes]
    for cc in sorted(_SHARED_CODES - {"1"}) if shared_regions else ():
        sel = ok & (code == cc)
        if sel.any():
            country_u[sel] = _regions_for_national_numbers(uniq[sel].str[len(cc):], cc)
    country_u[~ok] = ""
    market_u = country_to_market(country_u, market_map)
    market_u[~ok] = OTHER_MARKET
    return country_u, market_u, problem, code


def take_strings(values: np.ndarray, indices: np.ndarray) -> pd.Series:
    """``values[indices]`` as a pandas ``str`` Series, gathered by Arrow (no per-row Python objects)."""
    import pyarrow as pa
    from pandas.arrays import ArrowStringArray

    gathered = pa.array(list(values), pa.large_string()).take(pa.array(np.asarray(indices, dtype=np.int64)))
    return pd.Series(ArrowStringArray(gathered, dtype=pd.StringDtype("pyarrow", na_value=np.nan)))

