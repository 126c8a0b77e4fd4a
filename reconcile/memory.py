"""Process memory settings for a run: keep freed memory for reuse instead of handing it back.

A run allocates and frees gigabytes of large arrays (10M messages: every column is tens to hundreds
of MB). By default glibc serves each block above 32 MB with a fresh ``mmap`` and unmaps it when it is
freed, and Arrow's mimalloc pool returns freed pages to the kernel too; every new array then pays a
page fault per 4 KiB page on first touch. On virtual machines those faults are expensive (measured
on the 2-core development VM: first touch of 80 MB 150-200 ms, reuse 6 ms), so at 10M rows they
cost more than the computation itself.

:func:`keep_freed_memory` makes glibc serve large blocks from its heap and keep freed memory
(``mallopt`` ``M_MMAP_THRESHOLD`` / ``M_TRIM_THRESHOLD``) and routes Arrow's allocations through
the same allocator, so that memory freed inside a stage is reused inside it; :func:`release_unused`
(``malloc_trim``) still hands the free memory back between the big stages, which keeps peak RSS
at the live data. Measured at 10M messages (``benchmarks/engine.py``): read 9.3 -> 5.8 s, whole
run 44.9 -> 41.2 s, peak RSS 3.64 -> 3.88 GB; at 1M, warm, read + engine + compare 2.8 -> 2.1-2.5 s.
It is process-wide, applied once, only on Linux with glibc, and can be turned off with
``RECONCILE_KEEP_FREED_MEMORY=0``.
"""
from __future__ import annotations

import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks below this come from the heap (glibc accepts up to HEAP_MAX_SIZE / 2 on some versions)
_MMAP_THRESHOLD = 1 << 30
_TRIM_THRESHOLD = 1 << 30
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the settings once per process; returns whether they are in force."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("RECONCILE_KEEP_FREED_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):       # not glibc (e.g. musl): leave the defaults
        return False
    trimmed = mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    mapped = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
    if not (trimmed and mapped):
        return False
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    _applied = True
    return True


def release_unused() -> None:
    """Return the free memory the allocators cache to the kernel (between stages, so that the next
    stage's peak does not add to it; with :func:`keep_freed_memory` Arrow's system pool calls glibc's
    ``malloc_trim``)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
