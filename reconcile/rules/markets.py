"""User number → country → market (rule book section 0, "Market").

The country comes from the calling code of ``user_wa_id`` (E.164 digits). Shared codes are
split by prefix: ``+1`` by its 3-digit area code (US/CA → North America, the Caribbean members
to their own country), ``+7`` RU/KZ, ``+44`` GB/GG/JE/IM, ``+39``, ``+47``, ``+61``, ``+262``,
``+590``, ``+599`` … by a short prefix of the national number, resolved with
``phonenumbers.region_code_for_number`` and falling back to the code's main region. Validity
(``phonenumbers.is_valid_number``) is deliberately *not* a criterion: Meta prices by calling code.

Speed: ``phonenumbers.parse`` never runs per row. The distinct numbers are grouped into market
classes (first digits and length) by one compiled pass over their bytes
(:mod:`reconcile.engine.numbers`), one representative per class is resolved (its answer kept
across calls, as the ``+1`` area codes are) and the answer spread back as integer codes; only the
numbers of shared codes other than ``+1`` are matched against phonenumbers' region patterns, one
RE2 pass per region and number length.

Country → market comes from the market map (``country``, ``market``). The package ships a
complete default (``reconcile/data/market_map.csv``) built from Meta's published market list:
the named markets, the "Rest of …" regions as Meta lists their countries, ``North America`` =
US + CA; territories that share their main country's calling code (GG/JE/IM, VA, SJ, AX, CC/CX,
EH) follow that country; every other country known to ``phonenumbers`` is ``Other``.
A file given on the command line replaces the default.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from ..contracts import MARKET_MAP_COLUMNS, OTHER_MARKET
from ..engine.buffers import code_type

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


def _regex_hits(nsn, pattern: str, full: bool) -> np.ndarray:
    """``fullmatch`` (``full``) or ``match`` of ``pattern`` on each string of the Arrow array ``nsn``,
    as a bool array.

    The national numbers here are ASCII digit strings, for which pandas would hand these patterns to
    pyarrow's RE2 unchanged; calling ``pyarrow.compute`` directly (with pandas' anchoring) skips
    pandas' per-call parse of the pattern with Python's ``re``. A pattern RE2 rejects falls back
    to pandas."""
    import pyarrow as pa
    import pyarrow.compute as pc

    body = pattern[1:] if pattern.startswith("^") else pattern
    if full and body.endswith("$") and not body.endswith("\\$"):
        body = body[:-1]
    anchored = f"^(({body})$)" if full else f"^({body})"
    try:
        hits = pc.match_substring_regex(nsn, anchored)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):    # pragma: no cover - not RE2 syntax
        series = pd.Series(pd.array(nsn, dtype="str"))
        hits = (series.str.fullmatch(pattern) if full else series.str.match(pattern)).fillna(False)
        return hits.to_numpy(dtype=bool, copy=True)
    return np.asarray(pc.fill_null(hits, False), dtype=bool).copy()


def _matches_desc(nsn, lengths: np.ndarray, desc, general) -> np.ndarray:
    """Vectorised ``phonenumberutil._is_number_matching_desc`` (``nsn`` an Arrow array)."""
    if desc is None or desc.national_number_pattern is None:
        return np.zeros(len(nsn), dtype=bool)
    possible = desc.possible_length or general.possible_length
    if possible == (-1,) or possible == [-1]:
        return np.zeros(len(nsn), dtype=bool)
    allowed = np.zeros(max(int(lengths.max(initial=0)), *possible) + 1, dtype=bool)     # length → possible
    allowed[list(possible)] = True
    ok_len = allowed[lengths]
    if not ok_len.any():
        return ok_len
    return ok_len & _regex_hits(nsn, desc.national_number_pattern, full=True)


@functools.lru_cache(maxsize=1024)
def _typed_pattern(region: str, length: int) -> str | None:
    """One pattern for "a number type of ``region`` whose possible lengths include ``length``
    matches": the alternation of those types' patterns (``None``: no such type)."""
    from phonenumbers import PhoneMetadata

    md = PhoneMetadata.metadata_for_region(region)
    patterns = []
    for name in _TYPE_DESCS:
        desc = getattr(md, name, None)
        if desc is None or desc.national_number_pattern is None:
            continue
        if length in (desc.possible_length or md.general_desc.possible_length):
            patterns.append(f"(?:{desc.national_number_pattern})")
    return "|".join(patterns) or None


def _region_hits(nsn, region: str, md) -> np.ndarray:
    """Which national numbers (Arrow array) phonenumbers gives to ``region`` (metadata ``md``): its
    leading digits match, or (a region without them) its general pattern and one of its number types
    do (a type counts for the lengths it allows): one regex pass per distinct length for the types."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if md.leading_digits is not None:
        return _regex_hits(nsn, md.leading_digits, full=False)
    general = md.general_desc
    lengths = np.asarray(pc.utf8_length(nsn), dtype=np.int64)
    hit = _matches_desc(nsn, lengths, general, general)
    typed = np.zeros(len(nsn), dtype=bool)
    for length in np.unique(lengths[hit]).tolist():
        pattern = _typed_pattern(region, length)
        if pattern is not None:
            sel = np.flatnonzero(hit & (lengths == length))
            typed[sel] = _regex_hits(nsn.take(pa.array(sel)), pattern, full=True)
    return hit & typed


def _regions_for_national_numbers(nsn, code: str) -> np.ndarray:
    """``phonenumbers.region_code_for_number`` for many national numbers (ASCII digits; an Arrow array
    or a ``str`` Series) of one shared calling code, evaluated with vectorised regex matching, each
    region on the numbers no earlier region took; no region → the code's main region (it comes first
    in phonenumbers' metadata)."""
    import pyarrow as pa
    from phonenumbers import PhoneMetadata

    if isinstance(nsn, pd.Series):
        nsn = _arrow_strings(nsn.reset_index(drop=True).astype("str"))
    regions = _GEO_CODES[code]
    out = np.full(len(nsn), regions[0], dtype=object)
    left = np.arange(len(nsn))
    for region in regions:
        md = PhoneMetadata.metadata_for_region(region)
        if md is None or len(left) == 0:
            continue
        hit = _region_hits(nsn if len(left) == len(nsn) else nsn.take(pa.array(left)), region, md)
        out[left[hit]] = region
        left = left[~hit]
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
    arr = _arrow_strings(numbers.reset_index(drop=True).fillna(""))
    return resolve_number_codes(arr, np.arange(len(arr)), market_map).decode()


def _arrow_strings(values: pd.Series):
    """The Arrow string array of a ``str`` Series without missing values (one chunk)."""
    import pyarrow as pa

    arr = getattr(values.array, "_pa_array", None)
    if arr is None:
        return pa.array(values.to_numpy(dtype=object), type=pa.large_string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


#: the problem of a number by its code in :class:`NumberCodes`
PROBLEMS = ("", UNPARSEABLE_NUMBER, UNKNOWN_CALLING_CODE)


@dataclass(frozen=True)
class NumberCodes:
    """Country, market and problem of many numbers as codes: ``country`` over ``country_names`` and
    ``market`` over ``market_names`` (names numbered in order of first appearance over the numbers, as
    ``pd.factorize`` numbers them), ``problem`` over :data:`PROBLEMS`; each in the smallest signed
    integer type that holds it (what a Categorical keeps)."""

    country: np.ndarray
    country_names: list
    market: np.ndarray
    market_names: list
    problem: np.ndarray

    def decode(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Country, market and problem of each number as object arrays."""
        return tuple(np.array(names, dtype=object)[codes] for names, codes in (
            (self.country_names, self.country), (self.market_names, self.market), (PROBLEMS, self.problem)))


#: from this many numbers on, numbers are first reduced to one representative per market class (faster
#: from a few dozen numbers on: 100 numbers 16 -> 2.4 ms, the class answers kept); fewer are resolved
#: one by one
_REDUCE_MIN = 16
#: answers ``(country, problem, calling code)`` of the market classes met so far, by class key: a pure
#: function of the key and phonenumbers' metadata (as ``_region_for_area_code``), kept across calls
_CLASS_ANSWERS: dict[int, tuple[str, str, str]] = {}
#: no more class answers are kept once there are this many
_CLASS_ANSWERS_MAX = 1 << 16


def resolve_number_codes(numbers, rows: np.ndarray, market_map: pd.DataFrame) -> NumberCodes:
    """Country, market and problem of the numbers ``numbers[rows]`` (an Arrow string array, nulls read
    as empty; ``rows`` typically the distinct ones) as :class:`NumberCodes`.

    Many distinct numbers share their answer: outside the shared calling codes other than ``+1``
    (resolved by phonenumbers' rules on the whole national number), a digit string's calling code,
    country and problem follow from its market class (:mod:`reconcile.engine.numbers`: its first
    digits and its length), and every non-digit string is unparseable. From :data:`_REDUCE_MIN`
    numbers on, the classes are found by one compiled pass, one representative per class is resolved
    (:func:`_class_answers`) and the answer spread to the class; the members of classes with a shared
    non-``+1`` code get their country from their whole national number (vectorised). Fewer numbers are
    resolved one by one (:func:`_resolve_each`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = np.asarray(rows, dtype=np.int64)
    if numbers.null_count:
        numbers = pc.fill_null(numbers, "")
    if len(rows) < max(_REDUCE_MIN, 1):
        country, problem, _ = _resolve_each(_digit_strings(numbers.take(pa.array(rows))))
        country_id, names = pd.factorize(country)
        return _number_codes(list(names), country_id, _problem_codes(problem), market_map)
    from ..engine.numbers import number_classes

    cls, first, keys, dropped = number_classes(numbers, rows)
    country_c, problem_c, code_c = _class_answers(numbers, rows[first], keys)
    names: dict[str, int] = {}
    country_id = np.array([names.setdefault(c, len(names)) for c in country_c], dtype=np.int64)[cls]
    shared = np.array([c in _SHARED_CODES and c != "1" for c in code_c], dtype=bool) & (problem_c == "")
    members = np.flatnonzero(shared[cls])
    if len(members):           # same code and problem as their representative: only the country differs
        member_code = code_c[cls[members]]
        digits = numbers.take(pa.array(rows[members]))
        if dropped:
            digits = pc.replace_substring_regex(digits, r"[+ ]", "")
        for cc in sorted(set(member_code)):                           # loop over shared calling codes
            sel = np.flatnonzero(member_code == cc)
            nsn = pc.utf8_slice_codeunits(digits.take(pa.array(sel)), len(cc))
            region_id, regions = pd.factorize(_regions_for_national_numbers(nsn, cc))
            ids = np.array([names.setdefault(r, len(names)) for r in regions], dtype=np.int64)
            country_id[members[sel]] = ids[region_id]
    return _number_codes(list(names), country_id, _problem_codes(problem_c)[cls], market_map)


def _number_codes(names: list, country_id: np.ndarray, problem: np.ndarray, market_map: pd.DataFrame
                  ) -> NumberCodes:
    """:class:`NumberCodes` of numbers given their country as ``names[country_id]`` and their problem
    code: the market of each country by the market map, ``Other`` for every number with a problem."""
    country, first = pd.factorize(country_id)
    country_names = [names[i] for i in first]
    markets: dict[str, int] = {}
    of_country = np.array([markets.setdefault(m, len(markets)) for m in country_to_market(country_names, market_map)],
                          dtype=np.int64)
    market_id = of_country[country]
    market_id[problem != 0] = markets.setdefault(OTHER_MARKET, len(markets))
    market, first = pd.factorize(market_id)
    market_names = list(markets)
    return NumberCodes(country.astype(code_type(len(country_names) - 1)), country_names,
                       market.astype(code_type(len(first) - 1)), [market_names[i] for i in first], problem)


def _problem_codes(problem: np.ndarray) -> np.ndarray:
    """Codes (:data:`PROBLEMS`) of problem names."""
    codes = np.zeros(len(problem), dtype=np.int8)
    for code, name in enumerate(PROBLEMS[1:], 1):
        codes[problem == name] = code
    return codes


def _digit_strings(numbers) -> pd.Series:
    """The numbers of an Arrow string array without ``+`` and spaces, as a ``str`` Series."""
    import pyarrow.compute as pc

    return pd.Series(pd.array(pc.replace_substring_regex(numbers, r"[+ ]", ""), dtype="str"))


def _class_answers(numbers, representatives: np.ndarray, keys: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Country, problem and calling code (object arrays) of market classes (``keys``), by the answer
    kept for the key or else by resolving its representative ``numbers[representatives]``
    (:func:`_resolve_each` without the regions of shared codes other than ``+1``)."""
    import pyarrow as pa

    answers = [_CLASS_ANSWERS.get(k) for k in keys.tolist()]
    missing = [i for i, a in enumerate(answers) if a is None]
    if missing:
        found = _resolve_each(_digit_strings(numbers.take(pa.array(representatives[missing]))), shared_regions=False)
        for i, answer in zip(missing, zip(*found)):
            answers[i] = answer
            if len(_CLASS_ANSWERS) < _CLASS_ANSWERS_MAX:
                _CLASS_ANSWERS[int(keys[i])] = answer
    return tuple(np.array([a[col] for a in answers], dtype=object) for col in range(3))


def _resolve_each(uniq: pd.Series, shared_regions: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Country, problem and calling code (object arrays) of each cleaned number
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
    return country_u, problem, code


def take_strings(values: np.ndarray, indices: np.ndarray) -> pd.Series:
    """``values[indices]`` as a pandas ``str`` Series, gathered by Arrow (no per-row Python objects)."""
    import pyarrow as pa
    from pandas.arrays import ArrowStringArray

    gathered = pa.array(list(values), pa.large_string()).take(pa.array(np.asarray(indices, dtype=np.int64)))
    return pd.Series(ArrowStringArray(gathered, dtype=pd.StringDtype("pyarrow", na_value=np.nan)))

