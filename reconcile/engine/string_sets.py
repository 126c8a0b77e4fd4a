"""String sets over Arrow buffers: the distinct strings of an array, numbered in order of first
appearance (what ``pc.dictionary_encode`` gives), found by one compiled pass with the eight-bytes-a-load
helpers of :mod:`.words`. Used by the engine's sorted codes (:func:`.prepare.sorted_codes`), the
comparison's group columns (:mod:`reconcile.compare`) and the conservation checks, which also probe a
set's table themselves (:mod:`reconcile.conservation`).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from .buffers import string_buffers
from .words import key as _key
from .words import load8 as _load8
from .words import string_hash as _hash
from .words import word as _word


@njit(cache=True, nogil=True, inline="always")
def same_tail(offsets1, data1, i, offsets2, data2, j):
    """The bytes from 16 on of string ``i`` (first buffers) and string ``j`` (second), of one length."""
    start1 = offsets1[i]
    start2 = offsets2[j]
    n = offsets1[i + 1] - start1
    diff = np.uint64(0)
    for k in range(16, n, 8):                  # whole words: one unmasked load each
        if k + 8 <= n:
            diff |= _load8(data1, start1 + k) ^ _load8(data2, start2 + k)
        else:
            diff |= _word(data1, start1 + k, n - k) ^ _word(data2, start2 + k, n - k)
    return diff == 0


# A *string set*: the distinct strings of one array (``t_off``/``t_data``), numbered in order of first
# appearance, with per distinct string its key (``keys``, one row of three words) and first row
# (``first_row``), and an open-addressing table (at most half full) whose slot is 0 (empty) or the
# hash's high half (tag) << 32 | number + 1.

@njit(cache=True, nogil=True, inline="always")
def hash_tag(h):
    """The table tag of a string hash: its high half, never 0 (0 marks an empty slot)."""
    return (h >> np.uint64(32)) | np.uint64(1)


@njit(cache=True, nogil=True, inline="always")
def key_is(keys, d, n, w0, w1):
    """Distinct string ``d`` of a set has the key ``n, w0, w1``."""
    return (keys[d, 0] == np.uint64(n)) & (keys[d, 1] == w0) & (keys[d, 2] == w1)


@njit(cache=True, nogil=True)
def string_set(offsets, data, capacity):
    """The set of the strings of ``offsets``/``data`` and each string's number in it, for at most
    ``capacity`` distinct strings (what is allocated). Returns ``(numbers, table, mask, keys, first_row,
    hashes)``, the last three per distinct string; with more distinct strings, empty ``numbers``."""
    n = offsets.shape[0] - 1
    size = 2
    while size < 2 * capacity:
        size <<= 1
    table = np.zeros(size, np.uint64)
    mask = np.uint64(size - 1)
    keys = np.empty((capacity, 3), np.uint64)
    first_row = np.empty(capacity, np.int64)
    hashes = np.empty(capacity, np.uint64)
    numbers = np.empty(n, np.int64)
    nd = 0
    for i in range(n):
        length, w0, w1 = _key(offsets, data, i)
        h = _hash(offsets, data, i, length, w0, w1)
        tag = hash_tag(h)
        s = h & mask
        d = -1
        while table[s] != 0:
            if table[s] >> np.uint64(32) == tag:
                e = np.int64(table[s] & np.uint64(0xFFFFFFFF)) - 1
                if key_is(keys, e, length, w0, w1) and (
                        length <= 16 or same_tail(offsets, data, i, offsets, data, first_row[e])):
                    d = e
                    break
            s = (s + np.uint64(1)) & mask
        if d < 0:
            if nd == capacity:
                return numbers[:0], table, mask, keys[:0], first_row[:0], hashes[:0]
            table[s] = (tag << np.uint64(32)) | np.uint64(nd + 1)
            keys[nd, 0] = np.uint64(length)
            keys[nd, 1] = w0
            keys[nd, 2] = w1
            first_row[nd] = i
            hashes[nd] = h
            d = nd
            nd += 1
        numbers[i] = d
    return numbers, table, mask, keys[:nd], first_row[:nd], hashes[:nd]



def first_occurrence_codes(strings: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """``(codes, first)`` of a contiguous string array without nulls, as ``pc.dictionary_encode`` gives
    them: each string's code in order of first occurrence and the first position of each distinct
    string (compiled, :func:`string_set`); ``None`` for an array with nulls."""
    buffers = string_buffers(strings)
    if buffers is None:
        return None
    n = len(strings)
    codes, _, _, _, first, _ = string_set(buffers[0], buffers[1], min(n, 1024))   # mostly few values:
    if len(codes) < n:                                                            # small tables
        codes, _, _, _, first, _ = string_set(buffers[0], buffers[1], n)
    return codes, first
