"""``reconcile.engine.load_kernels`` (run by ``make install`` and the Airflow image build) reaches every
compiled kernel, so that no run pays numba's first compilation."""
from __future__ import annotations

import importlib
import inspect

from numba.core.registry import CPUDispatcher

KERNEL_MODULES = ("reconcile.engine.windows", "reconcile.engine.hashing", "reconcile.engine.sorting",
                  "reconcile.engine.string_sets", "reconcile.engine.accounts", "reconcile.engine.numbers",
                  "reconcile.conservation", "reconcile.io.instants")


def test_load_kernels_compiles_or_loads_every_numba_kernel_of_the_package():
    from reconcile.engine import load_kernels

    load_kernels()
    kernels = {name: obj for m in KERNEL_MODULES for name, obj in vars(importlib.import_module(m)).items()
               if isinstance(obj, CPUDispatcher) and obj.__module__ == m}
    sources = {name: inspect.getsource(k.py_func) for name, k in kernels.items()}
    # helpers called only from other kernels are compiled into their callers (no signature of their own)
    helpers = {name for name in kernels
               if any(f"{name}(" in src for other, src in sources.items() if other != name)}
    entry_points = sorted(set(kernels) - helpers)
    assert {"window_pass", "_repeated_hashes", "_radix_sort_range", "_locate_openers"} <= set(entry_points)
    assert [name for name in entry_points if not kernels[name].signatures] == []
    assert all(type(k._cache).__name__ == "FunctionCache" for k in kernels.values())     # cache=True
