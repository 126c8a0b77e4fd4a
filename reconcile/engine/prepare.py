"""Prepare messages for windowing: duplicates, billable filter, keys, local dates, the sort.

Rule book section 0: duplicates collapse per ``message_id``; only ``delivered``/``read``
outbound messages are billable and their charge instant is ``delivered_at`` (else
``read_at``); inbound messages open the customer service window at ``sent_at``; a key is
``(phone_number_id, user_wa_id)``; eras and billing months use the charge instant's date
in the account timezone; ties are ordered inbound before outbound, then by ``message_id``.

Everything here is vectorised: loops run over columns, time zones and eras only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..contracts import STATUS_RANK
from ..quality import InputError, QualityLog
from ..rules import eras
from .buffers import string_buffers
from .strategies import TEMPLATE_CATEGORY_CODES

#: fields whose differing non-empty values make a duplicate id conflicting (section 0)
CONFLICT_FIELDS = ("waba_id", "phone_number_id", "user_wa_id", "direction", "message_kind", "template_category")
_RANK_TO_STATUS = {4: "read", 3: "delivered", 2: "sent", 1: "failed"}
NAT_NS = np.iinfo(np.int64).min
MAX_NS = np.iinfo(np.int64).max
DAY_NS = 86_400_000_000_000


# =========================================================================== duplicates
def dedupe_messages(messages: pd.DataFrame, quality: QualityLog, *, consume: bool = False
                    ) -> tuple[pd.DataFrame, dict]:
    """Collapse repeated ``message_id`` rows into one message (rule book section 0, "Duplicates").

    Per id: the best status wins (``read`` > ``delivered`` > ``sent`` > ``failed``), the earliest
    ``delivered_at`` and the earliest ``read_at`` are kept (so the charge instant is the earliest
    delivered instant, else the earliest read instant), every other field takes its first
    non-empty value in input order, and ``source``/``row`` are those of the first occurrence.
    Different non-empty values of a field of :data:`CONFLICT_FIELDS` make the id conflicting:
    the message is excluded and reported once (``conflicting_duplicate``, error). An empty value
    never conflicts with a filled one.

    Returns the messages (one row per id, in order of first occurrence) and counts
    ``input_rows``, ``duplicates_merged`` (rows folded into another row of their id) and
    ``conflicting_duplicates`` (ids excluded); ``len(out) = input_rows - duplicates_merged -
    conflicting_duplicates``.

    ``consume=True`` (the caller hands its only reference over) empties ``messages`` column by
    column while the kept rows are copied, so that the input and the output are never both whole
    in memory. :func:`merge_duplicates` is the same without the copy (the engine's own path).
    """
    frame, keep, counts = merge_duplicates(messages, quality, in_place=consume)
    if keep is None:
        return frame.reset_index(drop=True), counts
    return _filter_rows(frame, keep, consume=consume), counts


def merge_duplicates(messages: pd.DataFrame, quality: QualityLog, *, in_place: bool = False
                     ) -> tuple[pd.DataFrame, np.ndarray | None, dict]:
    """:func:`dedupe_messages` without copying the kept rows: returns the messages with each kept
    duplicated id's merged values written over its first occurrence, the mask of the rows to keep
    (``None`` when every row is kept) and the counts. The rows outside the mask (later occurrences,
    every row of a conflicting id) are no messages any more: :func:`.windows.window_units` takes the
    mask as ``dropped`` and ignores them. ``in_place``: ``messages`` itself is modified."""
    n = len(messages)
    counts = {"input_rows": n, "duplicates_merged": 0, "conflicting_duplicates": 0}
    if n == 0:
        return messages.reset_index(drop=True), None, counts
    messages = single_chunk_columns(messages, in_place=in_place)
    dup_rows, dup_codes = _duplicated_ids(arrow_strings(messages["message_id"]))
    if len(dup_rows) == 0:     # no duplicates at all: the common case
        return messages, None, counts

    order = np.argsort(dup_codes, kind="stable")
    dup_rows = dup_rows[order]                                    # grouped by id, input order inside
    gcodes = dup_codes[order]
    starts = np.flatnonzero(np.r_[True, gcodes[1:] != gcodes[:-1]])
    first_pos = dup_rows[starts]                                  # first occurrence of each duplicated id
    n_groups = len(starts)
    m = len(dup_rows)

    # per column, the merged value of each group and whether it differs from the group's first row's
    merged: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    conflict_cols: list[tuple[str, np.ndarray]] = []
    for col in messages.columns:
        if col in ("message_id", "source", "row"):
            continue
        merged[col], conflict = _merge_column(messages[col], col, dup_rows, starts)
        if conflict is not None:
            conflict_cols.append((col, conflict))

    conflicting = np.zeros(n_groups, dtype=bool)
    for _, mask in conflict_cols:
        conflicting |= mask
    n_conflicting = int(conflicting.sum())
    if n_conflicting:
        cp = first_pos[conflicting]
        detail = _conflict_detail([(col, mask[conflicting]) for col, mask in conflict_cols], n_conflicting)
        quality.add_many(
            "error", "conflicting_duplicate",
            source=_provenance(messages, "source", cp), row=_provenance(messages, "row", cp),
            column=detail, message_id=messages["message_id"].iloc[cp].to_numpy(dtype=object),
            detail=("rows of this message_id disagree on " + detail.astype(str)
                    + ": message excluded (charges nothing, opens nothing)"),
        )

    # one merged row per duplicated id, at its first occurrence (the merged values are written over
    # it); the later occurrences and every row of a conflicting id are left out by the mask
    keep_groups = ~conflicting
    keep = np.ones(n, dtype=bool)
    keep[dup_rows] = False
    kept_first = first_pos[keep_groups]
    keep[kept_first] = True
    by_pos = np.argsort(kept_first, kind="stable")
    out_pos = kept_first[by_pos]                                  # ascending positions
    out = messages
    for col, (vals, differs) in merged.items():
        differs = differs[keep_groups][by_pos]
        if not differs.any():    # most merged values equal the first occurrence's: nothing to rewrite
            continue
        vals = np.asarray(vals)[keep_groups][by_pos]
        column = out[col]
        if isinstance(column.dtype, pd.CategoricalDtype):         # merged codes
            codes = column.cat.codes.to_numpy().copy()
            codes[out_pos[differs]] = vals[differs]
            out[col] = pd.Categorical.from_codes(codes, dtype=column.dtype)
        else:
            out[col] = _overwrite(column, out_pos[differs], vals[differs])
    counts["duplicates_merged"] = int(m - n_groups)
    counts["conflicting_duplicates"] = n_conflicting
    return out, keep, counts


def _merge_column(column: pd.Series, col: str, dup_rows: np.ndarray, starts: np.ndarray
                  ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray | None]:
    """:func:`dedupe_messages`' merge of one column on the duplicated rows ``dup_rows`` (grouped by id,
    groups at ``starts``; only those rows are gathered, column by column): ``(merged value per group,
    merged value differs from the group's first row's)`` and, for :data:`CONFLICT_FIELDS`, which groups
    hold two different non-empty values (else ``None``). Categoricals merge their codes; instants their
    int64 ns (``delivered_at``/``read_at``: the earliest, NAT_NS for none)."""
    if isinstance(column.dtype, pd.CategoricalDtype):        # the reader's few-valued columns: by code
        codes = column.cat.codes.to_numpy()[dup_rows].astype(np.int64)
        vals, conflict = _merge_codes(codes, [str(c) for c in column.cat.categories], col, starts)
        return (vals, vals != codes[starts]), conflict
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        ns = _instants_ns(column)[dup_rows]
        empty = ns == NAT_NS
        if col in ("delivered_at", "read_at"):
            earliest = np.minimum.reduceat(np.where(empty, MAX_NS, ns), starts)
            vals = np.where(earliest == MAX_NS, NAT_NS, earliest)
        else:
            vals = ns[_first_non_empty(empty, starts)]
        conflict = _disagree(np.where(empty, -1, pd.factorize(ns)[0]), starts) if col in CONFLICT_FIELDS else None
        return (vals, vals != ns[starts]), conflict
    arr = getattr(column.array, "_pa_array", None)
    if col != "status" and arr is not None and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return _merge_strings(arr, col, dup_rows, starts)
    values = column.take(dup_rows)
    empty = _empty_mask(values)
    first = _first_non_empty(empty, starts)
    if col == "status":
        rank = values.map(STATUS_RANK).fillna(0).to_numpy(dtype=np.int64)
        best = np.maximum.reduceat(rank, starts)
        vals = values.to_numpy(dtype=object)[first]
        for r, name in _RANK_TO_STATUS.items():
            vals[best == r] = name
    else:
        vals = values.iloc[first].to_numpy()
    current = values.iloc[starts].astype(object).reset_index(drop=True)
    differs = ~(pd.Series(vals, dtype=object) == current).to_numpy(dtype=bool)
    conflict = None
    if col in CONFLICT_FIELDS:
        fcodes = pd.factorize(values)[0].astype(np.int64)
        conflict = _disagree(np.where(empty, -1, fcodes), starts)
    return (vals, differs), conflict


def _merge_strings(arr, col: str, dup_rows: np.ndarray, starts: np.ndarray
                   ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray | None]:
    """:func:`_merge_column` of an Arrow-backed string column, by Arrow on the duplicated rows: the first
    non-empty value (objects, None for missing), whether it differs from the first row's (a missing value
    always does, as pandas compares it) and, for :data:`CONFLICT_FIELDS`, the conflicts."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    values = arr.take(pa.array(dup_rows))
    empty = np.asarray(pc.fill_null(pc.equal(pc.binary_length(values), 0), True), dtype=bool)   # null or ""
    merged = values.take(pa.array(_first_non_empty(empty, starts)))
    differs = ~np.asarray(pc.fill_null(pc.equal(merged, values.take(pa.array(starts))), False), dtype=bool)
    conflict = None
    if col in CONFLICT_FIELDS:
        codes = np.asarray(pc.fill_null(pc.dictionary_encode(values).indices, -1), dtype=np.int64)
        conflict = _disagree(np.where(empty, -1, codes), starts)
    return (merged.to_numpy(zero_copy_only=False), differs), conflict


def _merge_codes(codes: np.ndarray, names: list[str], col: str, starts: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_merge_column` of a Categorical column, given its (int64) codes on the duplicated rows and
    its categories ``names``: the merged category code per group (``status``: the best status, else the
    first non-empty value; other columns: the first non-empty value) and, for :data:`CONFLICT_FIELDS`,
    which groups hold two different non-empty values (else ``None``)."""
    empty = np.array([name == "" for name in names] + [True])[codes]          # code -1 (NaN): empty
    merged = codes[_first_non_empty(empty, starts)]
    if col == "status":
        rank = np.array([STATUS_RANK.get(name, 0) for name in names] + [0], dtype=np.int64)[codes]
        best = np.maximum.reduceat(rank, starts)
        for r, name in _RANK_TO_STATUS.items():
            if name in names:
                merged[best == r] = names.index(name)
    if col not in CONFLICT_FIELDS:
        return merged, None
    return merged, _disagree(np.where(empty, -1, codes), starts)


def _disagree(filled: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per group (at ``starts``) of value codes ``filled`` (-1 for empty): two different non-empty values."""
    hi = np.maximum.reduceat(filled, starts)
    lo = np.minimum.reduceat(np.where(filled < 0, MAX_NS, filled), starts)
    return (hi >= 0) & (lo != hi)


def _conflict_detail(conflict_cols: list[tuple[str, np.ndarray]], size: int) -> np.ndarray:
    """Per conflicting group, the names of the columns that disagree, comma separated, in column order."""
    detail = np.full(size, "", dtype=object)
    for col, mask in conflict_cols:
        detail = np.where(mask, np.where(detail == "", col, detail + ", " + col), detail)
    return detail


#: below this many rows duplicated ids are found with one dictionary encoding (no hash pre-pass)
_HASH_PREPASS_ROWS = 200_000


def _duplicated_ids(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Input positions (ascending) of the rows whose id occurs more than once, and an id code per such row.

    Large inputs first hash every id (:mod:`.hashing`, one compiled pass over the Arrow buffers) and
    keep the rows whose hash repeats; only those candidates are dictionary-encoded, so the exact
    answer costs a hash table of the (few) duplicated ids instead of one of all ids."""
    n = len(ids)
    if n >= _HASH_PREPASS_ROWS:
        from .hashing import repeated_candidates

        candidates = np.flatnonzero(repeated_candidates(ids))
        if len(candidates) == 0:
            return candidates.astype(np.int64), candidates.astype(np.int64)
        ids = ids.take(pa.array(candidates))
    else:
        candidates = np.arange(n, dtype=np.int64)
    codes = np.asarray(pc.dictionary_encode(ids).indices, dtype=np.int64)
    per_id = np.bincount(codes)
    dup = per_id[codes] > 1
    return candidates[dup].astype(np.int64), codes[dup]


def _filter_rows(frame: pd.DataFrame, keep: np.ndarray, consume: bool = False) -> pd.DataFrame:
    """``frame[keep]`` with a fresh RangeIndex; Arrow-backed columns are filtered by Arrow (one
    sequential pass) instead of pandas' gather. ``consume`` removes each column from ``frame``
    once it is filtered (its memory is freed when nothing else holds it)."""
    mask = pa.array(keep)
    cols = {}
    columns = list(frame.columns)
    for name in columns:
        col = frame.pop(name) if consume else frame[name]
        arr = getattr(col.array, "_pa_array", None)
        if arr is not None:
            cols[name] = pd.Series(pd.array(pc.filter(arr, mask), dtype=col.dtype), name=name)
        elif isinstance(col.dtype, pd.CategoricalDtype):      # e.g. ``source``: filter the codes
            cols[name] = pd.Series(pd.Categorical.from_codes(col.cat.codes.to_numpy()[keep], dtype=col.dtype),
                                   name=name)
        else:
            cols[name] = pd.Series(col.to_numpy()[keep] if not isinstance(col.dtype, pd.DatetimeTZDtype)
                                   else col.array[keep], name=name)
            if cols[name].dtype != col.dtype:
                cols[name] = cols[name].astype(col.dtype)
    return pd.DataFrame(cols, columns=columns, copy=False)      # fresh arrays: no block copies


def _overwrite(column: pd.Series, positions: np.ndarray, values: np.ndarray) -> pd.Series:
    """``column`` with ``values`` written at ascending ``positions`` (same dtype; strings stay Arrow)."""
    if len(positions) == 0:
        return column
    arr = getattr(column.array, "_pa_array", None)
    if arr is not None and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
        mask = np.zeros(len(arr), dtype=bool)
        mask[positions] = True
        repl = pa.array(np.asarray(values, dtype=object), type=arr.type, from_pandas=True)
        new = pc.replace_with_mask(arr, pa.array(mask), repl)
        return pd.Series(pd.array(new, dtype=column.dtype), index=column.index, name=column.name)
    if pd.api.types.is_datetime64_any_dtype(column.dtype) and values.dtype == np.int64:
        ns = _instants_ns(column).copy()          # values: int64 ns UTC, NAT_NS for none
        ns[positions] = values
        return pd.Series(pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC"), index=column.index,
                         name=column.name).astype(column.dtype)
    out = column.copy()
    out.iloc[positions] = pd.array(values, dtype=column.dtype)
    return out


def _empty_mask(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.isna().to_numpy()
    if pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        return (values.isna() | (values.astype(str) == "")).to_numpy(dtype=bool)
    return values.isna().to_numpy(dtype=bool)


def _first_non_empty(empty: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Position (in the grouped rows) of the first row of each group (at ``starts``) not ``empty``,
    the group's first row if none."""
    m = len(empty)
    first = np.minimum.reduceat(np.where(empty, m, np.arange(m, dtype=np.int64)), starts)
    return np.where(first == m, starts, first)


def _instants_ns(values) -> np.ndarray:
    """``int64`` nanoseconds since the epoch (UTC), :data:`NAT_NS` for NaT. A column of nanosecond
    instants (the reader's) is read as it is stored: a read-only view of its int64 values, no copy."""
    dtype = getattr(values, "dtype", None)
    if pd.api.types.is_datetime64_any_dtype(dtype) and np.datetime_data(getattr(dtype, "base", dtype))[0] == "ns":
        ns = getattr(values, "array", values).asi8.view()
        ns.flags.writeable = False
        return ns
    s = pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s, utc=True)
    if getattr(s.dtype, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _provenance(frame: pd.DataFrame, col: str, positions: np.ndarray):
    """``source`` (strings, ``""`` for none) or ``row`` (a nullable ``Int64`` array) of the rows at
    ``positions``, for :meth:`.QualityLog.add_many`. Only those rows are read (a Categorical ``source``:
    its codes, then one string per category)."""
    if col not in frame.columns:
        return np.full(len(positions), "" if col == "source" else None, dtype=object)
    column = frame[col]
    if col == "row":
        if column.dtype.kind in "iu":
            return pd.array(column.to_numpy()[positions], dtype="Int64")
        return column.iloc[positions].astype("Int64").array
    if isinstance(column.dtype, pd.CategoricalDtype):            # ``source`` is one code per file
        names = [str(c) for c in column.cat.categories.fillna("").astype(object)] + [""]     # code -1: none
        return np.array(names, dtype=object)[column.array.codes[positions]]     # the codes, not a copied Series
    return column.iloc[positions].fillna("").astype(str).to_numpy(dtype=object)


# =========================================================================== arrow helpers
def single_chunk_columns(frame: pd.DataFrame, *, in_place: bool = False) -> pd.DataFrame:
    """``frame`` with every Arrow-backed column in one chunk (a Parquet file gives one chunk per row
    group). Arrow's ``take`` on a chunked array concatenates the chunks on every call; combined once
    here, the gathers of the engine cost only what they gather."""
    out = frame if in_place else frame.copy(deep=False)
    for name in list(out.columns):
        arr = getattr(out[name].array, "_pa_array", None)
        if isinstance(arr, pa.ChunkedArray) and arr.num_chunks > 1:
            out[name] = pd.Series(pd.array(pa.chunked_array([arr.combine_chunks()]), dtype=out[name].dtype),
                                  index=out.index, name=name)
    return out


def category_parts(values) -> tuple[np.ndarray, pa.Array] | None:
    """``(codes, categories)`` of a Categorical column of strings (its integer codes, -1 for NaN;
    categories a ``pyarrow`` string array), else ``None``. The reader hands the few-valued message
    columns over as Categoricals: the engine then works on per-category answers gathered by code."""
    dtype = getattr(values, "dtype", None)
    if not isinstance(dtype, pd.CategoricalDtype):
        return None
    cats = dtype.categories
    arr = getattr(cats.array, "_pa_array", None)
    if arr is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pa.array([str(x) for x in cats], type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    codes = values.cat.codes.to_numpy() if isinstance(values, pd.Series) else np.asarray(values.codes)
    return codes, arr


def per_category(values, per_value: np.ndarray, missing=0) -> np.ndarray:
    """Per-row view of a per-category array (``missing`` for NaN rows) of a Categorical column."""
    codes = values.cat.codes.to_numpy() if isinstance(values, pd.Series) else np.asarray(values.codes)
    per_value = np.asarray(per_value)
    table = np.append(per_value, np.asarray([missing], dtype=per_value.dtype))   # code -1 → the last
    if table.dtype == np.int64:
        from .sorting import renumber

        return renumber(codes, table)
    return table[codes]


def arrow_strings(values) -> pa.Array:
    """A string column as one contiguous ``pyarrow`` string array (``""`` for empty/NA); a
    Categorical column is gathered from its categories (one Arrow take)."""
    parts = category_parts(values)
    if parts is not None:
        codes, cats = parts
        idx = pa.array(codes, mask=codes < 0) if len(codes) and codes.min() < 0 else pa.array(codes)
        arr = pc.take(cats, idx)
        return pc.fill_null(arr, "") if arr.null_count else arr
    arr = getattr(getattr(values, "array", None), "_pa_array", None)
    if arr is None or not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = pa.array(pd.Series(values, dtype="object").fillna("").astype(str).to_numpy(dtype=object),
                       type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    return arr


def str_series(arr) -> pd.Series:
    """A pandas ``str`` Series over a pyarrow string array (no copy)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    return pd.Series(pd.array(arr, dtype="str"))


def take_strings(arr: pa.Array, positions: np.ndarray) -> pd.Series:
    """``arr[positions]`` as a ``str`` Series; negative positions give ``""``."""
    positions = np.asarray(positions, dtype=np.int64)
    if len(positions) and positions.min() < 0:
        idx = pa.array(positions, mask=positions < 0)
    else:
        idx = pa.array(positions)
    return str_series(pc.take(arr, idx))


def decode(codes: np.ndarray, names) -> pd.Series:
    """Small vocabulary ``names[codes]`` as a ``str`` Series (arrow take on the vocabulary)."""
    vocab = names if isinstance(names, pa.Array) else pa.array([str(x) for x in names], type=pa.string())
    return take_strings(vocab, codes)


def sorted_codes(values) -> tuple[np.ndarray, pa.Array]:
    """Factorise strings with *sorted* uniques (order independent of input order).

    Digit strings of at most 17 digits (E.164 user numbers) are parsed to integers and factorised
    as ``value * 32 + length`` (keeps leading zeros distinct), much cheaper than hashing strings;
    anything else falls back to arrow's dictionary encoding. Codes follow the sorted uniques.
    """
    parts = category_parts(values)
    if parts is not None and not (len(parts[0]) and parts[0].min() < 0):
        return _sorted_category_codes(*parts)
    arr = arrow_strings(values)
    numeric = _digit_codes(arr)
    if numeric is not None:
        codes, first = numeric
        # each name is the input string of its first occurrence (value and length identify the string)
        names = pc.take(arr, pa.array(first))
        return codes, names.cast(pa.string()) if names.type != pa.string() else names
    from . import sorting
    from .string_sets import first_occurrence_codes

    coded = first_occurrence_codes(arr)
    if coded is not None:            # pc.dictionary_encode, compiled: ids and first occurrences
        ids, first = coded
        dictionary = pc.take(arr, pa.array(first))
    else:
        enc = pc.dictionary_encode(arr)
        dictionary = enc.dictionary
        ids = np.asarray(enc.indices, dtype=np.int64)
    order = np.asarray(pc.sort_indices(dictionary), dtype=np.int64)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    codes = sorting.renumber(ids, rank) if len(order) else np.zeros(len(arr), np.int64)
    return codes, pc.take(dictionary, pa.array(order))


def _sorted_category_codes(codes: np.ndarray, categories: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """:func:`sorted_codes` of a Categorical column: the categories that occur are ranked exactly as
    :func:`sorted_codes` ranks strings (digit strings by value then length, else code point order),
    then each row's code is mapped to its category's rank."""
    from . import sorting

    present = np.flatnonzero(sorting.code_counts(codes, len(categories)))
    used = pc.take(categories, pa.array(present))
    rank, names = sorted_codes(used)                       # distinct strings: rank = sorted position
    table = np.zeros(len(categories), dtype=np.int64)
    table[present] = rank
    return sorting.renumber(codes, table), names


def _digit_codes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """If every string is 1..17 ASCII digits: ``pd.factorize(value * 32 + length, sort=True)`` codes and
    the first position of each distinct value; else ``None``. One compiled pass over the Arrow
    buffers (:func:`.sorting.digit_codes`) when ``arr`` is a plain string array, else by Arrow and pandas."""
    if len(arr) == 0:
        return None
    from . import sorting

    strings = string_buffers(arr)
    if strings is not None:
        return sorting.digit_codes(strings)
    numeric = _digit_values(arr)
    if numeric is None:
        return None
    codes, uniques = pd.factorize(numeric, sort=True)
    codes = codes.astype(np.int64, copy=False)
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1, dtype=np.int64)
    return codes, first


def _digit_values(arr: pa.Array) -> np.ndarray | None:
    """``value * 32 + length`` of each string if all are 1..17 ASCII digits, else ``None``."""
    lengths = np.asarray(pc.binary_length(arr), dtype=np.int64)
    if lengths.min() < 1 or lengths.max() > 17:
        return None
    if not pc.all(pc.ascii_is_decimal(arr)).as_py():       # non-empty, ASCII 0-9 only (no regex pass)
        return None
    try:
        values = np.asarray(pc.cast(arr, pa.int64()), dtype=np.int64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return values * 32 + lengths


# =========================================================================== events
@dataclass
class PreparedEvents:
    """Inbound and billable outbound messages, sorted by key, instant, direction, message_id.

    Every array is aligned with the sort; ``rows`` maps back to positions of the deduplicated
    frame. Outbound events are billable deliveries with a charge instant.
    """

    rows: np.ndarray         # int64 position in the deduplicated frame
    key: np.ndarray          # int64 key code (phone_number_id, user_wa_id), sorted codes
    t: np.ndarray            # int64 ns UTC: inbound sent_at / outbound charge instant
    inbound: np.ndarray      # bool
    entry_point: np.ndarray  # bool (inbound with entry_point set)
    template: np.ndarray     # bool (outbound template)
    category: np.ndarray     # int64 unit category code of the template, -1 when empty
    regime: np.ndarray       # int64 index into eras.REGIMES of the event's local date
    next_boundary: np.ndarray  # int64 ns UTC of the next era start (account time), MAX_NS if none
    local_day: np.ndarray    # int64 local date of the instant, days since 1970-01-01
    account: np.ndarray      # int64 index into the accounts frame
    phone: np.ndarray        # int64 code into phone_names
    user: np.ndarray         # int64 code into user_names
    phone_names: pa.Array    # sorted distinct phone_number_id
    user_names: pa.Array     # sorted distinct user_wa_id


@dataclass
class MessageClasses:
    """Per-message classification of the deduplicated frame (aligned with it)."""

    account: np.ndarray        # int64 index into accounts, -1 unknown
    inbound: np.ndarray        # bool
    billable: np.ndarray       # bool outbound delivered/read
    charge_ns: np.ndarray      # int64 charge instant (outbound) / sent_at (inbound); NAT_NS if none
    excluded: np.ndarray       # bool rejected with an error finding before windowing
    account_ids: pa.Array      # waba_id per account
    timezones: list[str]       # per account
    zone_of_account: np.ndarray  # int64 index into zones per account
    zones: list[str]


def classify_messages(deduped: pd.DataFrame, accounts: pd.DataFrame, quality: QualityLog,
                      dropped: np.ndarray | None = None) -> MessageClasses:
    """Billable filter and account lookup (rule book section 0, "Billable delivery").

    Findings: ``unknown_account`` (error, excluded), ``missing_delivery_time`` (delivered/read
    with neither ``delivered_at`` nor ``read_at``: error, not charged), ``missing_received_time``
    (inbound without ``sent_at``: error, ignored). Rows of ``dropped`` (duplicates merged into
    another row, see :func:`merge_duplicates`) are no messages: neither inbound nor billable, no finding.
    """
    from . import sorting

    n = len(deduped)
    account_ids = arrow_strings(accounts["waba_id"])
    if pc.count_distinct(account_ids).as_py() != len(account_ids):
        raise InputError("account listed twice", source="accounts", column="waba_id")
    account = _account_index(deduped["waba_id"], account_ids) if n else np.zeros(0, np.int64)
    delivered = _instants_ns(deduped["delivered_at"])
    read = _instants_ns(deduped["read_at"])
    sent = _instants_ns(deduped["sent_at"])
    coded = [category_parts(deduped[c]) for c in ("direction", "status")]
    buffers = [_buffers(deduped[c]) for c in ("direction", "status")]
    if all(parts is not None for parts in coded):
        # Categoricals (the reader's): the tests per category, then one compiled pass over the codes
        inbound, billable, charge, unknown, missing_time, missing_in = sorting.classify_codes(
            *coded, delivered, read, sent, account, dropped)
    elif all(b is not None for b in buffers):
        # the expressions below in one compiled pass (Arrow strings without nulls)
        inbound, billable, charge, unknown, missing_time, missing_in = sorting.classify_rows(
            *buffers, delivered, read, sent, account, dropped)
    else:
        direction = deduped["direction"]
        inbound = (direction == "inbound").to_numpy(dtype=bool)
        outbound = (direction == "outbound").to_numpy(dtype=bool)
        billable = outbound & deduped["status"].isin(("delivered", "read")).to_numpy(dtype=bool)
        charge = np.where(delivered != NAT_NS, delivered, read)
        charge = np.where(inbound, sent, np.where(billable, charge, NAT_NS))
        unknown = account < 0
        missing_time = billable & (charge == NAT_NS) & ~unknown
        missing_in = inbound & (charge == NAT_NS) & ~unknown
        if dropped is not None:
            inbound, billable, unknown, missing_time, missing_in = (
                mask & ~dropped for mask in (inbound, billable, unknown, missing_time, missing_in))
    _report(quality, deduped, unknown, "error", "unknown_account", "waba_id",
            "account not in the accounts file: message excluded")
    _report(quality, deduped, missing_time, "error", "missing_delivery_time", "delivered_at",
            "status delivered/read with neither delivered_at nor read_at: not charged")
    _report(quality, deduped, missing_in, "error", "missing_received_time", "sent_at",
            "inbound message without sent_at: ignored for the customer service window")

    zones_raw = accounts["timezone"].fillna("").astype(str).str.strip().to_numpy(dtype=object)
    timezones = [z or "UTC" for z in zones_raw]
    zones = sorted(set(timezones))
    for z in zones:
        try:
            pd.Timestamp("2000-01-01", tz=z)
        except Exception as exc:  # noqa: BLE001 - any failure means an unusable zone name
            row = timezones.index(z) + 1
            raise InputError(f"unknown time zone {z!r}", source="accounts", row=row, column="timezone") from exc
    zone_of_account = np.array([zones.index(z) for z in timezones], dtype=np.int64)
    return MessageClasses(account=account, inbound=inbound, billable=billable, charge_ns=charge,
                          excluded=unknown | missing_time | missing_in, account_ids=account_ids,
                          timezones=timezones, zone_of_account=zone_of_account, zones=zones)


def _account_index(waba: pd.Series, account_ids: pa.Array) -> np.ndarray:
    """Position of each message's ``waba_id`` in ``account_ids`` (-1 when absent)."""
    from . import sorting

    parts = category_parts(waba)
    if parts is not None:                                     # a lookup per category, gathered by code
        cats = parts[1]
        per = np.asarray(pc.fill_null(pc.index_in(cats, value_set=account_ids.cast(cats.type)), -1), dtype=np.int64)
        return per_category(waba, per, missing=-1)
    strings = arrow_strings(waba)
    waba_b, account_b = string_buffers(strings), string_buffers(account_ids)
    if waba_b is not None and account_b is not None:        # pc.index_in, compiled
        return sorting.lookup_strings(waba_b, account_b)
    return np.asarray(pc.fill_null(pc.index_in(strings, value_set=account_ids), -1), dtype=np.int64)


def _report(quality: QualityLog, frame: pd.DataFrame, mask: np.ndarray, severity: str, code: str, column: str,
            detail: str) -> None:
    pos = np.flatnonzero(mask)
    if len(pos) == 0:
        return
    quality.add_many(severity, code, source=_provenance(frame, "source", pos), row=_provenance(frame, "row", pos),
                     column=column, message_id=frame["message_id"].iloc[pos].to_numpy(dtype=object), detail=detail)


#: width of the UTC-offset table's buckets: offset changes of the time zone database fall on quarter
#: hours (UTC) in practice; :func:`_offset_table` checks every bucket and gives up otherwise
_OFFSET_BUCKET_NS = 15 * 60 * 1_000_000_000
#: an offset table of more buckets than this per zone (a span of ~30 years) is not built
_OFFSET_TABLE_MAX = 1 << 20


def local_days(t_ns: np.ndarray, zone_idx: np.ndarray, zones: list[str]) -> np.ndarray:
    """Local date (days since 1970-01-01) of each instant in its zone.

    The UTC offset of every zone is tabulated per quarter hour over the instants' span (checked to be
    constant within each quarter hour, else the zone is converted directly): one compiled pass then
    adds the offset and floors to days. Few instants over a long span are converted directly."""
    from . import sorting

    n = len(t_ns)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if all(name in ("UTC", "Etc/UTC") for name in zones):
        return np.floor_divide(t_ns, DAY_NS)
    lo, hi = int(t_ns.min()), int(t_ns.max())
    buckets = (hi - lo) // _OFFSET_BUCKET_NS + 2
    if lo == NAT_NS or buckets > _OFFSET_TABLE_MAX or n < 4 * buckets * len(zones):
        return _local_days_direct(t_ns, zone_idx, zones)
    base = lo - lo % _OFFSET_BUCKET_NS
    table = _offset_table(zones, base, buckets)
    if table is None:
        return _local_days_direct(t_ns, zone_idx, zones)
    return sorting.local_days_by_table(t_ns, zone_idx, table, base, _OFFSET_BUCKET_NS, DAY_NS)


def _offset_table(zones: list[str], base: int, buckets: int) -> np.ndarray | None:
    """``[zone, bucket]`` → UTC offset (ns) of the quarter hour starting at ``base + bucket * 15 min``;
    ``None`` when an offset changes inside a quarter hour."""
    starts = base + np.arange(buckets, dtype=np.int64) * _OFFSET_BUCKET_NS
    table = np.zeros((len(zones), buckets), dtype=np.int64)
    for z, name in enumerate(zones):
        if name in ("UTC", "Etc/UTC"):
            continue
        first, last = _utc_offsets(starts, name), _utc_offsets(starts + (_OFFSET_BUCKET_NS - 1), name)
        if not np.array_equal(first, last):
            return None
        table[z] = first
    return table


def _utc_offsets(ns: np.ndarray, zone: str) -> np.ndarray:
    """UTC offset (ns) of zone ``zone`` at each instant."""
    return pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC").tz_convert(zone).tz_localize(None).asi8 - ns


def _local_days_direct(t_ns: np.ndarray, zone_idx: np.ndarray, zones: list[str]) -> np.ndarray:
    """:func:`local_days` by converting every instant (loop over zones only)."""
    out = np.zeros(len(t_ns), dtype=np.int64)
    for z, name in enumerate(zones):
        sel = np.flatnonzero(zone_idx == z) if len(zones) > 1 else slice(None)
        ns = t_ns[sel]
        if len(ns) == 0:
            continue
        if name not in ("UTC", "Etc/UTC"):
            ns = pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC").tz_convert(name).tz_localize(None).asi8
        out[sel] = np.floor_divide(ns, DAY_NS)
    return out


def era_boundaries(zones: list[str]) -> np.ndarray:
    """``[zone, era]`` → UTC ns of 00:00 local of the *next* era's first day (MAX_NS for the last era)."""
    firsts = eras.era_start_days()
    out = np.full((len(zones), len(firsts)), MAX_NS, dtype=np.int64)
    for z, name in enumerate(zones):
        for e in range(len(firsts) - 1):
            local = pd.Timestamp(int(firsts[e + 1]) * DAY_NS)
            inst = local.tz_localize(name, nonexistent="shift_forward", ambiguous=False) if name != "UTC" \
                else local.tz_localize("UTC")
            out[z, e] = inst.tz_convert("UTC").value
    return out


def prepare_events(deduped: pd.DataFrame, classes: MessageClasses, user_codes=None) -> PreparedEvents:
    """Select inbound + billable outbound events, compute keys, local dates, regimes, and sort them.

    Sort order (rule book section 0, "Ties"): key, instant, inbound before outbound, message_id.
    Keys are factorised with sorted uniques so that the order does not depend on input order.
    ``user_codes``: ``sorted_codes(deduped["user_wa_id"])`` when the caller computed it already, or a
    future of it (a second thread): asked for once the work that does not need it is done.
    """
    from . import sorting

    usable = (classes.inbound | classes.billable) & ~classes.excluded
    rows = np.flatnonzero(usable)
    phone_all, phone_names = sorted_codes(deduped["phone_number_id"])
    attrs = _row_attributes(deduped, classes)
    if hasattr(user_codes, "result"):
        user_codes = user_codes.result()
    user_all, user_names = user_codes if user_codes is not None else sorted_codes(deduped["user_wa_id"])
    n_users = max(len(user_names), 1)
    (rows, key, t, inbound, phone, user, account, entry, template, category) = _sorted_events(
        rows, phone_all, user_all, n_users, classes.charge_ns, classes.inbound, attrs, deduped["message_id"])

    zone_idx = classes.zone_of_account[account] if len(account) else np.zeros(0, np.int64)
    day = local_days(t, zone_idx, classes.zones)
    # regime = searchsorted(regime starts, day, "right") - 1; next_boundary = bounds[zone, era of the day]
    regime, next_boundary = sorting.era_columns(day, zone_idx, eras.regime_start_days(), eras.era_start_days(),
                                                era_boundaries(classes.zones))
    return PreparedEvents(rows=rows, key=key, t=t, inbound=inbound, entry_point=entry, template=template,
                          category=category, regime=regime, next_boundary=next_boundary, local_day=day,
                          account=account, phone=phone, user=user, phone_names=phone_names, user_names=user_names)


def _buffers(column: pd.Series):
    """Offsets and bytes of an Arrow-backed string column without nulls, else ``None``."""
    arr = getattr(column.array, "_pa_array", None)
    return string_buffers(arr) if arr is not None else None


def _row_attributes(deduped: pd.DataFrame, classes: MessageClasses) -> np.ndarray:
    """Per message, packed in one int64 (:func:`.sorting.row_attributes`): ``inbound & (entry_point != "")``,
    ``~inbound & (message_kind != "free_form")``, template category code + 1 (0 when none), account."""
    coded = [category_parts(deduped[c]) for c in ("entry_point", "message_kind", "template_category")]
    if all(parts is not None for parts in coded):        # Categoricals: tests per category, one compiled pass
        from .sorting import coded_row_attributes

        return coded_row_attributes(classes.inbound, classes.account, *coded, TEMPLATE_CATEGORY_CODES)
    columns = [_buffers(deduped[c]) for c in ("entry_point", "message_kind", "template_category")]
    names = [name.encode() for name in TEMPLATE_CATEGORY_CODES]
    if all(b is not None for b in columns) and len({len(b) for b in names}) == len(names):
        from .sorting import row_attributes      # Arrow strings without nulls: one compiled pass

        return row_attributes(classes.inbound, classes.account, *columns, TEMPLATE_CATEGORY_CODES)
    from .sorting import ATTR_ACCOUNT_SHIFT, ATTR_CATEGORY_SHIFT, ATTR_ENTRY, ATTR_TEMPLATE

    inbound = classes.inbound
    entry = (deduped["entry_point"] != "").to_numpy(dtype=bool) & inbound
    template = (deduped["message_kind"] != "free_form").to_numpy(dtype=bool) & ~inbound
    cat_col = deduped["template_category"]
    category = np.full(len(deduped), -1, dtype=np.int64)
    for name, code in TEMPLATE_CATEGORY_CODES.items():
        category[(cat_col == name).to_numpy(dtype=bool)] = code
    return ((classes.account << ATTR_ACCOUNT_SHIFT) | ((category + 1) << ATTR_CATEGORY_SHIFT)
            | np.where(entry, ATTR_ENTRY, 0) | np.where(template, ATTR_TEMPLATE, 0)).astype(np.int64)


#: widest packed sort value (bits) sorted by the radix sort; wider ones use ``np.lexsort``
PACKED_SORT_BITS = 62


def _sorted_events(rows: np.ndarray, phone_all: np.ndarray, user_all: np.ndarray, n_users: int, t_all: np.ndarray,
                   inbound_all: np.ndarray, attrs: np.ndarray, message_ids: pd.Series) -> tuple:
    """Sort the events ``rows`` by (key, instant, inbound first, message_id), key = phone * n_users + user,
    and return per sorted event: row, key, instant, inbound, phone, user, account, entry point,
    template, category.

    Phone, user, instant and direction are packed into one integer (``phone | user | instant << 1 |
    outbound``, bit fields from high to low, the instant relative to the first and in the coarsest
    unit of 1 s, 1 ms, 1 us, 1 ns that is exact) and sorted by a compiled radix sort, the columns then
    decoded from the sorted values; wider than :data:`PACKED_SORT_BITS` bits, ``np.lexsort``. Runs of
    equal values are ordered by ``message_id``."""
    from . import sorting

    if len(rows) == 0:
        e = np.zeros(0, np.int64)
        b = np.zeros(0, bool)
        return e, e.copy(), e.copy(), b, e.copy(), e.copy(), e.copy(), b.copy(), b.copy(), e.copy()
    t0, t1, pmax, umax, unit = sorting.event_stats(rows, phone_all, user_all, t_all)
    user_shift = ((t1 - t0) // unit).bit_length() + 1
    phone_shift = user_shift + umax.bit_length()
    bits = phone_shift + pmax.bit_length()
    if bits <= PACKED_SORT_BITS and t0 != NAT_NS:
        rows, packed, payload = sorting.radix_sort_events(rows, phone_all, user_all, t_all, inbound_all, attrs, t0,
                                                          unit, user_shift, phone_shift, bits)
        pos, run = sorting.tied_runs(packed)
        rows = _break_ties_by_message_id(rows, pos, run, message_ids)
        return (rows, *sorting.decode_events(rows, packed, payload, attrs, t0, unit, user_shift, phone_shift,
                                             n_users))
    key = phone_all[rows] * n_users + user_all[rows]
    inbound = inbound_all[rows]
    order = np.lexsort(((~inbound).astype(np.int64), t_all[rows], key))
    rows = rows[order]
    key, t, inbound = key[order], t_all[rows], inbound[order]
    pos, run = tied_positions([key, t, inbound])
    rows = _break_ties_by_message_id(rows, pos, run, message_ids)
    a = attrs[rows]
    return (rows, key, t, inbound, phone_all[rows], user_all[rows], a >> sorting.ATTR_ACCOUNT_SHIFT,
            (a & sorting.ATTR_ENTRY) != 0, (a & sorting.ATTR_TEMPLATE) != 0,
            ((a >> sorting.ATTR_CATEGORY_SHIFT) & 63) - 1)


def _break_ties_by_message_id(rows: np.ndarray, pos: np.ndarray, run: np.ndarray, message_ids: pd.Series
                              ) -> np.ndarray:
    """Reorder the sorted rows at the tied positions ``pos`` (runs ``run`` of equal key, instant and
    direction) by ``message_id``."""
    if len(pos) == 0:
        return rows
    return order_ties(rows, pos, run, arrow_strings(message_ids.iloc[rows[pos]]))


def tied_positions(sorted_keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ascending) of rows equal to a neighbour on every one of ``sorted_keys`` (the keys in
    sorted order), and a run number per position that grows with the position."""
    n = len(sorted_keys[0])
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    same = np.ones(n - 1, dtype=bool)
    for k in sorted_keys:
        same &= k[1:] == k[:-1]
    tied = np.zeros(n, dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    pos = np.flatnonzero(tied)
    return pos, np.cumsum(np.r_[True, ~same])[pos]


def order_ties(order: np.ndarray, pos: np.ndarray, run: np.ndarray, tied_strings: pa.Array) -> np.ndarray:
    """``order`` (rows sorted by integer keys) with each run of tied positions (``pos``, run ids ``run``)
    put in order of ``tied_strings`` (the strings of those rows, aligned with ``pos``; code point order),
    then of the row number: one Arrow sort of the tied rows only."""
    if len(pos) == 0:
        return order
    rows = order[pos]
    sub = pc.sort_indices(pa.table({"run": pa.array(run), "s": tied_strings, "row": pa.array(rows)}),
                          sort_keys=[("run", "ascending"), ("s", "ascending"), ("row", "ascending")])
    order = np.array(order, dtype=np.int64)
    order[pos] = rows[np.asarray(sub, dtype=np.int64)]
    return order
