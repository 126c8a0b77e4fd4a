"""Local dates (rule book section 0: eras and billing months use the charge instant's date in the
account time zone) from the quarter-hour table of UTC offsets equal those of converting every instant,
across daylight-saving changes, half- and quarter-hour zones and a 30-minute DST shift."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.engine import prepare
from reconcile.engine.prepare import DAY_NS, _local_days_direct, local_days

ZONES = ["UTC", "America/Sao_Paulo", "Asia/Kolkata", "America/New_York", "Europe/London", "Asia/Kathmandu",
         "Australia/Lord_Howe", "Pacific/Chatham", "America/St_Johns"]
# spans that hold DST changes: Sao Paulo still had DST until 2019, the others change every year
STARTS = [pd.Timestamp(s).value for s in ("2017-10-10", "2018-02-10", "2021-03-01", "2024-10-20", "2026-03-25")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(STARTS), st.lists(st.sampled_from(ZONES), min_size=1, max_size=4, unique=True),
       st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_table_of_offsets_gives_the_dates_of_direct_conversion(start, zones, seed, days):
    rng = np.random.default_rng(seed)
    n = 200_000                       # enough instants for the table path (n >= 4 x buckets x zones)
    t = start + rng.integers(0, days * DAY_NS, n)
    base = int(t.min()) - int(t.min()) % prepare._OFFSET_BUCKET_NS
    buckets = (int(t.max()) - int(t.min())) // prepare._OFFSET_BUCKET_NS + 2
    assert prepare._offset_table(zones, base, buckets) is not None      # the table path is the one tested
    # instants exactly on and around quarter hours, where offsets change
    t[: n // 4] = t[: n // 4] - t[: n // 4] % (15 * 60 * 10**9) + rng.integers(-1, 2, n // 4)
    zone_idx = rng.integers(0, len(zones), n)
    assert np.array_equal(local_days(t, zone_idx, zones), _local_days_direct(t, zone_idx, zones))


def test_known_local_dates_at_a_month_end():
    # 2025-07-31 23:30 in Sao Paulo is 2025-08-01 02:30 UTC; 2025-07-31 18:30 UTC is 2025-08-01 00:00 in Kolkata
    zones = ["America/Sao_Paulo", "Asia/Kolkata"]
    t = np.array([pd.Timestamp("2025-08-01T02:30:00Z").value, pd.Timestamp("2025-07-31T18:30:00Z").value,
                  pd.Timestamp("2025-07-31T18:29:59.999999999Z").value] * 20_000, dtype=np.int64)
    zone_idx = np.array([0, 1, 1] * 20_000)
    days = local_days(t, zone_idx, zones)
    expected = [pd.Timestamp(d).value // DAY_NS for d in ("2025-07-31", "2025-08-01", "2025-07-31")]
    assert days[:3].tolist() == expected
