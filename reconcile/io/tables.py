"""Readers with validation for every input table of contracts.md ("Inputs").

Formats by file extension: CSV (``.csv``, ``.csv.gz``), Parquet (``.parquet``, ``.pq``), JSON
Lines (``.jsonl``, ``.ndjson``, ``.json`` and their ``.gz``); a folder or ``s3://`` prefix means
every matching file under it. Webhook bodies (JSON Lines whose records have an ``entry`` array)
go to :mod:`reconcile.io.meta_webhooks`; analytics exports (JSON with a top-level
``conversation_analytics`` / ``pricing_analytics``) to :mod:`reconcile.io.meta_analytics`;
rate cards to :mod:`reconcile.io.rate_cards`.

Every frame comes back in the in-memory shape of :mod:`reconcile.contracts` with provenance
``source`` (file or object) and ``row`` (1-based data row; the line number for JSON Lines).
A row with a problem is reported to the :class:`~reconcile.quality.QualityLog` with file, row,
column and message id; ``error`` = the row is left out, ``warning`` = used with a caveat.
A file that cannot be used at all (missing required column, truncated gzip/Parquet, text that is
not UTF-8) raises :class:`~reconcile.quality.InputError` (exit 2) naming it.

Id-like columns are always read as strings (never numbers), so ``0044…`` or 20-digit ids survive.
"""
from __future__ import annotations

import functools
import gzip
import io
import json
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..contracts import (
    ACCOUNT_COLUMNS, CATEGORIES, CURRENCIES, DIRECTIONS, ENTRY_POINTS, INVOICE_COLUMNS, MESSAGE_COLUMNS,
    MESSAGE_KINDS, MESSAGE_STATUSES, MESSAGE_TIMESTAMPS, PRICING_MODELS, PRICING_TYPES, TEMPLATE_CATEGORIES,
    WEBHOOK_EVIDENCE_COLUMNS,
)
from ..engine.buffers import code_type, read_only
from ..memory import release_unused
from ..quality import InputError, QualityLog
from . import locations
from .meta_webhooks import json_objects, read_webhook_lines

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
TABLE_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES + JSONL_SUFFIXES

#: message columns that must be present in a log file; the others default to empty
REQUIRED_MESSAGE_COLUMNS = ("message_id", "waba_id", "phone_number_id", "user_wa_id", "direction", "sent_at",
                            "status")
REQUIRED_INVOICE_COLUMNS = ("waba_id", "billing_month", "market", "pricing_model", "category", "pricing_type",
                            "quantity", "amount")
MESSAGE_OUTPUT_COLUMNS = MESSAGE_COLUMNS + WEBHOOK_EVIDENCE_COLUMNS + ["source", "row"]
INVOICE_OUTPUT_COLUMNS = INVOICE_COLUMNS + ["display_phone_number", "market_reported", "source", "row"]



@dataclass
class InputInfo:
    """One input file as recorded in ``run.json`` and the workbook's ``Run info``."""

    kind: str
    path: str
    rows: int
    sha256: str


# =========================================================================== file level
def _as_list(paths) -> list[str]:
    if paths is None:
        return []
    if isinstance(paths, (str, bytes)) or not hasattr(paths, "__iter__"):
        return [str(paths)]
    return [str(p) for p in paths]


def _expand(paths, suffixes: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for p in _as_list(paths):
        for f in locations.list_files(p, suffixes):
            if f not in out:
                out.append(f)
    return out


def _ext(path: str) -> str:
    low = path.lower()
    for s in sorted(TABLE_SUFFIXES, key=len, reverse=True):
        if low.endswith(s):
            return s
    return ""


def _decompress(data: bytes, path: str) -> bytes:
    if path.lower().endswith(".gz") or data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"not a readable gzip file ({exc})", source=path) from exc
    return data


def _text(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({_encoding_hint(data, exc.start)}): re-export it as UTF-8",
                         source=path, row=_line_of(data, exc.start)) from exc


def _encoding_hint(data: bytes, at: int) -> str:
    """What the undecodable bytes look like (a UTF-16/32 byte-order mark is named)."""
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32 LE"), (b"\x00\x00\xfe\xff", "UTF-32 BE"),
                      (b"\xff\xfe", "UTF-16 LE"), (b"\xfe\xff", "UTF-16 BE")):
        if data.startswith(bom):
            return f"{name} with a byte-order mark"
    return f"byte {at} is 0x{data[at]:02x}" if at < len(data) else f"byte {at}"


def _line_of(data: bytes, at: int) -> int | None:
    """1-based data row (the header is line 0) holding byte ``at``; None for the header/BOM."""
    line = data.count(b"\n", 0, at)
    return line if line >= 1 else None


#: longest id accepted in an id column (WhatsApp ids are < 100 characters); longer → ``oversized_value``
MAX_ID_LENGTH = 256
#: longest input value quoted in a finding's ``detail`` (longer values are clipped with their length)
MAX_QUOTED = 120


def _clip(value: str, limit: int = MAX_QUOTED) -> str:
    value = str(value)
    if len(value) <= limit:
        return value
    return f"{value[:limit // 2]}…[{len(value):,} characters]"


def _read_csv(data: bytes, path: str, quality: QualityLog | None = None) -> pd.DataFrame:
    """Every column as a string; empty cells as ""; UTF-8 (BOM tolerated) checked."""
    table = _read_csv_table(data, path, quality)
    if isinstance(table, pd.DataFrame):
        return table
    frame = _arrow_to_frame(table)
    frame["__row"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame


def _read_csv_table(data: bytes, path: str, quality: QualityLog | None = None, dictionary=()):
    """The CSV as a ``pyarrow`` table of strings (no nulls); a ragged CSV (rows of the wrong field
    count, with ``quality``) comes back as the frame of :func:`_read_ragged_csv`. Columns whose
    normalised name is in ``dictionary`` are read dictionary-encoded (same values)."""
    import csv
    import pyarrow as pa

    data = _decompress(data, path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data or data.isspace():          # (not data.strip(): a copy of the whole file)
        raise InputError("empty file (no header)", source=path)
    _text(data[:4096].rsplit(b"\n", 1)[0] if len(data) > 4096 else data, path)
    header = next(csv.reader(io.StringIO(data[:1 << 16].decode("utf-8", "ignore"), newline="")), [])
    try:
        table = _parse_csv(data, {c: (pa.dictionary(pa.int32(), pa.string()) if _normal_name(c) in dictionary
                                      else pa.string()) for c in header})
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        if "utf8" in msg.lower():
            raise InputError("not UTF-8 text: re-export it as UTF-8", source=path) from exc
        if "expected" in msg.lower() and "columns" in msg.lower() and quality is not None:
            return _read_ragged_csv(data, path, quality)
        raise InputError(f"not a readable CSV file ({msg.splitlines()[0]})", source=path) from exc
    return table


#: a CSV up to this size (one block of Arrow's reader: nothing to parse in parallel) is parsed in the calling thread
_SERIAL_CSV_BYTES = 1 << 20


def _parse_csv(data: bytes, column_types: dict):
    """``pyarrow.csv.read_csv`` over the bytes (zero-copy, no Python file calls), every cell a string.
    A small CSV is parsed in the calling thread: the reference files are read while the message log is
    decoded, which keeps Arrow's thread pool busy (a threaded parse of the 1 KB invoice waited for the
    decode). A CSV that fails is parsed again by the threaded reader, whose error text (it gives no row
    number) is the one reported."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    def parse(threads: bool):
        return pcsv.read_csv(pa.BufferReader(data), read_options=pcsv.ReadOptions(use_threads=threads),
                             parse_options=pcsv.ParseOptions(newlines_in_values=True),
                             convert_options=pcsv.ConvertOptions(column_types=column_types, strings_can_be_null=False,
                                                                 quoted_strings_can_be_null=False))
    if len(data) <= _SERIAL_CSV_BYTES:
        try:
            return parse(threads=False)
        except pa.ArrowException:
            pass
    return parse(threads=True)


def _read_ragged_csv(data: bytes, path: str, quality: QualityLog) -> pd.DataFrame:
    """Slow path for a CSV with rows of the wrong field count: those rows become errors
    ``bad_row`` (left out), the others keep their 1-based data row numbers."""
    import csv

    # newline="": a bare CR inside an unquoted field ends a record (as in the fast parser) instead of
    # making the csv module raise; the two halves then come out as ``bad_row`` findings
    reader = csv.reader(io.StringIO(_text(data, path), newline=""))
    header = next(reader, [])
    width = len(header)
    records, rows, seen = [], [], 0
    for i, rec in enumerate(reader, start=1):
        seen += bool(rec)
        if len(rec) != width:
            if not rec:
                continue
            quality.add("error", "bad_row", source=path, row=i,
                        detail=f"{len(rec)} fields where the header has {width}: row left out")
            continue
        records.append(rec)
        rows.append(i)
    frame = pd.DataFrame(records, columns=header, dtype="str") if records else \
        pd.DataFrame({c: pd.Series(dtype="str") for c in header})
    frame["__row"] = np.asarray(rows, dtype=np.int64)
    frame.attrs["records"] = seen     # rows in the file, the rejected ones included (run.json, conservation)
    return frame


def _arrow_to_frame(table) -> pd.DataFrame:
    return pd.DataFrame({name: _arrow_column_to_pandas(col) for name, col in zip(table.column_names, table.columns)})


def _arrow_column_to_pandas(col) -> pd.Series:
    """One column of a table read by Arrow: strings as ``str`` with "" for null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        col = pc.fill_null(col, "").cast(pa.large_string())
        return pd.Series(pd.arrays.ArrowStringArray(col, dtype=pd.StringDtype("pyarrow", na_value=np.nan)))
    if pa.types.is_null(t):
        return pd.Series([""] * len(col), dtype="str")
    return col.to_pandas()


def _read_parquet(data: bytes, path: str) -> pd.DataFrame:
    return _arrow_to_frame(_read_parquet_table(data, path))


def _read_parquet_table(data, path: str, dictionary=()):
    """The Parquet file (bytes, or a buffer such as a memory map: read zero-copy) as a ``pyarrow`` table;
    string columns whose normalised name is in ``dictionary`` are read dictionary-encoded (same values,
    decoded once per distinct value). ``ParquetFile.read`` reads each column whole (one chunk per column,
    per row group for dictionary columns), where ``pq.read_table`` cuts batches of 128K rows that the
    message readers would glue back together (~10 ms per 1M rows). A file it cannot read is read again by
    ``pq.read_table``, whose error text names the problem in the :class:`InputError` (as it always has)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    read_dictionary = None
    try:
        probe = pq.ParquetFile(pa.BufferReader(data))
        read_dictionary = [f.name for f in probe.schema_arrow if _normal_name(f.name) in dictionary
                           and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))] or None
        return pq.ParquetFile(pa.BufferReader(data), metadata=probe.metadata, read_dictionary=read_dictionary).read()
    except (pa.ArrowInvalid, pa.ArrowException, OSError):
        pass
    try:
        return pq.read_table(pa.BufferReader(data), read_dictionary=read_dictionary)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({str(exc).splitlines()[0]})", source=path) from exc


def _split_lines(data: bytes, path: str) -> list[str]:
    """Lines split on ``\n`` only (a trailing ``\r`` dropped): ``str.splitlines`` would also split
    inside JSON strings at U+2028, U+0085, form feeds…, which JSON allows unescaped."""
    text = _text(_decompress(data, path), path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _first_record(lines: list[str], path: str = ""):
    """The first line that is a JSON object (lines that are not JSON are skipped here and reported
    as ``bad_json`` by the reader). A file with lines but no JSON object at all is unusable:
    :class:`InputError` naming its first line."""
    first_line = None
    for i, line in enumerate(lines, start=1):
        if line.strip():
            first_line = first_line or i
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                return rec
    if first_line is not None:
        raise InputError(f"no line of this JSON Lines file is a JSON object (line {first_line} starts "
                         f"{_clip(lines[first_line - 1].strip(), 40)!r})", source=path, row=first_line)
    return None


def _read_jsonl_rows(lines: list[str], path: str, quality: QualityLog) -> pd.DataFrame:
    """Rows of a JSON Lines table (one object a line); a line that is not a JSON object → ``bad_json``."""
    seen = sum(1 for line in lines if line.strip())
    records, rows = [], []
    for i, rec in json_objects(lines, path, quality):
        records.append(rec)
        rows.append(i)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    for c in frame.columns:
        if frame[c].dtype == object or str(frame[c].dtype) in ("str", "string"):
            frame[c] = frame[c].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    frame["__row"] = np.asarray(rows, dtype=np.int64)
    frame.attrs["records"] = seen     # rows in the file, the rejected ones included (run.json, conservation)
    return frame


# =========================================================================== value helpers
def _strings(values: pd.Series) -> pd.Series:
    """Any column → stripped strings with "" for empty (numbers rendered without ``.0``)."""
    if values.dtype.kind in "iu":
        return values.astype("int64").astype(str).astype("str")
    if values.dtype.kind == "f":
        out = pd.Series(np.where(values.isna(), "", values.map(lambda v: repr(v))), index=values.index, dtype="str")
        integral = values.notna() & (values == np.floor(values.fillna(0)))
        out[integral] = values[integral].astype("int64").astype(str)
        return out
    if values.dtype.kind == "b":
        return values.map({True: "true", False: "false"}).astype("str").fillna("")
    if values.dtype.kind == "M":
        return values.astype(str).replace("NaT", "").astype("str")
    return values.astype("str").fillna("").str.strip()


def _enum(values: pd.Series) -> pd.Series:
    """Normalise an enum spelling: trimmed, lower case, runs of spaces and hyphens → ``_``.
    Enum columns hold few distinct values: each is normalised once and mapped back."""
    codes, uniques = pd.factorize(values.astype("str").fillna(""), use_na_sentinel=False)
    fixed = np.array([_normalise_enum(str(u)) for u in uniques] + [""], dtype=object)
    from ..rules.markets import take_strings

    return take_strings(fixed, np.asarray(codes)).set_axis(values.index)


def parse_instants(values: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse a timestamp column (contracts.md "Timestamps"), vectorised.

    ISO 8601 with an offset or ``Z``; integer epoch seconds; 13-digit integers as epoch
    milliseconds; typed timestamps (Parquet) as they are. An ISO value without an offset is read
    as UTC. Returns (``datetime64[ns, UTC]`` values with NaT for empty/bad, ``bad`` mask of
    non-empty values that could not be parsed, ``naive`` mask of values read as UTC without an
    offset).

    Texts: the common shapes (ISO with ``Z``/``±hh:mm`` or none, epoch integers) are parsed by one
    compiled pass over the Arrow buffers (:mod:`reconcile.io.instants`); every other value goes to the
    pandas route (:func:`_parse_instant_texts`), whose answer is the contract on every edge.
    """
    n = len(values)
    index = values.index
    if values.dtype.kind == "M":
        if getattr(values.dt, "tz", None) is None:
            naive = values.notna().to_numpy()
            out = values.dt.tz_localize("UTC")
        else:
            naive = np.zeros(n, dtype=bool)
            out = values.dt.tz_convert("UTC")
        return out.astype("datetime64[ns, UTC]"), np.zeros(n, dtype=bool), naive
    if values.dtype.kind in "iuf":
        num = values.astype("float64").to_numpy()
        with np.errstate(invalid="ignore"):
            ms = np.abs(num) >= 1e12
        ns = np.where(ms, num * 1e6, num * 1e9)
        bad = ~np.isnan(num) & (np.abs(ns) > 9.2e18)
        ns = np.where(np.isnan(num) | bad, np.nan, ns)
        out = pd.to_datetime(pd.Series(ns, index=index), unit="ns", utc=True, errors="coerce")
        return out.astype("datetime64[ns, UTC]"), bad, np.zeros(n, dtype=bool)

    from . import instants

    text = values.astype("str").fillna("")
    ns, status, fine = _scan_texts(text)
    naive = status == instants.NAIVE
    bad = np.zeros(n, dtype=bool)
    other = np.flatnonzero(status == instants.OTHER)
    if len(other):                  # the shapes the compiled scan leaves to pandas (and every junk value)
        rest = text.iloc[other].reset_index(drop=True)
        if fine:                    # read in the unit pandas would choose for the whole column (scan_column)
            rest = pd.concat([rest, pd.Series([_NS_PRECISION_ISO], dtype="str")], ignore_index=True)
        rest_ns, rest_bad, rest_naive = _parse_instant_texts(rest)
        k = len(other)
        ns[other], bad[other], naive[other] = rest_ns[:k], rest_bad[:k], rest_naive[:k]
    out = pd.Series(pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC"), index=index)
    return out, bad, naive


#: an instant with nanosecond digits: makes ``pd.to_datetime(format="ISO8601")`` read a column in nanoseconds
_NS_PRECISION_ISO = "1970-01-01T00:00:00.000000001Z"


def _scan_texts(text: pd.Series) -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`reconcile.io.instants.scan_column` over a ``str`` Series without nulls (its Arrow array, or
    one built from its values): per row the instant in nanoseconds (NaT unless parsed) and the status, and
    whether a parsed value has nanosecond digits."""
    import pyarrow as pa

    from .instants import scan_column

    arr = getattr(text.array, "_pa_array", None)
    if arr is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pa.array(text.to_numpy(dtype=object), pa.large_string())
    return scan_column(arr)


def _parse_instant_texts(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pandas route of :func:`parse_instants` for texts (``str`` without nulls): the contract for every
    value the compiled scan does not parse (regex for epoch integers, ``pd.to_datetime(format="ISO8601")``).
    Returns (UTC nanoseconds as int64, NaT for empty/bad; ``bad`` mask; ``naive`` mask)."""
    n = len(values)
    text = values.str.strip()
    empty = (text == "").to_numpy()
    numeric = text.str.fullmatch(r"-?\d{1,13}").fillna(False).to_numpy(dtype=bool)
    result = np.full(n, _NAT_NS, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    naive = np.zeros(n, dtype=bool)
    if numeric.any():
        digits = text[numeric]
        ints = digits.astype("int64").to_numpy()
        is_ms = digits.str.lstrip("-").str.len().to_numpy() == 13
        factor = np.where(is_ms, 1_000_000, 1_000_000_000)
        over = np.abs(ints) > np.iinfo(np.int64).max // factor          # beyond what nanoseconds hold
        result[numeric] = np.where(over, _NAT_NS, ints * factor)
        bad[numeric] = over
    # ISO 8601 starts with a four-digit year (pandas would also read "now", "today" as the clock)
    iso = ~empty & ~numeric & text.str.match(r"\d{4}").fillna(False).to_numpy(dtype=bool)
    bad |= ~empty & ~numeric & ~iso
    if iso.any():
        sub = text[iso]
        parsed_ns, out_of_range = _iso_nanoseconds(pd.to_datetime(sub, format="ISO8601", utc=True, errors="coerce"))
        result[iso] = parsed_ns
        bad[iso] = parsed_ns == _NAT_NS
        naive[iso] = ~sub.str.contains(_ISO_OFFSET.pattern, regex=True).fillna(False).to_numpy(dtype=bool) \
            & (parsed_ns != _NAT_NS)
    return result, bad, naive


_NAT_NS = np.iinfo(np.int64).min
#: an ISO value states its offset after a time of day (``T08:39:01Z``, ``08:39+05:30``): a date alone
#: (``2025-07-09``) has none, whatever its last digits look like
_ISO_OFFSET = re.compile(r"[T ]\d{2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$")


def _iso_nanoseconds(parsed: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parsed UTC instants (any unit pandas chose) as int64 nanoseconds, NaT (int64 min) for unparsed
    values and for values beyond the nanosecond range (years before 1677 or after 2262, which
    pandas holds in microseconds): those are flagged, not converted with an overflow error."""
    values = parsed.dt.tz_localize(None).to_numpy()
    unit = np.datetime_data(values.dtype)[0]
    factor = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[unit]
    raw = values.view(np.int64)
    missing = np.isnat(values)
    limit = np.iinfo(np.int64).max // factor
    over = ~missing & ((raw > limit) | (raw < -limit))
    return np.where(missing | over, _NAT_NS, raw * np.where(over, 0, factor)), over


def _report(quality: QualityLog, severity: str, code: str, frame: pd.DataFrame, mask: np.ndarray, column: str,
            detail, id_column: str | None = "message_id") -> None:
    if not mask.any():
        return
    sub = frame[mask]
    if not isinstance(detail, str):
        detail = np.asarray(detail, dtype=object)[mask]
    quality.add_many(severity, code, source=sub["source"].to_numpy(dtype=object),
                     row=sub["row"].to_numpy(dtype=np.int64), column=column,
                     message_id=(sub[id_column].to_numpy(dtype=object) if id_column else None),
                     detail=detail)


def _require(frame: pd.DataFrame, required, path: str) -> None:
    for col in required:
        if col not in frame.columns:
            raise InputError("missing required column", source=path, column=col)


def _normal_name(column) -> str:
    return str(column).strip().lstrip("\ufeff").strip().lower()


def _normalise_header(frame: pd.DataFrame) -> pd.DataFrame:
    frame.columns = [_normal_name(c) for c in frame.columns]
    return frame


def _extra_columns(frame: pd.DataFrame, known, path: str, quality: QualityLog) -> None:
    for c in frame.columns:
        if c not in known and not c.startswith("__"):
            quality.add("warning", "extra_column", source=path, column=c,
                        detail="column not in the contract: ignored")


# =========================================================================== messages
_CATEGORY_SPELLINGS = {
    "marketing_lite": "marketing", "authentication_international": "authentication", "service": "",
    "user_initiated": "", "business_initiated": "", "referral_conversion": "", "free_entry_point": "",
}


def read_messages(paths, quality: QualityLog, *, accounts: pd.DataFrame | None = None
                  ) -> tuple[pd.DataFrame, list[InputInfo]]:
    """Read message logs (CSV, Parquet, JSON Lines, webhook JSON Lines) into one frame.

    Columns: ``MESSAGE_COLUMNS`` + ``WEBHOOK_EVIDENCE_COLUMNS`` (empty for plain logs) + ``source``,
    ``row``. Findings (error = row left out): ``bad_timestamp``, ``unknown_direction``,
    ``unknown_status``, ``unknown_message_kind``, ``unknown_template_category``,
    ``unknown_entry_point``, ``empty_message_id``, ``unknown_account``, ``bad_json``;
    warnings ``timestamp_without_offset``, ``extra_column``. Duplicated ids are all kept (the
    engine's dedupe merges or rejects them).

    CSV and Parquet files stay ``pyarrow`` tables until the end: the few-valued columns
    (``_CODED_MESSAGE_COLUMNS``) are read dictionary-encoded and normalised and checked on their
    distinct values; each column becomes a pandas column once, for the rows kept.
    """

    frames, infos = [], []
    for path in _expand(paths, TABLE_SUFFIXES):
        ext = _ext(path)
        # Parquet is read through a buffer: a local file is mapped, not copied into bytes
        data = locations.map_bytes(path) if ext in PARQUET_SUFFIXES else locations.read_bytes(path)
        lines = None
        if ext not in CSV_SUFFIXES and ext not in PARQUET_SUFFIXES:
            lines = _split_lines(data, path)
            first = _first_record(lines, path)
            if isinstance(first, dict) and isinstance(first.get("entry"), list):
                part = read_webhook_lines(lines, path, quality)
                part = _validate_messages(part, path, quality, accounts, webhook=True)
                frames.append(part)
                infos.append(InputInfo("messages", path, len(lines), _sha256(data)))
                continue
        digest = _hasher().submit(_sha256, data)   # hashlib releases the GIL: hashed while the file is parsed
        if ext in CSV_SUFFIXES:
            raw = _read_csv_table(data, path, quality, dictionary=_CODED_MESSAGE_COLUMNS)
        elif ext in PARQUET_SUFFIXES:
            raw = _read_parquet_table(data, path, dictionary=_CODED_MESSAGE_COLUMNS)
        else:
            raw = _read_jsonl_rows(lines, path, quality)
        n_rows = int(raw.attrs.get("records", len(raw))) if isinstance(raw, pd.DataFrame) else raw.num_rows
        digest = digest.result()
        del data, lines                  # peak memory: the file's bytes and raw table go before validating
        part = _messages_from_raw(raw, path, quality)
        del raw
        release_unused()
        part = _validate_messages(part, path, quality, accounts)
        frames.append(part)
        infos.append(InputInfo("messages", path, n_rows, digest))
    if not frames:
        return _empty_messages(), infos
    if len(frames) > 1:      # one category list per column for every file, so that concat keeps the codes
        for c in ["source", *_CODED_MESSAGE_COLUMNS]:
            if c in frames[0].columns and isinstance(frames[0][c].dtype, pd.CategoricalDtype):
                union = pd.CategoricalDtype(pd.Index(list(dict.fromkeys(v for f in frames for v in f[c].cat.categories)),
                                                     dtype="str"))
                frames = [f.assign(**{c: f[c].astype(union)}) for f in frames]
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    del frames
    release_unused()
    return out[MESSAGE_OUTPUT_COLUMNS], infos


@functools.lru_cache(maxsize=1)
def _hasher() -> ThreadPoolExecutor:
    """The thread that hashes message files while they are parsed, started once per process: starting a
    thread per file waits for the new thread to take the GIL (up to the 5 ms switch interval while the
    reference files are read in the other thread). A forked child starts its own."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile-sha256")


os.register_at_fork(after_in_child=_hasher.cache_clear)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _empty_messages() -> pd.DataFrame:
    cols = {c: pd.Series(pd.Categorical([], categories=pd.Index([], dtype="str"))) if c in _CODED_MESSAGE_COLUMNS
            else pd.Series(dtype="str") for c in MESSAGE_OUTPUT_COLUMNS}
    for c in MESSAGE_TIMESTAMPS:
        cols[c] = pd.Series(dtype="datetime64[ns, UTC]")
    cols["row"] = pd.Series(dtype="int64")
    cols["source"] = pd.Series(pd.Categorical([]))
    return pd.DataFrame(cols)


#: message columns with few distinct values: read dictionary-encoded, normalised and checked per distinct value
_CODED_MESSAGE_COLUMNS = frozenset({
    "waba_id", "phone_number_id", "direction", "status", "message_kind", "template_category", "entry_point",
    "pricing_billable", "pricing_model_reported", "pricing_category_reported", "pricing_type_reported"})
_ENUM_COLUMNS = ("direction", "status", "message_kind", "template_category", "entry_point")


class _Coded:
    """A string column as ``values[codes]``: ``codes`` a numpy integer array (one per row), ``values`` a
    ``pyarrow`` large_string array without nulls (may repeat a value)."""

    __slots__ = ("codes", "values")

    def __init__(self, codes: np.ndarray, values):
        self.codes = codes
        self.values = values

    def map_values(self, fn) -> "_Coded":
        import pyarrow as pa

        return _Coded(self.codes, pa.array([fn(v) for v in self.values.to_pylist()], pa.large_string()))

    def rows(self, per_value: np.ndarray) -> np.ndarray:
        """Per-row view of a per-value mask or number."""
        per_value = np.asarray(per_value)
        if len(per_value) and (per_value == per_value[0]).all():
            return np.full(len(self.codes), per_value[0], dtype=per_value.dtype)
        return np.take(per_value, self.codes)


@dataclass
class _MessageColumns:
    """One message file between reading and validation: ``text`` maps a column to a trimmed
    ``pyarrow`` string ChunkedArray without nulls, a :class:`_Coded`, or None (absent: ""); ``times``
    maps a timestamp column to a ``pyarrow`` timestamp ChunkedArray, a pandas Series for
    :func:`parse_instants`, or None (absent); ``source`` holds per-row sources (webhook frames)
    or None (every row from ``path``)."""

    n: int
    text: dict
    times: dict
    rows: np.ndarray
    source: pd.Series | None = None


def _messages_from_raw(raw, path: str, quality: QualityLog) -> _MessageColumns:
    """A message table as read (``pyarrow`` table for CSV/Parquet, pandas frame for JSON Lines and
    ragged CSV) → trimmed string columns ("" for empty), raw timestamps, 1-based rows."""
    import pyarrow as pa

    if isinstance(raw, pd.DataFrame):
        raw = _normalise_header(raw)
        names = list(raw.columns)
        n = len(raw)
        rows = raw["__row"].to_numpy(dtype=np.int64)
    else:
        raw = raw.rename_columns([_normal_name(c) for c in raw.column_names])
        names = raw.column_names
        n = raw.num_rows
        rows = np.arange(1, n + 1, dtype=np.int64)
    header = pd.DataFrame(columns=names)
    _require(header, REQUIRED_MESSAGE_COLUMNS, path)
    _extra_columns(header, set(MESSAGE_COLUMNS) | set(WEBHOOK_EVIDENCE_COLUMNS) | {"source", "row"}, path, quality)
    text, times = {}, {}
    for c in MESSAGE_COLUMNS + WEBHOOK_EVIDENCE_COLUMNS:
        if c not in names:
            (times if c in MESSAGE_TIMESTAMPS else text)[c] = None
            continue
        col = raw[c]
        if c in MESSAGE_TIMESTAMPS:      # parsed in validation; typed Parquet timestamps stay Arrow
            typed = isinstance(col, pd.Series) or pa.types.is_timestamp(col.type)
            times[c] = col if typed else _arrow_column_to_pandas(col)
            continue
        if isinstance(col, pd.Series):
            col = _arrow_strings(_strings(col))
        elif pa.types.is_null(col.type):
            col = None
        elif _is_arrow_text(col.type):
            col = _coded(col, trim=True) if c in _CODED_MESSAGE_COLUMNS else _trimmed(col)
        else:                   # numbers, booleans, dates: rendered as the pandas reader does
            col = _arrow_strings(_strings(_arrow_column_to_pandas(col)))
        if col is not None and c in _CODED_MESSAGE_COLUMNS and not isinstance(col, _Coded):
            col = _coded(col)
        text[c] = col
    return _MessageColumns(n, text, times, rows)


def _columns_from_frame(frame: pd.DataFrame) -> _MessageColumns:
    """A frame of message columns (webhook bodies) as :class:`_MessageColumns`, values as they are."""
    text, times = {}, {}
    for c in MESSAGE_COLUMNS + WEBHOOK_EVIDENCE_COLUMNS:
        if c in MESSAGE_TIMESTAMPS:
            times[c] = frame[c]
        else:
            col = _arrow_strings(frame[c].astype("str").fillna(""))
            text[c] = _coded(col) if c in _CODED_MESSAGE_COLUMNS else col
    return _MessageColumns(len(frame), text, times, frame["row"].to_numpy(dtype=np.int64),
                           source=frame["source"].reset_index(drop=True))


def _is_arrow_text(t) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _arrow_strings(values: pd.Series):
    """The ``pyarrow`` ChunkedArray under a ``str`` Series."""
    import pyarrow as pa

    arr = getattr(values.array, "_pa_array", None)
    if arr is None:
        arr = pa.chunked_array([pa.array(values.to_numpy(dtype=object), pa.large_string())])
    return arr


def _trimmed(col):
    """A string ChunkedArray with "" for null and surrounding whitespace removed (``str.strip``:
    Arrow's ``utf8_trim_whitespace``; skipped when no value can need it)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if col.null_count:
        col = pc.fill_null(col, "")
    return pc.utf8_trim_whitespace(col) if _maybe_untrimmed(col) else col


def _maybe_untrimmed(col) -> bool:
    """False when no value can start or end with whitespace: every byte of the data is printable
    ASCII (whitespace is <= 0x20 in ASCII, and starts/ends with bytes >= 0x80 otherwise). One compiled
    pass per data buffer (:func:`~reconcile.io.instants.byte_range`)."""
    from reconcile.io import instants

    for ch in col.chunks:
        data = _value_bytes(ch)
        if len(data) == 0:
            continue
        lo, hi = instants.byte_range(data)
        if lo <= 0x20 or hi >= 0x80:
            return True
    return False


def _value_bytes(ch) -> np.ndarray:
    """The bytes of the values of one Arrow string array (its slice of the data buffer, which Parquet
    chunks share: each chunk's buffer is the whole column's), a read-only uint8 view."""
    import pyarrow as pa

    buffers = ch.buffers()
    if len(ch) == 0 or buffers[2] is None or buffers[2].size == 0:
        return np.zeros(0, dtype=np.uint8)
    width = np.int64 if pa.types.is_large_string(ch.type) or pa.types.is_large_binary(ch.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=width)
    start, end = int(offsets[ch.offset]), int(offsets[ch.offset + len(ch)])
    return read_only(np.frombuffer(buffers[2], dtype=np.uint8)[start:end])


def _coded(col, trim: bool = False) -> _Coded:
    """A string ChunkedArray (plain or dictionary) → :class:`_Coded` (null → ""; ``trim``: values
    without surrounding whitespace)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from reconcile.io import instants

    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    dictionaries, indices = [], []
    for ch in col.chunks:                  # dictionaries stay in their type: cast once, after merging
        dictionary = ch.dictionary
        if dictionary.null_count:
            dictionary = pc.fill_null(dictionary, "")
        idx = ch.indices
        if idx.null_count:                       # a null row → an extra "" value
            idx = pc.fill_null(idx, len(dictionary))
            dictionary = pa.concat_arrays([dictionary, pa.array([""], dictionary.type)])
        dictionaries.append(dictionary)
        indices.append(idx.to_numpy(zero_copy_only=False))
    if not dictionaries:
        values = pa.array([""], pa.large_string())
        codes = np.zeros(0, dtype=np.int8)
    else:
        if all(d.equals(dictionaries[0]) for d in dictionaries[1:]):   # one dictionary for every chunk
            values = dictionaries[0]
            remap = np.arange(len(values))
            starts = [0] * len(dictionaries)
        else:   # a dictionary per chunk (Parquet batches, CSV blocks): one list of the distinct values
            encoded = pc.dictionary_encode(pa.concat_arrays(dictionaries))
            remap = encoded.indices.to_numpy(zero_copy_only=False)
            values = encoded.dictionary
            starts = np.cumsum([0] + [len(d) for d in dictionaries[:-1]]).tolist()
        codes = np.empty(sum(len(i) for i in indices), dtype=code_type(len(values)))
        remap = remap.astype(codes.dtype)
        pos = 0
        for idx, dictionary, start in zip(indices, dictionaries, starts):
            part = codes[pos:pos + len(idx)]
            table = remap[start:start + len(dictionary)]      # chunk index → code
            if codes.dtype.itemsize <= 2 and idx.dtype == np.int32:      # one compiled gather (np.take: ~5x slower)
                instants.remap_codes(read_only(idx), read_only(table), part)
            else:
                np.take(table, idx, out=part, mode="clip")
            pos += len(idx)
    if not pa.types.is_large_string(values.type):
        values = values.cast(pa.large_string())
    if trim:
        values = pc.utf8_trim_whitespace(values)
    return _Coded(codes, values)


def _text_len(col, chars: bool = False) -> np.ndarray:
    """Per-row byte length (or character length with ``chars``) of a text column."""
    import pyarrow.compute as pc

    length = pc.utf8_length if chars else pc.binary_length
    if col is None:
        return None
    if isinstance(col, _Coded):
        return col.rows(length(col.values).to_numpy(zero_copy_only=False).astype(np.int64))
    return length(col).to_numpy().astype(np.int64, copy=False)


def _length_bounds(col) -> tuple[int, int] | None:
    """``(shortest, longest)`` byte length bounding every row of a text column: no row is shorter or
    longer (for a :class:`_Coded` column the bounds of its values, some perhaps on no row); None when
    not known cheaply (nulls). One compiled pass over the offsets (:func:`~reconcile.io.instants.length_range`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from reconcile.io import instants

    if col is None:
        return None
    if isinstance(col, _Coded):
        if len(col.values) == 0 or col.values.null_count:
            return None
        lengths = pc.binary_length(col.values).to_numpy(zero_copy_only=False)
        return int(lengths.min()), int(lengths.max())
    lo = hi = None
    for ch in col.chunks:
        k = len(ch)
        if k == 0:
            continue
        if ch.null_count:
            return None
        width = np.int64 if pa.types.is_large_string(ch.type) or pa.types.is_large_binary(ch.type) else np.int32
        offsets = read_only(np.frombuffer(ch.buffers()[1], dtype=width)[ch.offset:ch.offset + k + 1])
        a, b = instants.length_range(offsets)
        lo = int(a) if lo is None else min(lo, int(a))
        hi = int(b) if hi is None else max(hi, int(b))
    return (0, 0) if lo is None else (lo, hi)


def _text_at(col, idx: np.ndarray) -> list:
    """Values of a text column at rows ``idx``."""
    import pyarrow as pa

    if col is None:
        return [""] * len(idx)
    if isinstance(col, _Coded):
        return col.values.take(pa.array(col.codes[idx])).to_pylist()
    return col.take(pa.array(np.asarray(idx, dtype=np.int64))).to_pylist()


def _text_in(col, allowed) -> np.ndarray:
    """Per-row mask: value is one of ``allowed``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value_set = pa.array(list(allowed), pa.large_string())
    if isinstance(col, _Coded):
        return col.rows(pc.is_in(col.values, value_set=value_set).to_numpy(zero_copy_only=False))
    return pc.is_in(col, value_set=value_set.cast(col.type)).to_numpy(zero_copy_only=False)


def _all_in(col, allowed) -> bool:
    """True when every row of a :class:`_Coded` column is one of ``allowed`` (all of its values are); False
    when not known so cheaply (callers then build the per-row mask)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(col, _Coded):
        return False
    found = pc.is_in(col.values, value_set=pa.array(list(allowed), pa.large_string()))
    return found.null_count == 0 and pc.all(found).as_py() is True


def _has_any_byte(col, chars: bytes) -> bool:
    """Whether any of the bytes ``chars`` occurs in the values' bytes of ``col`` (may say yes for the
    bytes under a null: callers then do the exact, slower work)."""
    from reconcile.io import instants

    for ch in col.chunks:
        data = _value_bytes(ch)
        if len(data) == 0:
            continue
        lo, hi = instants.byte_range(data)          # one compiled pass: usually no byte in range
        if lo > max(chars) or hi < min(chars):
            continue
        for c in chars:
            if (data == c).any():
                return True
    return False


def _digits_only_arrow(col):
    """User numbers: drop a leading ``+`` and spaces (only when some value has them)."""
    import pyarrow.compute as pc

    if isinstance(col, _Coded):
        return col.map_values(lambda v: v.replace("+", "").replace(" ", ""))
    if _has_any_byte(col, b"+ "):
        col = pc.replace_substring(pc.replace_substring(col, "+", ""), " ", "")
    return col


def _normalise_enum(value: str) -> str:
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def _text_output(col, n: int, keep: np.ndarray | None, categorical: bool = False) -> pd.Series:
    """A text column as a pandas ``str`` Series of one contiguous large_string array, rows ``keep``;
    with ``categorical`` (the few-valued columns, :data:`_CODED_MESSAGE_COLUMNS`) a Categorical
    (:func:`_categorical_output`)."""
    import pyarrow as pa

    if categorical:
        if not isinstance(col, _Coded):
            col = _coded(col) if col is not None else _Coded(np.zeros(n, dtype=np.int8), pa.array([""], pa.large_string()))
        return _categorical_output(col, keep)
    if col is None:
        k = n if keep is None else int(keep.sum())
        arr = pa.Array.from_buffers(pa.large_string(), k, [None, pa.py_buffer(_lazy_zeros(k + 1)), pa.py_buffer(b"")])
    elif isinstance(col, _Coded):
        codes = col.codes if keep is None else col.codes[keep]
        if len(col.values) == 1 or (len(codes) and (codes == codes[0]).all()):
            value = col.values[int(codes[0])].as_py() if len(codes) else ""
            arr = _constant_strings(value, len(codes), None).array._pa_array.chunk(0)
        else:
            arr = _fixed_width_take(col.values, codes)
            if arr is None:
                arr = col.values.take(pa.array(codes))
    else:
        if keep is not None:
            col = col.filter(pa.array(keep))
        arr = _concat_strings(col)
        if arr is None:
            arr = col.cast(pa.large_string())
            arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return pd.Series(pd.arrays.ArrowStringArray(arr, dtype=pd.StringDtype("pyarrow", na_value=np.nan)), copy=False)


def _lazy_zeros(n: int) -> np.ndarray:
    """``n`` int64 zeros. From 1 MiB on, in an anonymous mapping of their own: its pages are the kernel's
    zero page until written, so the offsets of an absent column (``""`` on every row; the engine drops
    such columns unread) cost nothing, where ``np.zeros`` from a reused heap writes every byte."""
    import mmap

    if n * 8 < 1 << 20:
        return np.zeros(n, dtype=np.int64)
    return np.frombuffer(mmap.mmap(-1, n * 8), dtype=np.int64)


def _concat_strings(col):
    """The chunks of a string ChunkedArray without nulls as one large_string array, its offsets and bytes
    written once (``cast`` + ``combine_chunks`` write the offsets twice); None for other columns."""
    import pyarrow as pa

    chunks = [ch for ch in col.chunks if len(ch)]
    if len(chunks) < 2 or any(ch.null_count or not (pa.types.is_string(ch.type) or pa.types.is_large_string(ch.type))
                              for ch in chunks):
        return None
    n = sum(len(ch) for ch in chunks)
    spans = []
    for ch in chunks:
        buffers = ch.buffers()
        width = np.int64 if pa.types.is_large_string(ch.type) else np.int32
        offsets = np.frombuffer(buffers[1], dtype=width)[ch.offset:ch.offset + len(ch) + 1]
        data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
        spans.append((offsets, data))
    total = sum(int(o[-1]) - int(o[0]) for o, _ in spans)
    out_offsets = np.empty(n + 1, dtype=np.int64)
    out_data = np.empty(total, dtype=np.uint8)
    pos = base = 0
    for offsets, data in spans:
        k = len(offsets) - 1
        start, end = int(offsets[0]), int(offsets[-1])
        np.add(offsets[:k], base - start, out=out_offsets[pos:pos + k], casting="unsafe")
        out_data[base:base + end - start] = data[start:end]
        pos += k
        base += end - start
    out_offsets[n] = base
    return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(out_offsets), pa.py_buffer(out_data)])


def _categorical_output(col: _Coded, keep: np.ndarray | None) -> pd.Series:
    """A :class:`_Coded` column as a pandas Categorical of rows ``keep``: the distinct values, in order of
    their first code (normalising spellings may have made two values equal), ``""`` as a value like any
    other (never NaN). A category may occur in no row (e.g. only on rows left out). The engine works on
    the codes; no per-row strings are built."""
    import pyarrow.compute as pc

    codes = col.codes if keep is None else col.codes[keep]
    encoded = pc.dictionary_encode(col.values)             # equal values after normalising → one code
    remap = encoded.indices.to_numpy(zero_copy_only=False)
    categories = encoded.dictionary
    if not np.array_equal(remap, np.arange(len(remap))):
        codes = remap.astype(code_type(len(categories)))[codes]
    if not codes.flags.writeable:               # a view of Arrow's indices: the frame owns its codes
        codes = codes.copy()
    return pd.Series(pd.Categorical.from_codes(       # codes index the values: nothing to validate
        codes, dtype=pd.CategoricalDtype(pd.Index(pd.array(categories, dtype="str"))), validate=False), copy=False)


def _fixed_width_take(values, codes: np.ndarray):
    """``values.take(codes)`` when every value has the same (non-zero) byte length, gathered as
    fixed-width rows by numpy (ids: several times faster than Arrow's take); else None."""
    import pyarrow as pa

    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset:values.offset + len(values) + 1]
    width = int(offsets[1] - offsets[0]) if len(values) else 0
    if width == 0 or not (np.diff(offsets) == width).all():
        return None
    table = np.frombuffer(values.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(len(values), width)
    data = np.take(table, codes, axis=0)
    out_offsets = np.arange(0, (len(codes) + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), len(codes), [None, pa.py_buffer(out_offsets), pa.py_buffer(data)])


_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _arrow_instants(col):
    """A ``pyarrow`` timestamp column → (``datetime64[ns, UTC]`` Series, naive mask or None,
    out-of-range mask or None, out-of-range values as ``"<n> <unit>"`` texts), the masks as
    :func:`parse_instants` gives them (a naive timestamp is read as UTC; None: no row). A value outside
    what nanoseconds hold (years 1677-2262) is NaT and flagged out of range: the caller reports it as
    ``bad_timestamp`` instead of failing the run. Each chunk is one compiled pass
    (:func:`~reconcile.io.instants.scale_timestamps`: values, validity bitmap, unit, range)."""
    from reconcile.io import instants

    factor = _NS_PER_UNIT[col.type.unit]
    limit = np.iinfo(np.int64).max // factor
    n = len(col)
    out = np.empty(n, dtype=np.int64)
    naive = np.empty(n, dtype=bool) if col.type.tz is None else None
    scratch = np.empty(1, dtype=bool)          # ``valid`` of tz-aware columns: not written
    over = None
    over_text: list[str] = []
    no_bitmap = read_only(np.zeros(1, dtype=np.uint8))
    pos = 0
    for ch in col.chunks:
        k = len(ch)
        if k == 0:
            continue
        buffers = ch.buffers()
        values = read_only(np.frombuffer(buffers[1], dtype=np.int64)[ch.offset:ch.offset + k])
        nulls = ch.null_count > 0
        bitmap = read_only(np.frombuffer(buffers[0], dtype=np.uint8)) if nulls else no_bitmap
        far = instants.scale_timestamps(values, bitmap, ch.offset, nulls, factor, limit, out[pos:pos + k],
                                        scratch if naive is None else naive[pos:pos + k], naive is not None)
        if far:                      # rare: the rows out of range, as numpy finds them
            if over is None:
                over = np.zeros(n, dtype=bool)
            part = (values > limit) | (values < -limit)
            if nulls:
                part &= ch.is_valid().to_numpy(zero_copy_only=False)
            over[pos:pos + k] = part
            over_text += [f"{v} {col.type.unit}" for v in values[part].tolist()]
        pos += k
    return _utc_series(out), naive, over, over_text


def _utc_series(ns: np.ndarray) -> pd.Series:
    """A ``datetime64[ns, UTC]`` Series over the int64 nanoseconds ``ns`` (NaT: int64 min), without a copy."""
    try:
        values = pd.arrays.DatetimeArray._simple_new(ns.view("M8[ns]"), dtype=pd.DatetimeTZDtype("ns", "UTC"))
    except AttributeError:                   # a pandas without the constructor: the public, copying route
        return pd.Series(ns.view("datetime64[ns]"), dtype="datetime64[ns, UTC]")
    return pd.Series(values, copy=False)


def _source_codes(path: str, n: int) -> pd.Series:
    """The ``source`` provenance column of one file: a Categorical with one code per row (the path is
    stored once, not ``n`` times: ~460 MB at 10M rows)."""
    return pd.Series(pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[path]))


def _constant_strings(value: str, n: int, index) -> pd.Series:
    """A ``str`` Series of ``n`` times ``value``, built from Arrow buffers (no Python list of n strings)."""
    import pyarrow as pa

    data = value.encode("utf-8")
    offsets = np.arange(n + 1, dtype=np.int64) * len(data)
    arr = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)])
    return pd.Series(pd.arrays.ArrowStringArray(arr, dtype=pd.StringDtype("pyarrow", na_value=np.nan)), index=index)


def _validate_messages(frame, path: str, quality: QualityLog, accounts: pd.DataFrame | None,
                       webhook: bool = False) -> pd.DataFrame:
    """Normalise spellings, parse instants, report and drop bad rows (see :func:`read_messages`).
    ``frame``: a :class:`_MessageColumns` or a frame of message columns (webhook bodies)."""
    import pyarrow.compute as pc

    cols = frame if isinstance(frame, _MessageColumns) else _columns_from_frame(frame)
    del frame
    n = cols.n
    if n == 0:
        return _empty_messages()
    text = dict(cols.text)
    rows = cols.rows
    for c in ("message_id", "waba_id", "phone_number_id", "user_wa_id") + _ENUM_COLUMNS:
        if text[c] is None:          # absent (or a Parquet column of nulls): "" on every row
            text[c] = _Coded(np.zeros(n, dtype=np.int8), _constant_strings("", 1, None).array._pa_array.chunk(0))
    if cols.source is not None:      # webhook frames: values as they came, the message id trimmed here
        mid = text["message_id"]
        text["message_id"] = _Coded(mid.codes, pc.utf8_trim_whitespace(mid.values)) if isinstance(mid, _Coded) \
            else pc.utf8_trim_whitespace(mid)
    text["user_wa_id"] = _digits_only_arrow(text["user_wa_id"])
    for c in _ENUM_COLUMNS:
        col = text[c]
        if not isinstance(col, _Coded):
            col = _coded(col)
        col = col.map_values(_normalise_enum)
        if c == "template_category":
            col = col.map_values(lambda v: _CATEGORY_SPELLINGS.get(v, v))
        text[c] = col
    bad = np.zeros(n, dtype=bool)

    def sources(idx):
        if cols.source is None:
            return np.full(len(idx), path, dtype=object)
        return cols.source.iloc[idx].to_numpy(dtype=object)

    def check(mask, code, column, detail, severity="error", quote=False):
        """``quote``: ``detail`` is a template formatted with each row's (clipped) value of ``column``."""
        nonlocal bad
        mask = np.asarray(mask, dtype=bool)
        idx = np.flatnonzero(mask)
        if len(idx):
            if quote:
                values = _text_at(text[column], idx) if column in text else cols.times[column].iloc[idx].tolist()
                detail = np.asarray([detail.format(_clip(v)) for v in values], dtype=object)
            quality.add_many(severity, code, source=sources(idx), row=rows[idx], column=column,
                             message_id=np.asarray(_text_at(text["message_id"], idx), dtype=object), detail=detail)
        if severity == "error":
            bad |= mask

    bounds = _length_bounds(text["message_id"])
    if bounds is None or bounds[0] == 0:
        check(_text_len(text["message_id"]) == 0, "empty_message_id", "message_id", "row without a message_id: left out")
    for col in ("message_id", "waba_id", "phone_number_id", "user_wa_id"):
        bounds = _length_bounds(text[col])
        if bounds is not None and bounds[1] <= MAX_ID_LENGTH:
            continue                                 # no value over the limit in bytes (>= characters)
        lengths = _text_len(text[col])
        if lengths is None or not (lengths > MAX_ID_LENGTH).any():
            continue                                 # bytes >= characters: nothing over the limit
        lengths = _text_len(text[col], chars=True)
        huge = (lengths > MAX_ID_LENGTH) & ~bad
        if huge.any():
            # the finding quotes a clipped id (a 1 MB id must not be copied into every output)
            idx = np.flatnonzero(huge)
            quality.add_many("error", "oversized_value", source=sources(idx), row=rows[idx], column=col,
                             message_id=np.asarray([_clip(v, 64) for v in _text_at(text["message_id"], idx)],
                                                   dtype=object),
                             detail=np.asarray([f"{col} of {k:,} characters (limit {MAX_ID_LENGTH}): row left out"
                                                for k in lengths[idx].tolist()], dtype=object))
            bad |= huge
    for col, allowed, code in (("direction", DIRECTIONS, "unknown_direction"),
                               ("status", MESSAGE_STATUSES + ("deleted", "expired"), "unknown_status"),
                               ("message_kind", MESSAGE_KINDS + ("",), "unknown_message_kind"),
                               ("template_category", TEMPLATE_CATEGORIES + ("",), "unknown_template_category"),
                               ("entry_point", ENTRY_POINTS + ("",), "unknown_entry_point")):
        if _all_in(text[col], allowed):
            continue                                 # every value allowed: no per-row mask
        mask = ~_text_in(text[col], allowed)
        if mask.any():
            check(mask, code, col, "value {!r} is not one of " + ", ".join(a for a in allowed if a), quote=True)
    times = {}
    for col in MESSAGE_TIMESTAMPS:
        raw = cols.times[col]
        parsed = None
        if raw is None:
            parsed = _utc_series(np.full(n, _NAT_NS, dtype=np.int64))
            bad_ts, naive = None, None
        elif not isinstance(raw, pd.Series):      # typed timestamps: no text to be unreadable
            parsed, naive, over, far = _arrow_instants(raw)
            if over is not None:
                check(over, "bad_timestamp", col, np.asarray(
                    [f"timestamp {v} since 1970-01-01 is outside the years 1677-2262: row left out" for v in far],
                    dtype=object))
            bad_ts = None
        if parsed is None:
            parsed, bad_ts, naive = parse_instants(raw)
        if bad_ts is not None and bad_ts.any():
            check(bad_ts, "bad_timestamp", col, "unreadable timestamp {!r}: row left out", quote=True)
        if naive is not None and naive.any():
            check(naive & ~bad, "timestamp_without_offset", col, "timestamp without offset read as UTC",
                  severity="warning")
        times[col] = parsed.astype("datetime64[ns, UTC]")
    if accounts is not None:
        known = set(accounts["waba_id"].astype(str))
        if not _all_in(text["waba_id"], known):
            unknown = ~_text_in(text["waba_id"], known) & ~bad
            check(unknown, "unknown_account", "waba_id", "account {!r} is not in the accounts file: message left out",
                  quote=True)
    keep = ~bad if bad.any() else None
    out = {}
    for c in MESSAGE_COLUMNS + WEBHOOK_EVIDENCE_COLUMNS:
        if c in times:
            values = times[c].reset_index(drop=True)
            out[c] = values if keep is None else values[keep].reset_index(drop=True)
        else:
            out[c] = _text_output(text.pop(c), n, keep, categorical=c in _CODED_MESSAGE_COLUMNS)
    if cols.source is None:
        out["source"] = _source_codes(path, n if keep is None else int(keep.sum()))
    else:
        source = cols.source if keep is None else cols.source[keep].reset_index(drop=True)
        out["source"] = source.astype("str").fillna("").astype("category")
    out["row"] = rows if keep is None else rows[keep]
    return pd.DataFrame(out, columns=MESSAGE_OUTPUT_COLUMNS, copy=False)   # fresh arrays: no block copies


# =========================================================================== accounts
@functools.lru_cache(maxsize=1)
def _iana_zones() -> frozenset:
    """The IANA zone names of the installed database (listing them scans it: ~15 ms, once per process)."""
    from zoneinfo import available_timezones

    return frozenset(available_timezones() | {"UTC"})


def read_accounts(path, quality: QualityLog) -> pd.DataFrame:
    """Read the accounts file(s): ``ACCOUNT_COLUMNS`` + ``source``, ``row``.

    Defaults: ``timezone`` UTC, ``portfolio_id`` = ``waba_id``, ``name`` = ``waba_id``. An
    account row is unusable on its own, so an empty ``waba_id``, an invalid IANA timezone, an
    unknown currency or a duplicated ``waba_id`` raise :class:`InputError` naming row and column.
    A ``business_country`` that is not two letters → warning ``bad_business_country`` (left empty).
    """
    columns: dict[str, list] = {c: [] for c in ACCOUNT_COLUMNS + ["source", "row"]}
    for p in _expand(path, TABLE_SUFFIXES):
        raw = _read_any_table(p, quality)
        raw = _normalise_header(raw)
        _require(raw, ("waba_id", "currency"), p)
        _extra_columns(raw, set(ACCOUNT_COLUMNS) | {"source", "row"}, p, quality)
        n = len(raw)
        for c in ACCOUNT_COLUMNS:          # a few rows: normalised and checked as Python lists below
            if c not in raw.columns:
                columns[c] += [""] * n
                continue
            values = _strings(raw[c])
            if c in ("currency", "business_country"):
                values = values.str.upper()            # Arrow's per-code-point upper case, as before
            columns[c] += values.tolist()
        columns["source"] += [p] * n
        columns["row"] += raw["__row"].astype("int64").tolist()
    if not columns["source"]:
        raise InputError("no accounts file given")
    waba = columns["waba_id"]
    columns["timezone"] = [tz or "UTC" for tz in columns["timezone"]]
    columns["portfolio_id"] = [pf or w for pf, w in zip(columns["portfolio_id"], waba)]
    columns["name"] = [name or w for name, w in zip(columns["name"], waba)]

    def first_bad(bad, column, message):
        i = next((i for i, b in enumerate(bad) if b), None)
        if i is not None:
            row = {c: values[i] for c, values in columns.items()}
            raise InputError(message(row), source=columns["source"][i], row=int(columns["row"][i]), column=column)

    zones = _iana_zones()
    first_bad((w == "" for w in waba), "waba_id", lambda r: "empty waba_id")
    first_bad((tz not in zones for tz in columns["timezone"]), "timezone",
              lambda r: f"{r['timezone']!r} is not an IANA timezone")
    first_bad((cur not in CURRENCIES for cur in columns["currency"]), "currency",
              lambda r: f"{r['currency']!r} is not an ISO 4217 currency")
    seen: set[str] = set()
    first_bad((w in seen or seen.add(w) for w in waba), "waba_id", lambda r: f"waba_id {r['waba_id']!r} listed twice")
    acc = pd.DataFrame({c: pd.array(columns[c], dtype="str") for c in ACCOUNT_COLUMNS + ["source"]})
    acc["row"] = np.asarray(columns["row"], dtype=np.int64)
    bad_country = np.array([c != "" and _ALPHA2.fullmatch(c) is None for c in columns["business_country"]], dtype=bool)
    if bad_country.any():
        _report(quality, "warning", "bad_business_country", acc, bad_country, "business_country",
                "business_country is not an ISO alpha-2 code: left empty", id_column=None)
        acc["business_country"] = pd.array(np.where(bad_country, "", np.asarray(columns["business_country"], dtype=object)),
                                           dtype="str")
    return acc


#: an ISO 3166 alpha-2 business country (after upper-casing)
_ALPHA2 = re.compile(r"[A-Z]{2}")


def _isin(values: pd.Series, allowed) -> np.ndarray:
    """``values.isin(allowed)`` as a numpy mask, for a ``str`` column by Arrow's ``is_in`` over its own
    Arrow array (pandas' ``isin`` makes an Arrow scalar of every allowed value: ~5 ms for the ~600 IANA
    zones, ~1 ms for the currencies)."""
    arr = getattr(values.array, "_pa_array", None)
    if arr is None or not _is_arrow_text(arr.type):
        return values.isin(allowed).to_numpy(dtype=bool)
    return _text_in(arr, allowed)


def _read_any_table(path: str, quality: QualityLog) -> pd.DataFrame:
    return _table_from_bytes(locations.read_bytes(path), path, quality)


def _table_from_bytes(data: bytes, path: str, quality: QualityLog, lines: list[str] | None = None) -> pd.DataFrame:
    """A CSV, Parquet or JSON Lines table (by extension) with its 1-based data row in ``__row``;
    ``lines``: the JSON Lines file already split (webhook detection does that first)."""
    ext = _ext(path)
    if ext in CSV_SUFFIXES:
        return _read_csv(data, path, quality)
    if ext in PARQUET_SUFFIXES:
        raw = _read_parquet(data, path)
        raw["__row"] = np.arange(1, len(raw) + 1, dtype=np.int64)
        return raw
    return _read_jsonl_rows(lines if lines is not None else _split_lines(data, path), path, quality)


# =========================================================================== invoice
_INVOICE_CATEGORY_SPELLINGS = {"referral_conversion": "free_entry_point", "marketing_lite": "marketing",
                               "free_entry": "free_entry_point"}
_PRICING_TYPE_SPELLINGS = {"free_entry": "free_entry_point", "referral_conversion": "free_entry_point"}


def normalise_invoice_category(values: pd.Series) -> pd.Series:
    """Category spelling rules (rule book section 7): lower case, hyphen → underscore,
    ``referral_conversion`` → ``free_entry_point``, ``marketing_lite`` → ``marketing``."""
    return _enum(values.astype("str").fillna("").str.strip()).replace(_INVOICE_CATEGORY_SPELLINGS)


def normalise_pricing_type(values: pd.Series) -> pd.Series:
    return _enum(values.astype("str").fillna("").str.strip()).replace(_PRICING_TYPE_SPELLINGS)


def read_invoice(paths, quality: QualityLog, *, accounts: pd.DataFrame | None, market_map: pd.DataFrame,
                 period=None) -> tuple[pd.DataFrame, list[InputInfo]]:
    """Read invoice lines (CSV/Parquet/JSON Lines) and analytics exports into one frame.

    Columns ``INVOICE_COLUMNS`` + ``display_phone_number``, ``market_reported`` (the market as
    written, before a country code was mapped), ``source``, ``row``; ``quantity`` int64,
    ``amount`` float64, empty ``currency`` stays "". Findings (errors, line left out):
    ``bad_quantity``, ``bad_amount``, ``negative_amount``, ``unknown_currency``,
    ``bad_billing_month``, ``unknown_pricing_model``, ``unknown_category``,
    ``unknown_pricing_type``, ``invoice_unknown_account``. Currency mismatches and lines outside
    the period are kept (the compare step reports them); ``period`` is accepted for symmetry.
    """
    from .meta_analytics import ANALYTICS_KEYS, read_analytics

    frames, infos = [], []
    for path in _expand(paths, TABLE_SUFFIXES):
        data = locations.read_bytes(path)
        ext = _ext(path)
        if ext in (".json", ".json.gz"):
            doc = _maybe_json_document(data, path)
            if isinstance(doc, dict) and any(k in doc for k in ANALYTICS_KEYS):
                part = read_analytics(doc, path, quality, accounts=accounts, market_map=market_map)
                frames.append(part)
                infos.append(InputInfo("invoice", path, len(part), _sha256(data)))
                continue
        raw = _table_from_bytes(data, path, quality)
        n_rows = int(raw.attrs.get("records", len(raw)))   # rejected rows count as rows of the file
        frames.append(_invoice_from_raw(raw, path, quality, accounts, market_map))
        infos.append(InputInfo("invoice", path, n_rows, _sha256(data)))
    if not frames:
        return _empty_invoice(), infos
    out = pd.concat(frames, ignore_index=True)
    return out[INVOICE_OUTPUT_COLUMNS], infos


def _maybe_json_document(data: bytes, path: str):
    text = _text(_decompress(data, path), path)
    try:
        return json.loads(text)
    except ValueError:
        return None   # JSON Lines, read as rows


def _empty_invoice() -> pd.DataFrame:
    cols = {c: pd.Series(dtype="str") for c in INVOICE_OUTPUT_COLUMNS}
    cols["quantity"] = pd.Series(dtype="int64")
    cols["amount"] = pd.Series(dtype="float64")
    cols["row"] = pd.Series(dtype="int64")
    return pd.DataFrame(cols)


def _invoice_from_raw(raw: pd.DataFrame, path: str, quality: QualityLog, accounts, market_map) -> pd.DataFrame:
    raw = _normalise_header(raw)
    _require(raw, REQUIRED_INVOICE_COLUMNS, path)
    _extra_columns(raw, set(INVOICE_OUTPUT_COLUMNS), path, quality)
    n = len(raw)
    if n == 0:
        return _empty_invoice()
    f = pd.DataFrame({c: (_strings(raw[c]) if c in raw.columns else pd.Series([""] * n, dtype="str"))
                      for c in INVOICE_COLUMNS + ["display_phone_number"]})
    f["source"] = path
    f["row"] = raw["__row"].to_numpy(dtype=np.int64)
    f["message_id"] = ""
    bad = np.zeros(n, dtype=bool)

    def check(mask, code, column, detail):
        nonlocal bad
        mask = np.asarray(mask, dtype=bool) & ~bad
        _report(quality, "error", code, f, mask, column, detail, id_column=None)
        bad |= mask

    def shown(col):
        out = np.full(n, "", dtype=object)
        out[:] = [f"{col} {_clip(v)!r}" for v in f[col].tolist()]   # invoice files are small (line items)
        return out

    qty_text = f["quantity"].str.replace(",", "", regex=False)
    qty = pd.to_numeric(qty_text, errors="coerce").to_numpy(dtype="float64")
    check(np.isnan(qty) | (qty < 0) | (np.nan_to_num(qty) != np.floor(np.nan_to_num(qty))), "bad_quantity",
          "quantity", shown("quantity") + " is not a whole non-negative number: line left out")
    amt_text = f["amount"].str.replace(",", "", regex=False)
    amt = pd.to_numeric(amt_text, errors="coerce").to_numpy(dtype="float64")
    check(np.isnan(amt) | np.isinf(amt), "bad_amount", "amount", shown("amount") + " is not a number: line left out")
    check(amt < 0, "negative_amount", "amount", shown("amount") + " is negative: line left out")
    f["currency"] = f["currency"].str.upper()
    check((f["currency"] != "").to_numpy() & ~_isin(f["currency"], CURRENCIES), "unknown_currency",
          "currency", shown("currency") + " is not an ISO 4217 currency: line left out")
    month = f["billing_month"]
    month = month.where(~month.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False), month.str[:7])
    f["billing_month"] = month
    check(~month.str.fullmatch(r"\d{4}-(0[1-9]|1[0-2])").fillna(False).to_numpy(dtype=bool), "bad_billing_month",
          "billing_month", shown("billing_month") + " is not YYYY-MM: line left out")
    f["pricing_model"] = f["pricing_model"].str.upper()
    check(~_isin(f["pricing_model"], PRICING_MODELS), "unknown_pricing_model", "pricing_model",
          shown("pricing_model") + " is not NBP, CBP or PMP: line left out")
    f["category"] = normalise_invoice_category(f["category"])
    f["pricing_type"] = normalise_pricing_type(f["pricing_type"])
    check(~_isin(f["category"], CATEGORIES), "unknown_category", "category",
          shown("category") + " is not a known category: line left out")
    check(~_isin(f["pricing_type"], PRICING_TYPES), "unknown_pricing_type", "pricing_type",
          shown("pricing_type") + " is not a known pricing type: line left out")
    # a free entry point line is category free_entry_point whatever template it names (rule book section 0)
    fep = (f["pricing_type"] == "free_entry_point") | (f["category"] == "free_entry_point")
    f.loc[fep, "category"] = "free_entry_point"
    f.loc[fep, "pricing_type"] = "free_entry_point"
    if accounts is not None:
        check(~_isin(f["waba_id"], set(accounts["waba_id"].astype(str))), "invoice_unknown_account",
              "waba_id", shown("waba_id") + " is not an account of this run: line left out")

    # market: a two-letter country code → its market through the market map; names get the map's spelling
    f["market_reported"] = f["market"]
    f["market"] = canonical_markets(f["market"], market_map)
    f["quantity"] = np.where(bad, 0, np.nan_to_num(qty)).astype("int64")
    f["amount"] = amt
    out = f[~bad].reset_index(drop=True)
    return out[INVOICE_OUTPUT_COLUMNS]


def canonical_markets(values: pd.Series, market_map: pd.DataFrame) -> pd.Series:
    """Market names as the market map spells them; two-letter country codes mapped to their market."""
    from ..rules.markets import country_to_market

    values = values.astype("str").fillna("").str.strip()
    known_countries = set(market_map["country"])
    upper = values.str.upper()
    is_country = values.str.fullmatch(r"[A-Za-z]{2}").fillna(False) & upper.isin(known_countries)
    out = values.copy()
    if is_country.any():
        out[is_country] = country_to_market(upper[is_country].to_numpy(), market_map)
    names = {m.lower(): m for m in market_map["market"].unique()}
    names.setdefault("other", "Other")
    lowered = out.str.lower()
    mapped = lowered.map(names)
    return mapped.where(mapped.notna(), out).astype("str")


# =========================================================================== rate cards
def read_rate_cards(paths, quality: QualityLog) -> tuple[pd.DataFrame, list[InputInfo]]:
    """Read rate cards (long format and Meta's wide CSV); see :mod:`reconcile.io.rate_cards`."""
    from .rate_cards import read_rate_cards as _read

    return _read(paths, quality)
