"""Progress reporting seam: the pipeline announces stages, the caller decides how to show them.

The CLI plugs in a rich display; the DAGs and tests use the default, which logs to the
``reconcile`` logger (never user phone numbers: stage names and counts only).
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator, Protocol

log = logging.getLogger("reconcile")


class Progress(Protocol):
    def stage(self, name: str, detail: str = "") -> "contextmanager[None]": ...  # pragma: no cover

    def note(self, text: str) -> None: ...  # pragma: no cover


class LogProgress:
    """Default progress: one log line when a stage starts and ends, with its duration."""

    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        log.info("%s %s", name, detail)
        t0 = time.perf_counter()
        yield
        log.info("%s done in %.2f s", name, time.perf_counter() - t0)

    def note(self, text: str) -> None:
        log.info("%s", text)
