"""reconcile.memory: allocator settings applied once, switchable off, Arrow routed through glibc."""
from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = ("import pyarrow as pa, reconcile.memory as m; applied = m.keep_freed_memory(); "
         "again = m.keep_freed_memory(); m.release_unused(); "
         "print(applied, again, pa.default_memory_pool().backend_name)")


def _run(env_value: str | None) -> list[str]:
    import os

    env = dict(os.environ)
    env.pop("RECONCILE_KEEP_FREED_MEMORY", None)
    if env_value is not None:
        env["RECONCILE_KEEP_FREED_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, check=True)
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_keep_freed_memory_routes_arrow_through_the_system_allocator_once():
    # a fresh process each: the settings are process-wide
    assert _run(None) == ["True", "True", "system"]


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_keep_freed_memory_can_be_switched_off(value):
    applied, again, backend = _run(value)
    assert (applied, again) == ("False", "False")
    assert backend != "system"          # Arrow keeps its default pool (mimalloc or jemalloc)
