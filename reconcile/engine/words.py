"""Strings of Arrow buffers (``offsets`` int64, ``data`` uint8, see :mod:`.buffers`) read eight bytes at a
time: the inlined helpers of the compiled kernels that compare or hash strings (:mod:`.hashing`,
:mod:`reconcile.conservation`).

Byte positions are ``uint64``: with a signed index numba checks every read for a negative (wrap-around)
index, which keeps LLVM from merging the eight byte reads of a word into one load. A string's *key* is
its length and its first 16 bytes as two words (zeros past its end): two strings are equal when their
keys are and, for strings longer than 16 bytes, their bytes from 16 on. The helpers are inlined
(``inline="always"``). Calling a helper that takes many arrays from a loop over rows, even an inlined
one, was measured to cost several times the work itself: the probing of the hash tables is written out
in the callers' loops.
"""
from __future__ import annotations

import numpy as np
from numba import njit

ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True, inline="always")
def load8(data, start):
    """Bytes ``start .. start + 7`` as one little-endian 64-bit word (all must be in ``data``)."""
    s = np.uint64(start)
    return (np.uint64(data[s]) | (np.uint64(data[s + np.uint64(1)]) << np.uint64(8))
            | (np.uint64(data[s + np.uint64(2)]) << np.uint64(16))
            | (np.uint64(data[s + np.uint64(3)]) << np.uint64(24))
            | (np.uint64(data[s + np.uint64(4)]) << np.uint64(32))
            | (np.uint64(data[s + np.uint64(5)]) << np.uint64(40))
            | (np.uint64(data[s + np.uint64(6)]) << np.uint64(48))
            | (np.uint64(data[s + np.uint64(7)]) << np.uint64(56)))


@njit(cache=True, nogil=True, inline="always")
def word(data, start, nbytes):
    """The ``nbytes`` (clipped to 0..8) bytes from ``start`` as a little-endian word, zeros above them.
    One load when 8 bytes are readable there (the bytes past the string are masked off), else byte by byte
    (the end of the buffer)."""
    m = min(max(nbytes, 0), 8)
    if start + 8 <= data.shape[0]:
        half = np.uint64(4 * m)               # two shifts: a shift by 64 is undefined
        return load8(data, start) & ~((ALL_ONES << half) << half)
    w = np.uint64(0)
    for j in range(m):
        w |= np.uint64(data[np.uint64(start + j)]) << np.uint64(8 * j)
    return w


@njit(cache=True, nogil=True, inline="always")
def key(offsets, data, i):
    """String ``i``'s key: ``(length, first 8 bytes, next 8 bytes)``."""
    start = offsets[i]
    n = offsets[i + 1] - start
    return n, word(data, start, n), word(data, start + 8, n - 8)


@njit(cache=True, nogil=True, inline="always")
def string_hash(offsets, data, i, n, w0, w1):
    """64-bit hash of string ``i`` (key ``n, w0, w1``): its key, then its bytes from 16 on eight at a
    time, then the murmur3 finaliser (so that both its low bits, the table slot, and its high bits, the
    tag and the filter bit, are well mixed)."""
    h = np.uint64(n) * GOLDEN
    h = (h ^ w0) * GOLDEN
    h ^= h >> np.uint64(29)
    h = (h ^ w1) * GOLDEN
    h ^= h >> np.uint64(29)
    start = offsets[i]
    for k in range(16, n, 8):                  # (a for loop: measured faster here than a while loop)
        w = load8(data, start + k) if k + 8 <= n else word(data, start + k, n - k)
        h = (h ^ w) * GOLDEN
        h ^= h >> np.uint64(29)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h
