"""reconcile.run_settings: a short GIL switch interval for the run, the caller's value restored."""
import sys

import pytest

from reconcile.run_settings import SWITCH_INTERVAL_S, run_settings


def test_switch_interval_is_short_inside_and_restored_after():
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        with run_settings():
            assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S, rel=0.02)
        assert sys.getswitchinterval() == pytest.approx(0.005, rel=0.02)
        with pytest.raises(RuntimeError):             # restored when the run fails too
            with run_settings():
                raise RuntimeError("boom")
        assert sys.getswitchinterval() == pytest.approx(0.005, rel=0.02)
        sys.setswitchinterval(0.0001)                 # a caller's shorter interval is kept
        with run_settings():
            assert sys.getswitchinterval() == pytest.approx(0.0001, rel=0.02)
    finally:
        sys.setswitchinterval(before)
