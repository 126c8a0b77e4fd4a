"""User numbers grouped into *market classes* by one compiled pass over their Arrow buffers (see
:mod:`.buffers`), for :func:`reconcile.rules.markets.resolve_number_codes`.

A number is read with ``+`` and spaces dropped (what the resolution tolerates). Its class is then its
length and its first :data:`CLASS_PREFIX` digits: outside the shared calling codes other than ``+1``
that is all its calling code, country, market and problem follow from (calling codes have at most
3 digits, ``+1`` is split by its 3-digit area code). Every string that is not digits (or is empty) is
one class of its own (unparseable). Lengths above :data:`LONG_LENGTH` share one class per prefix: with
at most 3 digits of calling code and at most 17 of national number, all of them are unparseable or
have no calling code, by their prefix alone.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from .buffers import chunk_buffers
from .buffers import read_only as _ro

#: digits of a number's prefix in its class
CLASS_PREFIX = 4
#: lengths above this one share their prefix's class (see the module docstring)
LONG_LENGTH = 21
#: the class key of every string that is not digits
NOT_DIGITS = 0


@njit(cache=True, nogil=True)
def _number_classes(offsets, data, rows, prefix_digits, long_length):
    n = rows.shape[0]
    scale = 10 ** prefix_digits
    table = np.full(1 + (long_length + 1) * scale, -1, np.int64)    # class key → class number
    cls = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    keys = np.empty(n, np.int64)
    n_classes = 0
    dropped = False
    for i in range(n):
        r = rows[i]
        length = 0
        prefix = 0
        digits = True
        for b in range(offsets[r], offsets[r + 1]):
            c = data[b]
            if c == 43 or c == 32:              # '+' and ' ' are dropped
                dropped = True
                continue
            if c < 48 or c > 57:
                digits = False
                break
            if length < prefix_digits:
                prefix = prefix * 10 + (c - 48)
            length += 1
        key = 1 + min(length, long_length) * scale + prefix if digits and length > 0 else 0
        k = table[key]
        if k < 0:
            k = n_classes
            table[key] = k
            first[k] = i
            keys[k] = key
            n_classes += 1
        cls[i] = k
    return cls, first[:n_classes].copy(), keys[:n_classes].copy(), dropped


def number_classes(numbers: pa.Array, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Market classes of the strings ``numbers[rows]`` (nulls read as empty): ``(cls, first, keys,
    dropped)`` = each string's class number (classes numbered in order of first appearance), per class
    its first position in ``rows`` and its key (:data:`NOT_DIGITS`, or ``1 + min(length, LONG_LENGTH) *
    10**CLASS_PREFIX + prefix``: one key per class whatever the input), and whether any string has a
    ``+`` or a space."""
    if isinstance(numbers, pa.ChunkedArray):
        numbers = numbers.combine_chunks()
    if numbers.null_count:
        numbers = pc.fill_null(numbers, "")
    offsets, data = chunk_buffers(numbers)
    return _number_classes(offsets, data, _ro(rows, np.int64), np.int64(CLASS_PREFIX), np.int64(LONG_LENGTH))
