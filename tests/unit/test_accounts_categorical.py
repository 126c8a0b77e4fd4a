"""finalize_units reads string columns as pandas ``str``, ``Categorical`` (codes + categories, no string
hashing) or anything ``fillna("").astype(str)`` understands: every form gives the same units, counts and
findings (orders that depend on strings — final order, free tier and tier ranks, tie-breaks — included)."""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from reconcile.contracts import Period
from reconcile.engine.accounts import _distinct, finalize_units
from reconcile.quality import QualityLog
from reconcile.rules.eras import REGIMES, regime_for

ACCOUNTS = pd.DataFrame({"waba_id": ["W1", "W2", "W10"], "name": ["a", "b", "c"],
                         "timezone": ["UTC", "UTC", "UTC"], "currency": ["USD", "EUR", "USD"],
                         "business_country": ["BR", "", "IN"], "portfolio_id": ["PF", "PF", ""]})
RATES = pd.DataFrame([
    {"effective_from": date(2025, 7, day), "market": market, "currency": "USD", "category": category,
     "tier_from": tf, "tier_to": tt, "rate": rate}
    for day in (1, 15) for market in ("Brazil", "India")
    for category, tf, tt, rate in [("marketing", 1, 2, 0.10), ("marketing", 3, None, 0.05), ("utility", None, None, 0.01),
                                   ("authentication", 1, 3, 0.02), ("authentication", 4, None, 0.015),
                                   ("authentication_international", None, None, 0.04)]
])
RATES["tier_from"] = RATES["tier_from"].astype("Int64")
RATES["tier_to"] = RATES["tier_to"].astype("Int64")
STRING_COLUMNS = ["waba_id", "phone_number_id", "user_wa_id", "country", "market", "pricing_model", "category",
                  "pricing_type", "opening_message_id", "era", "billing_month", "timezone"]


def _raw_units(n: int, seed: int) -> pd.DataFrame:
    """Random raw units around the 2025-06/2025-07 boundary: unknown account, markets without rates,
    instants tied to the minute, opening ids that are prefixes of each other, empty countries."""
    rng = np.random.default_rng(seed)
    t = pd.Timestamp("2025-06-29T00:00Z") + pd.to_timedelta(rng.integers(0, 40 * 24 * 60, n) // 7 * 7, unit="min")
    local = t.tz_localize(None)
    regime = [REGIMES.index(regime_for(d.date())) for d in local]
    ids = [f"m{i % 37}" + ("" if i % 3 else f"_{i}") + ("b" if i % 5 == 0 else "") for i in range(n)]
    pick = lambda values: rng.choice(np.asarray(values, dtype=object), n)    # noqa: E731
    frame = pd.DataFrame({
        "waba_id": pick(["W1", "W2", "W10", "GHOST"]), "phone_number_id": pick(["P1", "P2", "P10"]),
        "user_wa_id": [f"55119{v:05d}" for v in rng.integers(0, 50, n)], "country": pick(["BR", "IN", "", "US"]),
        "market": pick(["Brazil", "India", "North America"]), "pricing_model": pick(["PMP", "NBP"]),
        "category": pick(["marketing", "utility", "authentication", "service"]),
        "pricing_type": pick(["regular"] * 3 + ["free_customer_service", "free_entry_point"]),
        "opened_at": t.astype("datetime64[ns, UTC]"), "expires_at": pd.NaT, "opening_message_id": ids,
        "message_count": rng.integers(1, 4, n), "era": [REGIMES[r].era for r in regime], "regime_index": regime,
        "local_date": local.normalize().astype("datetime64[ns]"), "billing_month": local.strftime("%Y-%m"),
        "timezone": "UTC",
    })
    frame["expires_at"] = pd.to_datetime(frame["expires_at"], utc=True).astype("datetime64[ns, UTC]")
    frame["message_count"] = frame["message_count"].astype(np.int64)
    frame["regime_index"] = frame["regime_index"].astype(np.int64)
    for c in STRING_COLUMNS:
        frame[c] = frame[c].astype("str")
    return frame


def _as_categorical(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The string columns as Categorical with shuffled categories and an unused one."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for c in STRING_COLUMNS:
        names = sorted(set(frame[c].tolist())) + [f"zz-unused-{c}", f"AA-unused-{c}"]
        out[c] = pd.Categorical(frame[c].tolist(), categories=list(rng.permutation(np.asarray(names, dtype=object))))
    return out


def _run(frame: pd.DataFrame, period: str):
    q = QualityLog()
    units, counts = finalize_units(frame, ACCOUNTS, RATES, Period.parse(period), q)
    return units, counts, q.frame()


def _assert_same(a, b):
    pd.testing.assert_frame_equal(a[0], b[0], check_exact=True)
    assert a[1] == b[1]
    pd.testing.assert_frame_equal(a[2], b[2], check_exact=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_categorical_columns_give_the_same_units(seed):
    plain = _raw_units(400, seed)
    expected = _run(plain, "2025-07")
    assert expected[1]["units"] > 0 and expected[1]["units_before_period"] > 0
    assert set(expected[0]["category"]) >= {"authentication_international", "marketing"}
    assert (expected[2]["code"] == "missing_rate").any() and (expected[2]["code"] == "unknown_account").any()
    _assert_same(_run(_as_categorical(plain, seed), "2025-07"), expected)


def test_categorical_missing_values_read_as_empty_strings():
    plain = _raw_units(200, 5)
    cat = _as_categorical(plain, 5)
    blank = plain["country"] == ""
    assert blank.any()
    cat["country"] = pd.Categorical(plain["country"].where(~blank, None).tolist(), categories=["US", "IN", "BR"])
    assert cat["country"].isna().sum() == blank.sum()
    _assert_same(_run(cat, "2025-06..2025-07"), _run(plain, "2025-06..2025-07"))


def test_object_columns_and_a_mix_of_forms_give_the_same_units():
    plain = _raw_units(300, 7)
    mixed = _as_categorical(plain, 7)
    for c in ("waba_id", "market", "opening_message_id", "billing_month"):
        mixed[c] = plain[c].astype(object)
    _assert_same(_run(mixed, "2025-07"), _run(plain, "2025-07"))


def test_non_string_categories_are_read_as_their_text():
    plain = _raw_units(100, 3)
    plain["phone_number_id"] = pd.Series(np.arange(100) % 4 + 7).astype(str).astype("str")
    numeric = plain.copy()
    numeric["phone_number_id"] = pd.Categorical(np.arange(100) % 4 + 7)
    _assert_same(_run(numeric, "2025-07"), _run(plain, "2025-07"))


def test_distinct_table_and_sort_paths_agree():
    rng = np.random.default_rng(11)
    parts = [rng.integers(0, 5, 1000), rng.integers(0, 7, 1000), rng.integers(0, 3, 1000)]
    one, inverse = _distinct(parts)                                   # small range: the table path
    wide = [parts[0] * 10**12, parts[1], parts[2]]                    # range far above the rows: np.unique
    one_w, inverse_w = _distinct(wide)
    assert np.array_equal(inverse, inverse_w)
    key = np.stack(parts, axis=1)
    assert len(one) == len(np.unique(key, axis=0))
    assert np.array_equal(key[one][inverse], key) and np.array_equal(key[one_w][inverse_w], key)
    # combination indices follow the order of the combinations
    assert [tuple(k) for k in key[one]] == sorted(tuple(k) for k in key[one])


@pytest.mark.parametrize("names", [["W000", "W001", "W010"], ["2025-07", "2025-06"], ["São", "Zoë", "abcd"],
                                   ["marketing", "", "utility"], [""], []])
def test_vocabulary_take_matches_an_arrow_gather(names):
    import pyarrow as pa
    import pyarrow.compute as pc

    from reconcile.engine.accounts import _vocabulary_take

    codes = np.random.default_rng(1).integers(0, max(len(names), 1), 50 if names else 0)
    got = _vocabulary_take(names, codes)
    assert got.type == pa.large_string()
    assert got.equals(pc.take(pa.array(names, type=pa.large_string()), pa.array(codes, type=pa.int64())))
    assert pd.Series(pd.array(got, dtype="str")).tolist() == [names[c] for c in codes]


def test_frame_started_after_authentication_equals_frame_built_at_the_end(monkeypatch):
    """finalize_units starts the string columns of the frame (second thread) after
    authentication-international; a frame built in one go at the end is the same."""
    import reconcile.engine.accounts as accounts_module
    plain = _raw_units(400, 3)
    expected = _run(plain, "2025-07")
    monkeypatch.setattr(accounts_module.UnitArrays, "start_frame", lambda self: None)
    _assert_same(_run(plain, "2025-07"), expected)
