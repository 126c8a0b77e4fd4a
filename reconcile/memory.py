"""Process memory of a run: reuse freed memory within a run, hand it back between stages only when large.

Two allocators hold a run's arrays. numpy arrays and the compiled kernels' arrays come from glibc's
``malloc``; Arrow buffers come from Arrow's pool (mimalloc).

**glibc (:func:`keep_freed_memory`).** By default, glibc serves every allocation above a dynamic
threshold (128 KiB at first) with a fresh ``mmap`` and unmaps it on ``free``. Every 8 MB per-message
array of a 1M-message run therefore page-faults all of its pages again. A fault costs 2-8 µs on the
development VM, against ~0.4 ms to fill a reused 8 MB array. The threshold is raised to 32 MiB and
the heap's top is trimmed only above 256 MiB. Arrays of up to 4M rows are then reused from the heap
within a run and across runs in one process. The per-message arrays of a 10M run (80 MB each) are
still mapped and unmapped one by one, so the peak RSS of a large run does not grow.

**Arrow (:func:`release_unused`).** Arrow's allocator keeps the pages of freed buffers for reuse. At 10M
messages the reader's and deduplication's intermediates leave ~2 GB cached, which would add to the
engine's peak RSS. :func:`release_unused` returns them between the big stages (after reading, after
deduplicating, once the events are prepared, after windowing). It does so only once the pool has held
more than :data:`RELEASE_ABOVE_BYTES`: below that, the cache is smaller than what returning it costs
in page faults at the next stage.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

#: glibc ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20       # glibc's documented maximum on 64-bit systems
TRIM_THRESHOLD_BYTES = 256 << 20
#: Arrow's cached free memory is returned to the kernel only once its pool has held this much
RELEASE_ABOVE_BYTES = 1 << 30

_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Let glibc's ``malloc`` reuse freed blocks of up to :data:`MMAP_THRESHOLD_BYTES` instead of
    mapping fresh pages for each (see the module docstring). Once per process; ``False`` where the C
    library is not glibc (macOS, musl), which keeps its defaults."""
    global _tuned
    if _tuned is None:
        _tuned = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and \
                    bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
            except (OSError, AttributeError):
                _tuned = False
    return _tuned


def release_unused() -> bool:
    """Return the free memory Arrow's allocator caches to the kernel, once its pool has held more
    than :data:`RELEASE_ABOVE_BYTES` (``True`` when it did)."""
    import pyarrow as pa

    pool = pa.default_memory_pool()
    if pool.max_memory() < RELEASE_ABOVE_BYTES:
        return False
    pool.release_unused()
    return True
