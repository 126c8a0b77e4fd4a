"""Compiled helpers over Arrow string buffers: which strings occur more than once.

Used by the duplicates rule (rule book section 0) to find the few repeated ``message_id`` values
among millions without building a hash table of Python or Arrow strings: one pass hashes each
string eight bytes at a time (:func:`.words.string_hash`), a second inserts the hashes in an
open-addressing table of one word per slot, and marks a string and the first string of its hash
when the hash is already there. Equal hashes are only *candidates*: the caller confirms them on the
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


@njit(cache=True, nogil=True)
def _repeated_hashes(offsets, data):
    """``True`` for each string (``data[offsets[i]:offsets[i + 1]]``) whose hash's high half occurs
    more than once in its probe run (always when the string itself occurs more than once).

    The table (a power of two >= 2n slots, at most half full) holds per slot 0 (empty) or the hash's
    high 32 bits << 32 | the first row of that hash + 1. A row meeting its tag marks itself and that
    first row: one pass, no count per slot and no second probe."""
    n = offsets.shape[0] - 1
    hashes = np.empty(n, np.uint64)
    for i in range(n):
        length, w0, w1 = key(offsets, data, i)
        hashes[i] = string_hash(offsets, data, i, length, w0, w1)
    size = 2
    while size < 2 * n:
        size <<= 1
    mask = np.uint64(size - 1)
    table = np.zeros(size, np.uint64)
    out = np.zeros(n, np.bool_)
    for i in range(n):
        h = hashes[i]
        tag = h >> np.uint64(32)
        s = h & mask
        while True:
            e = table[s]
            if e == 0:
                table[s] = (tag << np.uint64(32)) | np.uint64(i + 1)
                break
            if (e >> np.uint64(32)) == tag:
                out[i] = True
                out[np.int64(e & _LOW32) - 1] = True
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
