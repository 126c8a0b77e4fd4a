"""reconcile.memory: glibc keeps freed blocks for reuse; Arrow's cache is returned only when large."""
import platform
import resource

import numpy as np
import pyarrow as pa
import pytest

from reconcile import memory


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc mallopt only")
def test_freed_arrays_are_reused_without_page_faults():
    assert memory.keep_freed_memory() is True
    assert memory.keep_freed_memory() is True          # once per process, same answer

    def one_stage() -> int:                             # arrays of several sizes, freed out of order
        a, b = np.ones(1_000_000, np.int64), np.ones(2_000_000, np.int64)
        c = np.ones(3_000_000, np.int32)
        del a
        d = np.ones(500_000)
        return int(b.sum() + c.sum() + d.sum())

    for _ in range(2):                                  # the first rounds grow the heap
        one_stage()
    before = _minor_faults()
    for _ in range(5):
        assert one_stage() == 5_500_000
    # glibc's defaults map and unmap these blocks: ~8,000 faults in five rounds (measured); tuned,
    # the freed blocks are reused and (almost) nothing faults
    assert _minor_faults() - before < 500


def test_arrow_cache_is_kept_below_the_threshold(monkeypatch):
    pool = pa.default_memory_pool()
    monkeypatch.setattr(memory, "RELEASE_ABOVE_BYTES", pool.max_memory() + 1)
    assert memory.release_unused() is False
    monkeypatch.setattr(memory, "RELEASE_ABOVE_BYTES", 0)
    assert memory.release_unused() is True
