"""Compiled helpers over Arrow string buffers: which strings occur more than once.

Used by the duplicates rule (rule book section 0) to find the few repeated ``message_id`` values
among millions without building a hash table of Python or Arrow strings: one pass hashes each
string eight bytes at a time (:func:`.words.string_hash`), the hashes are split in parts by their
top bits, and each part's hashes are inserted in a small open-addressing table of one word per slot,
marking a string and the first string of its hash when the hash is already there. Equal hashes are only *candidates*: the caller confirms them on the
strings themselves, so a hash collision costs time, never a wrong answer.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from .buffers import string_buffers
from .words import key, string_hash

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_LOW32 = np.uint64(0xFFFFFFFF)
_MAX_ROWS = 0xFFFFFFFF - 1              # a row number + 1 must fit in a slot's low 32 bits


@njit(cache=True, nogil=True)
def fnv1a(offsets, data, i):
    """64-bit FNV-1a of the bytes of string ``i`` (``data[offsets[i]:offsets[i + 1]]``), byte by byte.
    The string hash of the kernels of :mod:`.sorting`."""
    h = _FNV_OFFSET
    for j in range(offsets[i], offsets[i + 1]):
        h = (h ^ np.uint64(data[j])) * _FNV_PRIME
    return h


#: the hashes are split by their top this many bits into parts, each searched with its own small
#: table: a part's table stays in the caches instead of one table of 2n slots that misses
_PART_BITS = 8
_PARTS = 1 << _PART_BITS


@njit(cache=True, nogil=True)
def _repeated_hashes(offsets, data):
    """``True`` for each string (``data[offsets[i]:offsets[i + 1]]``) whose hash occurs more than once
    in its part and probe run with the same tag (always when the string itself occurs more than once).

    One pass hashes every string and counts the hashes per part (top bits); a second moves each hash and
    its row to its part (stable). Per part, a table (a power of two >= 2 * its size slots, at most half
    full) holds per slot 0 (empty) or a tag of the hash (bits 24..55) << 32 | the hash's position in the
    part + 1. A hash meeting its tag marks its row and that first row: no count per slot and no second
    probe."""
    n = offsets.shape[0] - 1
    shift = np.uint64(64 - _PART_BITS)
    hashes = np.empty(n, np.uint64)
    start = np.zeros(_PARTS + 1, np.int64)
    for i in range(n):
        length, w0, w1 = key(offsets, data, i)
        h = string_hash(offsets, data, i, length, w0, w1)
        hashes[i] = h
        start[np.int64(h >> shift) + 1] += 1
    largest = 0
    for p in range(_PARTS):
        largest = max(largest, start[p + 1])
        start[p + 1] += start[p]
    at = start[:-1].copy()
    part_hash = np.empty(n, np.uint64)
    part_row = np.empty(n, np.uint32)
    for i in range(n):
        h = hashes[i]
        q = at[np.int64(h >> shift)]
        at[np.int64(h >> shift)] = q + 1
        part_hash[q] = h
        part_row[q] = i
    size = 2
    while size < 2 * largest:
        size <<= 1
    table = np.empty(size, np.uint64)
    out = np.zeros(n, np.bool_)
    for p in range(_PARTS):
        lo = start[p]
        size = 2
        while size < 2 * (start[p + 1] - lo):
            size <<= 1
        mask = np.uint64(size - 1)
        table[:size] = 0
        for j in range(lo, start[p + 1]):
            h = part_hash[j]
            tag = (h >> np.uint64(24)) & _LOW32
            s = h & mask
            while True:
                e = table[s]
                if e == 0:
                    table[s] = (tag << np.uint64(32)) | np.uint64(j - lo + 1)
                    break
                if (e >> np.uint64(32)) == tag:
                    out[part_row[j]] = True
                    out[part_row[lo + np.int64(e & _LOW32) - 1]] = True
                    break
                s = (s + np.uint64(1)) & mask
    return out


def repeated_candidates(strings: pa.Array) -> np.ndarray:
    """Boolean mask over ``strings`` (a contiguous ``string``/``large_string`` array without nulls):
    ``True`` where the string's hash repeats, i.e. every repeated string and, rarely, a collision."""
    if len(strings) == 0:
        return np.zeros(0, dtype=bool)
    if len(strings) > _MAX_ROWS:
        raise ValueError("repeated_candidates takes at most 2**32 - 2 strings")
    buffers = string_buffers(strings)
    if buffers is None:
        raise ValueError("repeated_candidates needs one contiguous string array without nulls")
    return _repeated_hashes(*buffers)
