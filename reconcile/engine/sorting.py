"""Compiled helpers of :mod:`.prepare`: string matching over Arrow buffers, sorted factorisation of
digit strings, the radix sort of the events and the per-event columns decoded from the sort.

Every kernel is an exact, faster form of a numpy/pandas/Arrow expression that :mod:`.prepare` keeps
as its fallback (columns that are not Arrow strings without nulls, sort keys wider than 62 bits);
loops run over rows inside compiled code. Strings are read from an Arrow ``string``/``large_string``
array's buffers (offsets, bytes). Every input array is passed read-only (:func:`_ro`, as Arrow's
buffers are; the few kernels that fill arrays allocated by their caller get those writable), so each
kernel has one signature, loaded from numba's cache by :func:`warm_up`.
Kernels release the GIL (``nogil``): the engine runs some of them beside other work in a second thread.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from .buffers import read_only as _ro
from .buffers import string_buffers
from .hashing import fnv1a

_MIX = np.uint64(0x9E3779B97F4A7C15)

#: per-row attributes packed into one int64 (see :func:`row_attributes`)
ATTR_ENTRY, ATTR_TEMPLATE, ATTR_CATEGORY_SHIFT, ATTR_ACCOUNT_SHIFT = 1, 2, 2, 8

#: integer types the code kernels are compiled for (a Categorical's codes are the smallest that fits)
CODE_TYPES = (np.int8, np.int16, np.int32, np.int64)


def _codes_as_they_are(codes) -> np.ndarray:
    """Integer codes in their own type (no widening copy of 1M rows: each type has its own compiled
    signature), other inputs as int64."""
    return same_code_type(codes)[0]


def same_code_type(*codes) -> list[np.ndarray]:
    """Integer code arrays in one type of :data:`CODE_TYPES` (the widest of theirs: usually all int8, then
    no copy), read-only."""
    arrays = [np.asarray(c) for c in codes]
    if all(a.dtype.type in CODE_TYPES for a in arrays):
        common = max((a.dtype for a in arrays), key=lambda d: d.itemsize)
    else:
        common = np.dtype(np.int64)
    return [_ro(a, common) for a in arrays]


def vocabulary_table(words) -> tuple[np.ndarray, np.ndarray]:
    """A few words of distinct byte lengths (UTF-8) for :func:`_word_at`: ``by_length[n]`` = index of the
    word of ``n`` bytes (-1 if none; the last entry, for longer strings, is -1) and the words' bytes,
    one row each (zero padded)."""
    encoded = [str(w).encode("utf-8") for w in words]
    lengths = [len(b) for b in encoded]
    if len(set(lengths)) != len(lengths):
        raise ValueError("vocabulary words need distinct lengths")
    by_length = np.full(max(lengths, default=0) + 2, -1, np.int64)
    table = np.zeros((max(len(encoded), 1), max(max(lengths, default=0), 1)), np.int64)
    for w, b in enumerate(encoded):
        by_length[len(b)] = w
        table[w, :len(b)] = np.frombuffer(b, dtype=np.uint8)
    return _ro(by_length), _ro(table)


# =========================================================================== matching
@njit(cache=True, inline="always")
def _word_at(offsets, data, i, by_length, words):
    """Index of the vocabulary word equal to string ``i``, -1 if none: the length picks the only
    candidate word, whose bytes are then compared."""
    a = offsets[i]
    length = offsets[i + 1] - a
    w = by_length[min(length, by_length.shape[0] - 1)]
    if w >= 0:
        k = 0
        while k < length and data[a + k] == words[w, k]:
            k += 1
        if k != length:
            w = -1
    return w


@njit(cache=True, nogil=True)
def _lookup_strings(offsets, data, koff, kdata):
    """Position of each string among the (distinct) keys, -1 if absent. FNV-1a hashes in a small
    open-addressing table; a hit is confirmed on the bytes."""
    nk = koff.shape[0] - 1
    size = 16
    while size < 2 * nk:
        size <<= 1
    mask = np.uint64(size - 1)
    table = np.full(size, -1, np.int64)
    for k in range(nk):
        h = fnv1a(koff, kdata, k)
        s = (h ^ (h >> np.uint64(29))) & mask
        while table[s] >= 0:
            s = (s + np.uint64(1)) & mask
        table[s] = k
    n = offsets.shape[0] - 1
    out = np.empty(n, np.int64)
    for i in range(n):
        a = offsets[i]
        length = offsets[i + 1] - a
        h = fnv1a(offsets, data, i)
        s = (h ^ (h >> np.uint64(29))) & mask
        found = -1
        while table[s] >= 0:
            k = table[s]
            b = koff[k]
            if koff[k + 1] - b == length:
                q = 0
                while q < length and data[a + q] == kdata[b + q]:
                    q += 1
                if q == length:
                    found = k
                    break
            s = (s + np.uint64(1)) & mask
        out[i] = found
    return out


def lookup_strings(strings, keys) -> np.ndarray:
    """``pc.index_in(strings, value_set=keys)`` with -1 for absent (both from :func:`string_buffers`,
    the keys distinct)."""
    return _lookup_strings(strings[0], strings[1], keys[0], keys[1])


@njit(cache=True)
def _classify_row(inb, bill, delivered, read, sent, account, dropped):
    """One row of :func:`classify_rows` given its direction (``inb``) and billable (``bill``) tests:
    ``(inbound, billable, charge, unknown, missing_time, missing_in)`` (scalars only: no array is
    passed per row, so no reference counting in the loops)."""
    nat = np.iinfo(np.int64).min
    c = delivered if delivered != nat else read
    c = sent if inb else (c if bill else nat)
    if dropped:                       # a merged duplicate: no message
        return False, False, c, False, False, False
    unk = account < 0
    return inb, bill, c, unk, bill & (c == nat) & (not unk), inb & (c == nat) & (not unk)


@njit(cache=True)
def _masks(n):
    return np.empty(n, np.bool_), np.empty(n, np.bool_), np.empty(n, np.bool_), np.empty(n, np.bool_), \
        np.empty(n, np.bool_)


@njit(cache=True, nogil=True)
def _classify_rows(dir_off, dir_data, st_off, st_data, delivered, read, sent, account, dropped, dir_len, dir_words,
                   st_len, st_words):
    n = account.shape[0]
    inbound, billable, unknown, missing_time, missing_in = _masks(n)
    charge = np.empty(n, np.int64)
    has_dropped = dropped.shape[0] > 0
    for i in range(n):
        d = _word_at(dir_off, dir_data, i, dir_len, dir_words)             # 0 inbound, 1 outbound
        bill = (d == 1) & (_word_at(st_off, st_data, i, st_len, st_words) >= 0)   # delivered / read
        (inbound[i], billable[i], charge[i], unknown[i], missing_time[i], missing_in[i]) = _classify_row(
            d == 0, bill, delivered[i], read[i], sent[i], account[i], has_dropped and dropped[i])
    return inbound, billable, charge, unknown, missing_time, missing_in


@njit(cache=True, nogil=True)
def _classify_codes(dir_codes, st_codes, delivered, read, sent, account, dropped, dir_of, billable_status):
    n = account.shape[0]
    inbound, billable, unknown, missing_time, missing_in = _masks(n)
    charge = np.empty(n, np.int64)
    has_dropped = dropped.shape[0] > 0
    for i in range(n):       # a code of -1 (NaN) reads each table's last entry: "none"
        d = dir_of[dir_codes[i]]
        (inbound[i], billable[i], charge[i], unknown[i], missing_time[i], missing_in[i]) = _classify_row(
            d == 0, (d == 1) & billable_status[st_codes[i]], delivered[i], read[i], sent[i], account[i],
            has_dropped and dropped[i])
    return inbound, billable, charge, unknown, missing_time, missing_in


def _classify_args(delivered, read, sent, account, dropped):
    return (_ro(delivered, np.int64), _ro(read, np.int64), _ro(sent, np.int64), _ro(account, np.int64),
            _ro(np.zeros(0, np.bool_) if dropped is None else dropped, np.bool_))


def classify_rows(direction, status, delivered, read, sent, account, dropped=None):
    """Per message, from the ``direction``/``status`` strings (:func:`string_buffers`), the instants
    (int64 ns, NaT = int64 min) and the account index: ``inbound`` (direction "inbound"), ``billable``
    (direction "outbound" and status "delivered"/"read"), the charge instant (``sent`` when inbound,
    ``delivered`` else ``read`` when billable, else NaT), ``unknown`` (account < 0) and the masks
    ``billable & NaT & known`` (missing delivery time), ``inbound & NaT & known`` (missing received time).
    Rows of ``dropped`` (optional mask) are no messages: every mask False there (the charge instant stays)."""
    dir_len, dir_words = vocabulary_table(("inbound", "outbound"))
    st_len, st_words = vocabulary_table(("delivered", "read"))
    return _classify_rows(direction[0], direction[1], status[0], status[1],
                          *_classify_args(delivered, read, sent, account, dropped), dir_len, dir_words, st_len,
                          st_words)


def classify_codes(direction, status, delivered, read, sent, account, dropped=None):
    """:func:`classify_rows` of Categorical ``direction``/``status`` columns, each given as ``(codes,
    categories)`` (codes of any integer type, -1 for NaN; categories a sequence of strings): the string
    tests run once per category, then one pass over the codes."""
    dir_of = np.array([{"inbound": 0, "outbound": 1}.get(str(c), -1) for c in direction[1]] + [-1], np.int64)
    billable_status = np.array([str(c) in ("delivered", "read") for c in status[1]] + [False], np.bool_)
    return _classify_codes(*same_code_type(direction[0], status[0]),
                           *_classify_args(delivered, read, sent, account, dropped), _ro(dir_of), _ro(billable_status))


# =========================================================================== sorted codes
@njit(cache=True, nogil=True)
def _digit_codes(offsets, data):
    """``pd.factorize(value * 32 + length, sort=True)`` codes of digit strings and the first position
    of each distinct value; ``ok`` False (and nothing else meaningful) unless every string is 1..17
    ASCII digits. One pass parses and inserts into an open-addressing table (kept under half full,
    rebuilt twice as large when needed); the distinct values are then sorted and the codes renumbered."""
    n = offsets.shape[0] - 1
    size = 1024
    shift = np.uint64(64 - 10)
    table = np.full((size, 2), -1, np.int64)     # (value, id) side by side: one cache line per probe
    first = np.empty(64, np.int64)
    uniq = np.empty(64, np.int64)
    nu = 0
    code = np.empty(n, np.int64)
    for i in range(n):
        a = offsets[i]
        length = offsets[i + 1] - a
        if length < 1 or length > 17:
            return code, first[:0], False
        v = np.int64(0)
        for j in range(a, a + length):
            c = np.int64(data[j]) - 48
            if c < 0 or c > 9:
                return code, first[:0], False
            v = v * 10 + c
        v = v * 32 + length
        s = (np.uint64(v) * _MIX) >> shift
        while table[s, 1] >= 0 and table[s, 0] != v:
            s = (s + np.uint64(1)) & np.uint64(size - 1)
        if table[s, 1] >= 0:
            code[i] = table[s, 1]
            continue
        if nu == first.shape[0]:
            grown = np.empty(2 * nu, np.int64)
            grown[:nu] = first
            first = grown
            grown = np.empty(2 * nu, np.int64)
            grown[:nu] = uniq
            uniq = grown
        first[nu] = i
        uniq[nu] = v
        table[s, 0] = v
        table[s, 1] = nu
        code[i] = nu
        nu += 1
        if 2 * nu > size:
            size *= 2
            shift -= np.uint64(1)
            table = np.full((size, 2), -1, np.int64)
            for u in range(nu):
                w = uniq[u]
                t = (np.uint64(w) * _MIX) >> shift
                while table[t, 1] >= 0:
                    t = (t + np.uint64(1)) & np.uint64(size - 1)
                table[t, 0] = w
                table[t, 1] = u
    order = np.argsort(uniq[:nu])
    rank = np.empty(nu, np.int64)
    firsts = np.empty(nu, np.int64)
    for r in range(nu):
        rank[order[r]] = r
        firsts[r] = first[order[r]]
    for i in range(n):
        code[i] = rank[code[i]]
    return code, firsts, True


def digit_codes(strings):
    """``(codes, first)`` of :func:`_digit_codes`, or ``None`` if some string is not 1..17 ASCII digits."""
    code, first, ok = _digit_codes(strings[0], strings[1])
    return (code, first) if ok else None


@njit(cache=True, nogil=True)
def _renumber(ids, rank):
    out = np.empty(ids.shape[0], np.int64)
    for i in range(ids.shape[0]):
        out[i] = rank[ids[i]]
    return out


def renumber(ids, rank):
    """``rank[ids]`` (int64; an id of -1 reads the last entry, as numpy does). Faster than numpy's fancy
    index for small integer ids (Categorical codes), which numpy converts to ``intp`` first."""
    return _renumber(_codes_as_they_are(ids), _ro(rank, np.int64))


@njit(cache=True, nogil=True)
def _code_counts(codes, n):
    counts = np.zeros(n, np.int64)
    for i in range(codes.shape[0]):
        c = codes[i]
        if c >= 0:
            counts[c] += 1
    return counts


def code_counts(codes, n: int) -> np.ndarray:
    """``np.bincount(codes[codes >= 0], minlength=n)`` of Categorical codes (-1 for NaN, not counted),
    without numpy's conversion of small integer codes to ``intp`` first."""
    return _code_counts(_codes_as_they_are(codes), np.int64(n))


# =========================================================================== events
@njit(cache=True, nogil=True)
def _row_attributes(inbound, account, ep_off, mk_off, mk_data, tc_off, tc_data, kind_len, kind_words,
                    cat_len, cat_words, category_codes):
    n = inbound.shape[0]
    out = np.empty(n, np.int64)
    for i in range(n):
        inb = inbound[i]
        entry = inb & (ep_off[i + 1] > ep_off[i])
        template = (not inb) & (_word_at(mk_off, mk_data, i, kind_len, kind_words) != 0)
        c = _word_at(tc_off, tc_data, i, cat_len, cat_words)
        cat = category_codes[max(c, 0)] + 1 if c >= 0 else 0
        out[i] = np.int64(entry) | (np.int64(template) << 1) | (cat << 2) | (account[i] << 8)
    return out


def row_attributes(inbound, account, entry_point, message_kind, template_category, category_codes: dict):
    """Per message, one int64: bit 0 ``inbound & (entry_point != "")``, bit 1 ``~inbound & (message_kind !=
    "free_form")``, bits 2-7 the template category code + 1 (0 when none), bits 8+ the account index.
    The strings come from :func:`string_buffers`; ``category_codes`` maps category names (of distinct
    lengths) to codes < 63."""
    assert all(0 <= c < 63 for c in category_codes.values())
    kind_len, kind_words = vocabulary_table(("free_form",))
    cat_len, cat_words = vocabulary_table(tuple(category_codes))
    codes = _ro(np.array(list(category_codes.values()) or [0], dtype=np.int64))
    return _row_attributes(_ro(inbound, np.bool_), _ro(account, np.int64), entry_point[0], message_kind[0],
                           message_kind[1], template_category[0], template_category[1], kind_len, kind_words,
                           cat_len, cat_words, codes)


@njit(cache=True, nogil=True)
def _coded_row_attributes(inbound, account, ep_codes, mk_codes, tc_codes, entry_of, template_of, category_of):
    n = inbound.shape[0]
    out = np.empty(n, np.int64)
    for i in range(n):       # a code of -1 (NaN) reads each table's last entry: "none"
        inb = inbound[i]
        entry = inb & entry_of[ep_codes[i]]
        template = (not inb) & template_of[mk_codes[i]]
        out[i] = np.int64(entry) | (np.int64(template) << 1) | (category_of[tc_codes[i]] << 2) | (account[i] << 8)
    return out


def coded_row_attributes(inbound, account, entry_point, message_kind, template_category, category_codes: dict):
    """:func:`row_attributes` of Categorical columns, each given as ``(codes, categories)`` (codes of any
    integer type, -1 for NaN; categories a sequence of strings): the string tests run once per category,
    then one pass over the codes."""
    def table(categories, test, dtype):
        return _ro(np.array([test(str(c)) for c in categories] + [test("")], dtype=dtype))

    return _coded_row_attributes(
        _ro(inbound, np.bool_), _ro(account, np.int64), *same_code_type(entry_point[0], message_kind[0], template_category[0]),
        table(entry_point[1], lambda v: v != "", np.bool_),
        table(message_kind[1], lambda v: v != "free_form", np.bool_),
        table(template_category[1], lambda v: category_codes[v] + 1 if v in category_codes else 0, np.int64))


@njit(cache=True, nogil=True)
def _event_stats(rows, phone, user, t_all):
    m = rows.shape[0]
    t0 = np.iinfo(np.int64).max
    t1 = np.iinfo(np.int64).min
    pmax = np.int64(0)
    umax = np.int64(0)
    # ``t - first`` is a multiple of 1e9 (1e6, 1e3) for every t iff every t has the same remainder
    # modulo 1e9 (1e6, 1e3): one pass, compared with the remainders of the first event's instant
    ref = t_all[rows[0]] % 1_000_000_000 if m else np.int64(0)
    d9 = True
    d6 = True
    d3 = True
    for j in range(m):
        r = rows[j]
        t = t_all[r]
        t0 = min(t0, t)
        t1 = max(t1, t)
        pmax = max(pmax, phone[r])
        umax = max(umax, user[r])
        rem = t % 1_000_000_000
        if rem != ref:
            d9 = False
            d6 = d6 and rem % 1_000_000 == ref % 1_000_000
            d3 = d3 and rem % 1000 == ref % 1000
    unit = 1_000_000_000 if d9 else 1_000_000 if d6 else 1000 if d3 else 1
    return t0, t1, pmax, umax, np.int64(unit)


def event_stats(rows, phone, user, t_all) -> tuple[int, int, int, int, int]:
    """Of the events ``rows``: first and last instant, largest phone and user code, and the largest of
    1e9, 1e6, 1e3, 1 ns dividing every ``t - first`` (the events have instants)."""
    t0, t1, pmax, umax, unit = _event_stats(_ro(rows, np.int64), _ro(phone, np.int64), _ro(user, np.int64),
                                            _ro(t_all, np.int64))
    return int(t0), int(t1), int(pmax), int(umax), int(unit)


@njit(cache=True, nogil=True)
def _pack_events(rows, phone, user, t_all, inbound_all, attrs, attr_shift, t0, unit, user_shift, phone_shift, top,
                 packed, payload, counts, lo, hi):
    """Events ``lo:hi``: the packed value and the payload (row, and the row's attributes ``<< attr_shift``
    unless ``attr_shift`` is 0) into ``packed``/``payload``; ``counts`` += histogram of ``value >> top``."""
    for j in range(lo, hi):
        r = rows[j]
        flag = np.int64(0) if inbound_all[r] else np.int64(1)
        v = np.uint64((phone[r] << phone_shift) | (user[r] << user_shift) | ((t_all[r] - t0) // unit) << 1 | flag)
        packed[j] = v
        payload[j] = r | (attrs[r] << attr_shift) if attr_shift > 0 else r
        counts[np.int64(v >> np.uint64(top))] += 1


@njit(cache=True, nogil=True)
def _partition_events(packed, payload, out, out_payload, part_of, at, top, lo, hi):
    """Stable partition of ``lo:hi`` by ``part_of[value >> top]``: each value and its payload go to
    ``out``/``out_payload`` at ``at[part]``, which then advances."""
    for j in range(lo, hi):
        v = packed[j]
        k = part_of[np.int64(v >> np.uint64(top))]
        q = at[k]
        at[k] = q + 1
        out[q] = v
        out_payload[q] = payload[j]


@njit(cache=True, nogil=True)
def _radix_sort_range(a, ia, bits, lo, hi):
    """Sort ``a[lo:hi]`` (values < 2**bits) in place (stable LSD radix sort), moving ``ia[lo:hi]`` along."""
    m = hi - lo
    passes = max(1, (bits + 11) // 12)      # digits of at most 12 bits: 4096 buckets (with parts of at most
    width = (bits + passes - 1) // passes   # PART_EVENTS events, their write positions stay in the caches)
    nb = 1 << width
    dmask = np.uint64(nb - 1)
    counts = np.zeros((passes, nb), np.int64)
    for j in range(lo, hi):
        v = a[j]
        for p in range(passes):
            counts[p, np.int64((v >> np.uint64(p * width)) & dmask)] += 1
    src = a[lo:hi]
    isrc = ia[lo:hi]
    dst = np.empty(m, np.uint64)
    idst = np.empty(m, np.int64)
    moved = 0
    for p in range(passes):
        shift = np.uint64(p * width)
        if m == 0 or counts[p, np.int64((src[0] >> shift) & dmask)] == m:
            continue                     # every value has the same digit here: nothing moves
        total = np.int64(0)
        for d in range(nb):
            c = counts[p, d]
            counts[p, d] = total
            total += c
        for j in range(m):
            v = src[j]
            d = np.int64((v >> shift) & dmask)
            q = counts[p, d]
            counts[p, d] = q + 1
            dst[q] = v
            idst[q] = isrc[j]
        src, dst = dst, src
        isrc, idst = idst, isrc
        moved += 1
    if moved % 2 == 1:
        a[lo:hi] = src
        ia[lo:hi] = isrc


#: events from which the sort and the decoding run in two threads (half of the events each)
PARALLEL_EVENTS = 200_000
#: most events per part of the sort (parts are sorted one by one: fewer buckets' pages in use at a time)
PART_EVENTS = 1 << 18
_POOL = None


def radix_sort_in_place(values: np.ndarray, rows: np.ndarray, bits: int) -> None:
    """Sort ``values`` (``uint64``, each < 2**bits) in place by a stable radix sort, moving ``rows`` along."""
    _radix_sort_range(values, rows, np.int64(bits), np.int64(0), np.int64(len(values)))


def worker_pool():
    """The engine's two worker threads for work beside the main thread (created on first use)."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reconcile-sort")
    return _POOL


def _in_halves(task, n, split, parallel):
    """``task(0, split)`` and ``task(split, n)`` (int64 bounds), in two threads if ``parallel`` and both
    ranges are non-empty (the kernels release the GIL)."""
    if parallel and 0 < split < n:
        second = worker_pool().submit(task, np.int64(split), np.int64(n))
        task(np.int64(0), np.int64(split))
        second.result()
    else:
        task(np.int64(0), np.int64(split))
        task(np.int64(split), np.int64(n))


def _attr_shift(attrs) -> int:
    """Bits of a row index into ``attrs`` (the shift of the attributes in a payload), or 0 when the
    attributes do not fit beside it in an int64 (negative or too wide)."""
    if len(attrs) == 0:
        return 0
    shift = max(1, (len(attrs) - 1).bit_length())
    return shift if int(attrs.min()) >= 0 and shift + int(attrs.max()).bit_length() <= 63 else 0


def radix_sort_events(rows, phone, user, t_all, inbound_all, attrs, t0, unit, user_shift, phone_shift, bits):
    """The events ``rows`` sorted (stable LSD radix sort) by the packed value ``phone << phone_shift |
    user << user_shift | (t - t0) // unit << 1 | outbound`` (< 2**bits, bits <= 63): returns the sorted
    rows, the sorted packed values (``uint64``) and the payload for :func:`decode_events` (each sorted
    row with its :func:`row_attributes` moved along, so that decoding reads them in order).

    Past :data:`PART_EVENTS` events, the values are first split stably by their top digit (at most 11
    bits) in parts of similar size, each then sorted alone (every value of a part is below those of the
    next). From :data:`PARALLEL_EVENTS` events, two threads: each packs and moves half of the events,
    then sorts about half of the parts."""
    m = len(rows)
    shift = _attr_shift(attrs)
    top = max(0, bits - 11)
    packed = np.empty(m, np.uint64)
    payload = np.empty(m, np.int64)
    counts = [np.zeros(1 << (bits - top), np.int64) for _ in range(2)]
    pack = (_ro(rows, np.int64), _ro(phone, np.int64), _ro(user, np.int64), _ro(t_all, np.int64),
            _ro(inbound_all, np.bool_), _ro(attrs, np.int64), np.int64(shift), np.int64(t0), np.int64(unit),
            np.int64(user_shift), np.int64(phone_shift), np.int64(top), packed, payload)
    half = m // 2
    parallel = m >= PARALLEL_EVENTS
    _in_halves(lambda lo, hi: _pack_events(*pack, counts[int(lo > 0)], lo, hi), m, half, parallel)
    n_parts = -(-m // PART_EVENTS)
    starts = np.array([0, m], np.int64)
    if n_parts > 1:
        total = counts[0] + counts[1]
        below = np.cumsum(total) - total                  # values under each top digit
        # each part: the top digits from the one nearest to k * m / n_parts on
        first = np.searchsorted(below, np.arange(n_parts, dtype=np.int64) * m / n_parts)
        first = np.unique(np.minimum(first, len(total) - 1))
        first[0] = 0
        part_of = np.cumsum(np.bincount(first, minlength=len(total))) - 1
        starts = np.append(below[first], m)
        if len(first) > 1:
            at = [starts[:-1].copy(), starts[:-1] + np.bincount(part_of, weights=counts[0], minlength=len(first)
                                                               ).astype(np.int64)]
            out = np.empty(m, np.uint64)
            out_payload = np.empty(m, np.int64)
            part_of = _ro(part_of)
            _in_halves(lambda lo, hi: _partition_events(packed, payload, out, out_payload, part_of, at[int(lo > 0)],
                                                        np.int64(top), lo, hi), m, half, parallel)
            packed, payload = out, out_payload

    def sort(k0, k1):
        for k in range(k0, k1):
            _radix_sort_range(packed, payload, np.int64(bits), starts[k], starts[k + 1])
    parts = len(starts) - 1
    _in_halves(sort, parts, int(np.argmin(np.abs(2 * starts[:-1] - m))) if parts > 1 else parts, parallel)
    rows = payload & np.int64((1 << shift) - 1) if shift else payload.copy()
    return rows, packed, (payload, shift)


@njit(cache=True, nogil=True)
def _tied_runs(values):
    m = values.shape[0]
    count = 0
    for j in range(1, m):
        if values[j] == values[j - 1]:
            count += 2 if j == 1 or values[j - 1] != values[j - 2] else 1
    pos = np.empty(count, np.int64)
    run = np.empty(count, np.int64)
    c = 0
    r = 0
    for j in range(1, m):
        if values[j] == values[j - 1]:
            if j == 1 or values[j - 1] != values[j - 2]:
                r += 1
                pos[c] = j - 1
                run[c] = r
                c += 1
            pos[c] = j
            run[c] = r
            c += 1
    return pos, run


def tied_runs(sorted_values):
    """Positions lying in a run of equal consecutive values (ascending) and the run number of each."""
    return _tied_runs(_ro(sorted_values, np.uint64))


@njit(cache=True, nogil=True)
def _decode_events(rows, packed, payload, attr_shift, attrs, t0, unit, user_shift, phone_shift, n_users, key, t,
                   inbound, phone, user, account, entry, template, category, lo, hi):
    """Events ``lo:hi`` of :func:`decode_events`, written into the output arrays ``key`` .. ``category``."""
    tmask = (np.int64(1) << user_shift) - 1
    umask = (np.int64(1) << (phone_shift - user_shift)) - 1
    rmask = (np.int64(1) << attr_shift) - 1
    for j in range(lo, hi):
        v = np.int64(packed[j])
        p = v >> phone_shift
        u = (v >> user_shift) & umask
        phone[j] = p
        user[j] = u
        key[j] = p * n_users + u
        t[j] = t0 + ((v & tmask) >> 1) * unit
        inbound[j] = (v & 1) == 0
        w = payload[j]
        r = rows[j]
        a = w >> attr_shift if attr_shift > 0 and (w & rmask) == r else attrs[r]     # moved by a tie: read again
        account[j] = a >> 8
        entry[j] = (a & 1) != 0
        template[j] = (a & 2) != 0
        category[j] = ((a >> 2) & 63) - 1


def decode_events(rows, packed, payload, attrs, t0, unit, user_shift, phone_shift, n_users):
    """Per sorted event: key (``phone * n_users + user``), instant, inbound, phone, user (from the
    packed values of :func:`radix_sort_events`), account, entry point, template, category (the row's
    :func:`row_attributes`, from the ``payload`` of :func:`radix_sort_events` unless ``rows`` was
    reordered there since). From :data:`PARALLEL_EVENTS` events, each half in its own thread."""
    m = len(rows)
    out = [np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.bool_), np.empty(m, np.int64),
           np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.bool_), np.empty(m, np.bool_),
           np.empty(m, np.int64)]
    args = (_ro(rows, np.int64), _ro(packed, np.uint64), _ro(payload[0], np.int64), np.int64(payload[1]),
            _ro(attrs, np.int64), np.int64(t0), np.int64(unit), np.int64(user_shift), np.int64(phone_shift),
            np.int64(n_users), *out)
    _in_halves(lambda lo, hi: _decode_events(*args, lo, hi), m, m // 2, m >= PARALLEL_EVENTS)
    return tuple(out)


@njit(cache=True, nogil=True)
def _era_columns(day, zone_idx, regime_starts, era_starts, bounds):
    m = day.shape[0]
    regime = np.empty(m, np.int64)
    nxt = np.empty(m, np.int64)
    if m == 0:
        return regime, nxt
    lo = day.min()
    span = day.max() - lo + 1         # at most ~213,000 days (the int64 nanosecond range)
    regime_of = np.empty(span, np.int64)
    column_of = np.empty(span, np.int64)
    ncol = bounds.shape[1]
    k = 0
    e = 0
    for d in range(span):             # both searches once per day of the span
        while k < regime_starts.shape[0] and regime_starts[k] <= lo + d:
            k += 1
        while e < era_starts.shape[0] and era_starts[e] <= lo + d:
            e += 1
        regime_of[d] = k - 1
        column_of[d] = e - 1 if e >= 1 else e - 1 + ncol
    for j in range(m):
        d = day[j] - lo
        regime[j] = regime_of[d]
        nxt[j] = bounds[zone_idx[j], column_of[d]]
    return regime, nxt


def era_columns(day, zone_idx, regime_starts, era_starts, bounds):
    """``searchsorted(regime_starts, day, "right") - 1`` and ``bounds[zone_idx, searchsorted(era_starts,
    day, "right") - 1]`` (numpy indexing: -1 is the last column); the starts ascending."""
    return _era_columns(_ro(day, np.int64), _ro(zone_idx, np.int64), _ro(regime_starts, np.int64),
                        _ro(era_starts, np.int64), _ro(bounds, np.int64))


@njit(cache=True, nogil=True)
def _first_instants(codes, n_groups, sent, delivered, read):
    nat = np.iinfo(np.int64).min
    big = np.iinfo(np.int64).max
    first = np.full(n_groups, big, np.int64)
    for i in range(codes.shape[0]):
        t = big
        for v in (sent[i], delivered[i], read[i]):
            if v != nat and v < t:
                t = v
        g = codes[i]
        if g >= 0 and t < first[g]:
            first[g] = t
    for g in range(n_groups):
        if first[g] == big:
            first[g] = nat
    return first


def first_instants(codes, n_groups: int, sent, delivered, read) -> np.ndarray:
    """Per group (``codes`` 0..n_groups-1, -1 for none) the earliest of the instants ``sent``,
    ``delivered``, ``read`` (int64 ns, NaT = int64 min, ignored) of its rows; NaT when it has none."""
    return _first_instants(_codes_as_they_are(codes), np.int64(n_groups), _ro(sent, np.int64), _ro(delivered, np.int64),
                           _ro(read, np.int64))


@njit(cache=True, nogil=True)
def _local_days_by_table(t, zone_idx, table, base, bucket, day):
    out = np.empty(t.shape[0], np.int64)
    for i in range(t.shape[0]):
        v = t[i]
        out[i] = (v + table[zone_idx[i], (v - base) // bucket]) // day      # floor division
    return out


def local_days_by_table(t_ns, zone_idx, table, base: int, bucket: int, day: int) -> np.ndarray:
    """``floor((t + table[zone, (t - base) // bucket]) / day)`` per instant: local days from a table of
    UTC offsets per zone and bucket (every instant at or after ``base``, inside the table)."""
    return _local_days_by_table(_ro(t_ns, np.int64), _ro(zone_idx, np.int64), _ro(table, np.int64), np.int64(base),
                                np.int64(bucket), np.int64(day))


def warm_up() -> None:
    """Call every kernel once on tiny inputs of the argument types :mod:`.prepare` uses (loads them from
    numba's cache, or compiles them)."""
    strings = string_buffers(pa.array(["12", "3"], type=pa.large_string()))
    i = np.zeros(2, np.int64)
    b = np.zeros(2, np.bool_)
    lookup_strings(strings, strings)
    classify_rows(strings, strings, i, i, i, i)
    for code_type in CODE_TYPES:         # the kernels over Categorical codes: one signature per code type
        c = np.zeros(2, code_type)
        classify_codes((c, ["a"]), (c, ["a"]), i, i, i, i)
        renumber(c, np.zeros(1, np.int64))
        code_counts(c, 1)
        coded_row_attributes(b, i, (c, ["a"]), (c, ["a"]), (c, ["a"]), {"a": 0})
        first_instants(c, 1, i, i, i)
    digit_codes(strings)
    attrs = row_attributes(b, i, strings, strings, strings, {"a": 0})
    event_stats(i, i, i, i)
    rows, packed, payload = radix_sort_events(i, i, i, i, b, attrs, 0, 1, 1, 2, 2)
    tied_runs(packed)
    decode_events(rows, packed, payload, attrs, 0, 1, 1, 2, 1)
    _partition_events(packed, payload[0], packed.copy(), i.copy(), _ro(i), i.copy(), np.int64(0), np.int64(0),
                      np.int64(2))      # past PART_EVENTS events
    era_columns(i, i, i, i, np.zeros((1, 2), np.int64))
    local_days_by_table(i, i, np.zeros((1, 1), np.int64), 0, 1, 1)
