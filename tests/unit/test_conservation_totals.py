"""totals_by_currency: the compiled route (float amounts, a string currency column without nulls) gives
pandas' groupby sum bit for bit (its compensated summation repeated), in the same sorted order; other
columns take pandas' route."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reconcile import conservation as cons


def _pandas(frame: pd.DataFrame, amount: str) -> dict[str, float]:
    return {str(k): float(v) for k, v in frame.groupby("currency")[amount].sum(min_count=0).items()}


def test_compensated_sum_keeps_what_a_plain_sum_loses():
    # 1e16 + 1 + 1 - 1e16: a plain left-to-right sum gives 0 (each 1 is lost), Kahan's gives 2
    frame = pd.DataFrame({"currency": pd.array(["USD"] * 4, dtype="str"), "amount": [1e16, 1.0, 1.0, -1e16]})
    assert cons.totals_by_currency(frame, "amount") == {"USD": 2.0} == _pandas(frame, "amount")


def test_sorted_currencies_missing_amounts_skipped_and_infinities():
    frame = pd.DataFrame({"currency": pd.array(["USD", "EUR", "", "USD", "EUR", "BRL"], dtype="str"),
                          "amount": [0.1, np.nan, 0.5, 0.2, np.nan, np.inf]})
    totals = cons.totals_by_currency(frame, "amount")
    assert list(totals) == ["", "BRL", "EUR", "USD"]
    assert totals == {"": 0.5, "BRL": np.inf, "EUR": 0.0, "USD": 0.1 + 0.2}


@pytest.mark.parametrize("seed", range(8))
def test_compiled_route_equals_pandas_bit_for_bit(monkeypatch, seed):
    calls = []
    kernel = cons._compensated_sums
    monkeypatch.setattr(cons, "_compensated_sums", lambda *a: calls.append(1) or kernel(*a))
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5000))
    amount = rng.normal(0, 1, n) * 10.0 ** rng.integers(-8, 12, n)
    amount[rng.random(n) < 0.05] = np.nan
    currency = rng.choice(["USD", "EUR", "BRL", "INR", "", "Ünï", "a" * 20], n)
    frame = pd.DataFrame({"currency": pd.array(currency, dtype="str"), "amount": amount})
    totals = cons.totals_by_currency(frame, "amount")
    expected = _pandas(frame, "amount")
    assert list(totals) == list(expected)
    assert [np.float64(v).tobytes() for v in totals.values()] == [np.float64(v).tobytes() for v in expected.values()]
    assert calls == [1]                                   # the compiled route was taken


@pytest.mark.parametrize("currency", [pd.array(["USD", None, "EUR"], dtype="str"), pd.Categorical(["USD", "EUR", "USD"]),
                                      np.array(["USD", None, "EUR"], dtype=object)])
def test_other_columns_take_pandas_route(currency):
    frame = pd.DataFrame({"currency": currency, "amount": [0.25, 0.5, 1.0]})
    assert cons.totals_by_currency(frame, "amount") == _pandas(frame, "amount")
    ints = frame.assign(amount=[1, 2, 3])
    assert cons.totals_by_currency(ints, "amount") == _pandas(ints, "amount")
