"""RateTable's integer group coding finds the same groups as matching the three strings."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reconcile.rules.rates import RateTable


def test_group_ids_match_the_string_groups():
    rates = pd.DataFrame({"effective_from": ["2025-01-01"] * 5, "market": ["Brazil", "Brazil", "India", "", "1"],
                          "currency": ["USD", "BRL", "USD", "USD", "USD"],
                          "category": ["marketing", "marketing", "utility", "utility", "utility"],
                          "tier_from": None, "tier_to": None, "rate": [0.1, 0.2, 0.3, 0.4, 0.5]})
    table = RateTable(rates)
    market = np.array(["Brazil", "Brazil", "India", "India", "", "Other", None, np.nan, 1, "1"], dtype=object)
    category = np.array(["marketing"] * 2 + ["utility", "marketing", "utility", "utility", "utility", "utility",
                                             "utility", "utility"], dtype=object)
    currency = np.array(["USD", "BRL", "USD", "USD", "USD", "USD", "USD", "USD", "USD", "USD"], dtype=object)
    groups = table.rows.drop_duplicates("group_id").set_index(["market", "category", "currency"])["group_id"]
    expected = [groups.get((str(m), c, cur), -1) for m, c, cur in zip(market, category, currency)]
    assert table._group_ids(market, category, currency).tolist() == expected
    assert expected == [groups[("Brazil", "marketing", "USD")], groups[("Brazil", "marketing", "BRL")],
                        groups[("India", "utility", "USD")], -1, groups[("", "utility", "USD")], -1, -1, -1,
                        groups[("1", "utility", "USD")], groups[("1", "utility", "USD")]]
    # groups are numbered in the order of (market, category, currency)
    keys = list(groups.sort_values().index)
    assert keys == sorted(keys)
    found = table.lookup(market, category, currency, pd.Series(pd.to_datetime(["2025-02-01"] * 10)))
    assert np.isnan(found.rate[[3, 5, 6, 7]]).all() and found.rate[[0, 1, 2, 4, 8]].tolist() == [0.1, 0.2, 0.3, 0.4, 0.5]
