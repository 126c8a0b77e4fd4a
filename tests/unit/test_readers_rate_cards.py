"""Rate cards: Meta's wide layout (date from comment or @suffix) and the long layout."""
from __future__ import annotations

import os

import pandas as pd
import pytest

from reconcile.io import tables
from reconcile.quality import InputError, QualityLog

WIDE = os.path.join(os.path.dirname(__file__), "..", "data", "inputs", "meta", "meta_rate_card.csv")


def test_wide_card_date_from_comment():
    rates, infos = tables.read_rate_cards([WIDE], QualityLog())
    assert set(rates["effective_from"]) == {pd.Timestamp("2026-01-01")}
    assert str(rates["effective_from"].dtype) == "datetime64[ns]"
    assert set(rates["version"]) == {"meta_rate_card.csv@2026-01-01"}
    india = rates[rates["market"] == "India"].set_index("category")["rate"].to_dict()
    assert india == {"marketing": 0.0118, "utility": 0.0014, "authentication": 0.0014,
                     "authentication_international": 0.0280, "service": 0.0}
    # n/a = no rate: Brazil has no authentication_international row
    assert rates[(rates["market"] == "Brazil")]["category"].tolist() == [
        "marketing", "utility", "authentication", "service"]
    assert len(rates) == 30 and infos[0].rows == 30
    assert rates["tier_from"].isna().all() and str(rates["tier_from"].dtype) == "Int64"


def test_wide_card_date_from_suffix_wins(tmp_path):
    rates, _ = tables.read_rate_cards([WIDE + "@2025-07-01"], QualityLog())
    assert set(rates["effective_from"]) == {pd.Timestamp("2025-07-01")}
    body = open(WIDE).read().split("\n", 2)[2]       # without the comment lines
    (tmp_path / "card.csv").write_text(body)
    with pytest.raises(InputError, match="effective date"):
        tables.read_rate_cards([str(tmp_path / "card.csv")], QualityLog())
    rates, _ = tables.read_rate_cards([str(tmp_path / "card.csv") + "@2024-01-01"], QualityLog())
    assert set(rates["version"]) == {"card.csv@2024-01-01"}


def test_long_card_with_tiers_and_folder(tmp_path):
    (tmp_path / "long.csv").write_text(
        "effective_from,market,currency,category,tier_from,tier_to,rate\n"
        "2025-07-01,Brazil,usd,Utility,1,100000,0.0068\n"
        "2025-07-01,Brazil,USD,utility,100001,,0.0060\n"
        "2025-07-01,Brazil,USD,marketing,,,0.0625\n"
        "2025-07-01,India,USD,authentication-international,,,n/a\n")
    q = QualityLog()
    rates, _ = tables.read_rate_cards([str(tmp_path)], q)
    assert rates[["currency", "category", "tier_from", "tier_to", "rate"]].astype(object).values.tolist() == [
        ["USD", "utility", 1, 100000, 0.0068], ["USD", "utility", 100001, pd.NA, 0.006],
        ["USD", "marketing", pd.NA, pd.NA, 0.0625]]
    assert q.frame()[["severity", "code", "row"]].values.tolist() == [["warning", "rate_not_available", 4]]


@pytest.mark.parametrize("row, column", [
    ("2025-07-01,Brazil,USD,utility,,,abc", "rate"),
    ("2025-07-01,Brazil,USD,utility,,,-0.1", "rate"),
    ("2025-07-01,Brazil,USD,whatever,,,0.1", "category"),
    ("2025-07-01,Brazil,USS,utility,,,0.1", "currency"),
    ("2025-13-01,Brazil,USD,utility,,,0.1", "effective_from"),
    ("2025-07-01,Brazil,USD,marketing,1,,0.1", "tier_from"),      # overlaps the untiered marketing row
])
def test_long_card_errors_name_row_and_column(tmp_path, row, column):
    (tmp_path / "bad.csv").write_text("effective_from,market,currency,category,tier_from,tier_to,rate\n"
                                      "2025-07-01,Brazil,USD,marketing,,,0.0625\n" + row + "\n")
    with pytest.raises(InputError) as err:
        tables.read_rate_cards([str(tmp_path / "bad.csv")], QualityLog())
    assert err.value.column == column and err.value.row == 2 and "bad.csv" in str(err.value)
