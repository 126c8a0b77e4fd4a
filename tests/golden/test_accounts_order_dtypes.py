"""Golden: the final order and delivery order on tied instants, and raw-unit dtypes that need normalising
(rule book section 0 "Ties"; finalize_units works on codes and integer sorts, strings break ties only)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reconcile.contracts import UNIT_ORDER, Period
from reconcile.engine.accounts import finalize_units
from reconcile.engine.windows import _month_codes
from reconcile.quality import QualityLog
from test_accounts_builders import accounts, rate_card, raw_unit, raw_units

TIERED = rate_card(("2025-07-01", "Brazil", "marketing", 0.10, 1, 1), ("2025-07-01", "Brazil", "marketing", 0.05, 2, None))


def _rows():
    at = "2025-07-03T10:00:00Z"
    return [raw_unit("m1b", at), raw_unit("m10", at), raw_unit("m1", at),
            raw_unit("later", "2025-07-04T00:00:00Z", category="utility"),
            raw_unit("w2", at, waba_id="W2"), raw_unit("june", "2025-06-30T23:00:00Z")]


def test_ties_rank_by_opening_id_and_list_by_unit_id():
    units, counts = finalize_units(raw_units(_rows()), accounts({"waba_id": "W1"}, {"waba_id": "W2"}), TIERED,
                                   Period.parse("2025-07"), QualityLog())
    # listed by (account, month, instant, unit_id): "m10:…" sorts before "m1:…" ('0' < ':')
    assert units["unit_id"].tolist() == ["m10:marketing", "m1:marketing", "m1b:marketing", "later:utility",
                                         "w2:marketing"]
    assert units.equals(units.sort_values(UNIT_ORDER, kind="stable").reset_index(drop=True))
    # ranked in delivery order (instant, then opening message id): m1 < m10 < m1b
    by_id = units.set_index("opening_message_id")
    assert by_id.loc[["m1", "m10", "m1b", "w2"], "tier_rank"].tolist() == [1, 2, 3, 1]
    assert by_id.loc[["m1", "m10", "m1b", "w2"], "rate"].tolist() == [0.10, 0.05, 0.05, 0.10]
    assert by_id.loc["later", "pricing_type"] == "regular" and np.isnan(by_id.loc["later", "rate"])
    assert counts["units_before_period"] == 1 and counts["units_unpriced"] == 1


def test_raw_units_needing_normalisation_give_the_same_units():
    rows = _rows()
    rows[0]["country"] = ""
    plain = raw_units(rows)
    messy = plain.copy()
    for c in ("waba_id", "category", "market", "country"):
        messy[c] = messy[c].astype(object)
    messy.loc[0, "country"] = np.nan                       # missing string → ""
    messy["opened_at"] = messy["opened_at"].dt.tz_convert("America/Sao_Paulo").astype(str)
    messy["local_date"] = messy["local_date"] + pd.Timedelta(hours=5)    # normalised to the day
    messy["message_count"] = messy["message_count"].astype(float)
    messy["regime_index"] = messy["regime_index"].astype("Int64")
    messy = messy.drop(columns=["era"]).set_index(pd.Index(range(100, 100 + len(messy))))
    plain["era"] = ""
    args = (accounts({"waba_id": "W1"}, {"waba_id": "W2"}), TIERED, Period.parse("2025-06..2025-07"))
    q1, q2 = QualityLog(), QualityLog()
    a, ca = finalize_units(plain, *args, q1)
    b, cb = finalize_units(messy, *args, q2)
    pd.testing.assert_frame_equal(b, a, check_exact=True)
    assert ca == cb and q1.frame().equals(q2.frame())
    assert str(a["unit_id"].dtype) == "str" and str(a["opened_at"].dtype) == "datetime64[ns, UTC]"


def test_unknown_account_units_are_reported_once_per_account():
    rows = _rows() + [raw_unit("g2", "2025-07-05T00:00:00Z", waba_id="GHOST"),
                      raw_unit("g1", "2025-07-06T00:00:00Z", waba_id="GHOST")]
    q = QualityLog()
    units, _ = finalize_units(raw_units(rows), accounts({"waba_id": "W1"}, {"waba_id": "W2"}), TIERED,
                              Period.parse("2025-07"), q)
    found = q.frame()
    assert found[found["code"] == "unknown_account"][["message_id", "detail"]].values.tolist() == [
        ["g1", "units of account GHOST not in accounts"]]
    assert units.loc[units["waba_id"] == "GHOST", "currency"].tolist() == ["", ""]
    assert units.loc[units["waba_id"] == "GHOST", "portfolio_id"].tolist() == ["GHOST", "GHOST"]


def test_month_codes_table_and_direct_conversion_agree(monkeypatch):
    import reconcile.engine.windows as windows

    rng = np.random.default_rng(3)
    for days in (rng.integers(19_000, 20_500, 5000), np.array([0, 20_000, -400, 2_000_000]), np.array([19_500])):
        fast = _month_codes(days)
        monkeypatch.setattr(windows, "_MONTH_TABLE_DAYS", 0)
        slow = _month_codes(days)
        monkeypatch.undo()
        assert fast[1] == slow[1] and np.array_equal(fast[0], slow[0])
        names = np.array(fast[1], dtype=object)[fast[0]]
        assert names.tolist() == [str(d)[:7] for d in days.astype("M8[D]")]
