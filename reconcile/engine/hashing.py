"""Compiled helpers over Arrow string buffers: which strings occur more than once.

Used by the duplicates rule (rule book section 0) to find the few repeated ``message_id`` values
among millions without building a hash table of Python or Arrow strings: one pass hashes each
string's bytes (64-bit FNV-1a), a second counts the hashes in an open-addressing table. Equal
hashes are only *candidates*: the caller confirms them on the strings themselves, so a hash
collision costs time, never a wrong answer.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from .buffers import string_buffers

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)


@njit(cache=True, nogil=True)
def fnv1a(offsets, data, i):
    """64-bit FNV-1a of the bytes of string ``i`` (``data[offsets[i]:offsets[i + 1]]``). The one string
    hash of the compiled kernels here and in :mod:`.sorting`."""
    h = _FNV_OFFSET
    for j in range(offsets[i], offsets[i + 1]):
        h = (h ^ np.uint64(data[j])) * _FNV_PRIME
    return h


@njit(cache=True, nogil=True)
def _repeated_hashes(offsets, data):
    """``True`` for each string (``data[offsets[i]:offsets[i + 1]]``) whose hash occurs more than once."""
    n = offsets.shape[0] - 1
    hashes = np.empty(n, np.uint64)
    for i in range(n):
        hashes[i] = fnv1a(offsets, data, i)
    size = 1
    while size < 2 * n:
        size <<= 1
    mask = np.uint64(size - 1)
    keys = np.zeros(size, np.uint64)
    used = np.zeros(size, np.bool_)
    count = np.zeros(size, np.int32)
    slot_of = np.empty(n, np.int64)
    for i in range(n):
        h = hashes[i]
        s = (h ^ (h >> np.uint64(31))) & mask
        while used[s] and keys[s] != h:
            s = (s + np.uint64(1)) & mask
        if not used[s]:
            used[s] = True
            keys[s] = h
        count[s] += 1
        slot_of[i] = s
    out = np.empty(n, np.bool_)
    for i in range(n):
        out[i] = count[slot_of[i]] > 1
    return out


def repeated_candidates(strings: pa.Array) -> np.ndarray:
    """Boolean mask over ``strings`` (a contiguous ``string``/``large_string`` array without nulls):
    ``True`` where the string's hash repeats, i.e. every repeated string and, rarely, a collision."""
    if len(strings) == 0:
        return np.zeros(0, dtype=bool)
    buffers = string_buffers(strings)
    if buffers is None:
        raise ValueError("repeated_candidates needs one contiguous string array without nulls")
    return _repeated_hashes(*buffers)
