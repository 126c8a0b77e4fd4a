"""Process settings for the length of a run: how memory is reused and how often threads may take the GIL.

A run hands independent work to second threads (the users' codes, the coverage, the units' string
columns, the event sort's halves, hashing, the reference files). Their compiled kernels and Arrow
calls release the GIL, but each must take it back to hand over its result, and the main thread holds
it while it runs Python. With CPython's default switch interval (5 ms) such a thread waits up to 5 ms
each time. :func:`run_settings` lowers the interval to :data:`SWITCH_INTERVAL_S` for the run and
restores the caller's value afterwards.

On the 2-core development VM (2026-11-26), the median over five warm 1M runs of read + engine +
compare was 0.43-0.48 s instead of 0.48-0.55 s, with four process pairs measured alternately.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from .memory import keep_freed_memory

#: seconds a thread runs Python before another waiting thread is given the GIL (CPython default: 0.005)
SWITCH_INTERVAL_S = 0.0005


@contextmanager
def run_settings() -> Iterator[None]:
    """For the block: a short GIL switch interval (restored afterwards) and glibc's allocator set to
    reuse freed memory (:func:`reconcile.memory.keep_freed_memory`, once per process)."""
    keep_freed_memory()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
