"""Arrow string arrays as numpy views for the compiled kernels: ``(offsets int64, bytes uint8)``.

Every kernel that reads strings (:mod:`.hashing`, :mod:`.sorting`, :mod:`reconcile.conservation`,
:mod:`reconcile.io.instants`) takes them from :func:`string_buffers` / :func:`chunk_buffers`:
read-only, C-contiguous views of the array's own buffers (no copy of the bytes), so that each kernel
is compiled for one signature. :func:`code_type` sizes the integer codes of few-valued columns.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def code_type(largest: int) -> np.dtype:
    """The smallest signed integer type that holds the codes ``0..largest`` (what a pandas Categorical
    keeps its codes in: codes of that type are used without a copy)."""
    return np.min_scalar_type(-largest - 1)


def read_only(x, dtype=None) -> np.ndarray:
    """A read-only C-contiguous view (a copy only if not contiguous or of another dtype)."""
    x = np.ascontiguousarray(x, dtype=dtype)
    if x.flags.writeable:
        x = x.view()
        x.flags.writeable = False
    return x


def string_buffers(arr) -> tuple[np.ndarray, np.ndarray] | None:
    """``(offsets int64, bytes uint8)`` of a one-chunk Arrow string array without nulls, else ``None``."""
    if isinstance(arr, pa.ChunkedArray):
        if arr.num_chunks != 1:
            return None
        arr = arr.chunk(0)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) or arr.null_count:
        return None
    return chunk_buffers(arr)


def chunk_buffers(chunk) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets int64, bytes uint8)`` read-only views of one Arrow ``string``/``large_string`` array,
    nulls or not (its slice offset applied; offsets index the whole data buffer)."""
    n = len(chunk)
    buffers = chunk.buffers()
    if buffers[1] is None:
        return read_only(np.zeros(n + 1, np.int64)), read_only(np.zeros(1, np.uint8))
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=width)[chunk.offset:chunk.offset + n + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None and buffers[2].size \
        else np.zeros(1, np.uint8)
    return read_only(offsets, np.int64), read_only(data)
