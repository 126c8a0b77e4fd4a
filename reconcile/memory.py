"""Peak memory of a run: hand the memory freed by one stage back before the next one grows.

Arrow's allocator (mimalloc) keeps the pages of freed buffers for reuse; at 10M messages the reader's
and deduplication's intermediates leave ~2 GB cached, which would add to the engine's peak RSS.
:func:`release_unused` returns them between the big stages (after reading, after deduplicating,
once the events are prepared, after windowing).

Tried and measured on the 2-core development VM (2026-11-25, ``benchmarks/engine.py`` and repeated
1M runs in one process counting minor page faults): keeping freed memory instead (glibc ``mallopt``
``M_MMAP_THRESHOLD``/``M_TRIM_THRESHOLD`` with Arrow on the system allocator) did not lower the page
faults (~190-280k per 1M run against ~175k with these defaults) nor the run time, and raised peak RSS
at 10M from 3.6 to 5.1 GB; it was removed.
"""
from __future__ import annotations


def release_unused() -> None:
    """Return the free memory Arrow's allocator caches to the kernel."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
