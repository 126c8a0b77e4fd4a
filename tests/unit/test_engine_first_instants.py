"""``_first_instant_per_account``: the earliest sent/delivered/read instant per account, whatever the
instant columns' dtype (the readers' ``datetime64[ns, UTC]`` is read without a copy)."""
from __future__ import annotations

import pandas as pd

from reconcile.engine import _first_instant_per_account


def _messages(unit: str, tz: str | None) -> pd.DataFrame:
    def col(values):
        s = pd.Series(pd.to_datetime(values)).astype(f"datetime64[{unit}]")
        return s.dt.tz_localize(tz) if tz else s
    return pd.DataFrame({
        "waba_id": pd.Categorical(["W2", "W1", "W2", "W3"], categories=["W1", "W2", "W3", "W4"]),
        "sent_at": col(["2025-07-03 10:00", "2025-07-02 09:00", None, None]),
        "delivered_at": col(["2025-07-03 10:01", None, "2025-07-01 08:00", None]),
        "read_at": col([None, "2025-07-01 23:59", None, None]),
    })


def test_earliest_instant_per_account_for_every_instant_dtype():
    expected = pd.Series(pd.to_datetime(["2025-07-01 23:59", "2025-07-01 08:00", None]),
                         index=["W1", "W2", "W3"]).dt.tz_localize("UTC")
    for unit, tz in (("ns", "UTC"), ("us", "UTC"), ("ns", None), ("ns", "America/Sao_Paulo")):
        got = _first_instant_per_account(_messages(unit, tz))
        without_account = _messages(unit, tz)
        without_account.loc[1, "waba_id"] = None               # W1's only row: W1 is no longer present
        assert "W1" not in _first_instant_per_account(without_account).index
        if tz == "America/Sao_Paulo":          # the same wall times, 3 hours later in UTC
            assert got.index.tolist() == ["W1", "W2", "W3"]
            assert got["W1"] == pd.Timestamp("2025-07-02 02:59", tz="UTC")
            continue
        pd.testing.assert_series_equal(got, expected.astype(got.dtype), check_freq=False)
