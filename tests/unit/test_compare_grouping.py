"""compare() groups units and invoice lines with integer codes (no pandas merge / multi-column groupby):
it must equal the plain pandas formulation on any mix of str / Categorical / object columns, missing
values, "" values, unknown accounts, lines outside the period or in another currency, unpriced units."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reconcile.compare import compare, dictionary_codes
from reconcile.contracts import DEFAULT_TOLERANCE, MONEY_DECIMALS, VARIANCE_COLUMNS, VARIANCE_GROUP, Period
from reconcile.quality import QualityLog
from reconcile.report.money import round_half_up

PERIOD = Period.parse("2025-07")
ACCOUNTS = pd.DataFrame({"waba_id": ["W1", "W2", "W3"], "currency": ["USD", "EUR", "USD"]})
VALUES = {"waba_id": ["W1", "W2", "W3", "W9"], "billing_month": ["2025-07", "2025-06", ""],
          "market": ["Brazil", "India", "Rest of Western Europe", "", "Ünïcode"],
          "pricing_model": ["PMP", "CBP"], "category": ["marketing", "utility", "authentication"],
          "pricing_type": ["regular", "free_customer_service", "free_entry_point"]}


def _column(rng, name: str, n: int, kind: str, missing: bool):
    values = rng.choice(VALUES[name], n).astype(object)
    if missing:
        values[rng.random(n) < 0.1] = None
    if kind == "category":
        return pd.Categorical(values, categories=sorted(set(VALUES[name]) | {""}))
    if kind == "object":
        return values
    return pd.array(values, dtype="str")


def _case(seed: int):
    rng = np.random.default_rng(seed)
    kind = ["str", "category", "object"][seed % 3]
    n = int(rng.integers(0, 400)) if seed % 5 else 0
    units = pd.DataFrame({c: _column(rng, c, n, kind, missing=seed % 2 == 1) for c in VARIANCE_GROUP})
    amount = rng.integers(0, 64, n) / 64.0                  # exact binary fractions: sums are exact
    amount[rng.random(n) < 0.05] = np.nan
    units["amount"] = amount
    units["currency"] = np.where(units["waba_id"].astype(object) == "W2", "EUR", "USD")
    m = int(rng.integers(0, 40))
    lines = pd.DataFrame({c: rng.choice(VALUES[c], m).astype(object) for c in VARIANCE_GROUP})
    if n:                                    # most lines on the units' groups, so that groups meet
        take = rng.integers(0, n, m)
        for c in VARIANCE_GROUP:
            lines[c] = np.where(rng.random(m) < 0.8, units[c].astype(object).to_numpy()[take], lines[c])
    lines["quantity"] = rng.integers(0, 3, m)
    lines["amount"] = rng.integers(0, 48, m) / 64.0
    lines["currency"] = rng.choice(["USD", "EUR", ""], m).astype(object)
    lines["source"] = "invoice.csv"
    lines["row"] = np.arange(1, m + 1)
    return units, lines


def _reference(units: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """The variance by pandas groupby / merge / sort on the key strings (missing values as "")."""
    from reconcile.compare import usable_invoice_lines

    usable = usable_invoice_lines(lines, ACCOUNTS, PERIOD, QualityLog())
    keys = {c: units[c].astype(object).where(units[c].notna(), "").astype(str) for c in VARIANCE_GROUP}
    u = pd.DataFrame({**keys, "amount": units["amount"], "currency": units["currency"]})
    u["unpriced"] = u["amount"].isna()
    expected = u.groupby(VARIANCE_GROUP, sort=False).agg(
        expected_quantity=("amount", "size"), expected_amount=("amount", "sum"),
        unpriced_units=("unpriced", "sum"), unit_currency=("currency", "first")).reset_index()
    i = pd.DataFrame({c: usable[c].fillna("").astype(str) for c in VARIANCE_GROUP})
    i["quantity"], i["amount"] = usable["quantity"].to_numpy(), usable["amount"].to_numpy()
    invoiced = i.groupby(VARIANCE_GROUP, sort=False).agg(
        invoiced_quantity=("quantity", "sum"), invoiced_amount=("amount", "sum")).reset_index()
    merged = expected.merge(invoiced, how="outer", on=VARIANCE_GROUP, indicator=True)
    eq = merged["expected_quantity"].fillna(0).astype("int64")
    iq = merged["invoiced_quantity"].fillna(0).astype("int64")
    ea = merged["expected_amount"].fillna(0.0)
    ia = merged["invoiced_amount"].fillna(0.0)
    diff = round_half_up((ia - ea).to_numpy(), MONEY_DECIMALS)
    status = np.select([merged["_merge"].eq("left_only"), merged["_merge"].eq("right_only"),
                        merged["unpriced_units"].fillna(0) > 0, diff > DEFAULT_TOLERANCE, diff < -DEFAULT_TOLERANCE,
                        (iq - eq) > 0, (iq - eq) < 0],
                       ["not_invoiced", "not_expected", "unpriced", "over_billed", "under_billed", "over_billed",
                        "under_billed"], default="match")
    currency = merged["waba_id"].map(dict(zip(ACCOUNTS["waba_id"], ACCOUNTS["currency"])))
    currency = currency.fillna(merged["unit_currency"]).fillna("")
    out = pd.DataFrame({**{c: merged[c].astype(str) for c in VARIANCE_GROUP}, "expected_quantity": eq,
                        "invoiced_quantity": iq, "quantity_diff": iq - eq, "expected_amount": ea,
                        "invoiced_amount": ia, "amount_diff": diff, "currency": currency.astype(str),
                        "status": status})
    return out.sort_values(VARIANCE_GROUP, kind="stable").reset_index(drop=True)[VARIANCE_COLUMNS]


@pytest.mark.parametrize("seed", range(30))
def test_compare_equals_the_pandas_groupby_merge_formulation(seed):
    units, lines = _case(seed)
    variance = compare(units, lines, ACCOUNTS, PERIOD, QualityLog())
    expected = _reference(units, lines)
    pd.testing.assert_frame_equal(variance.reset_index(drop=True), expected, check_dtype=False, check_exact=True)
    assert list(variance.index) == list(range(len(variance)))


@pytest.mark.parametrize("kind", ["str", "large", "object", "category", "nulls"])
def test_dictionary_codes_number_values_in_order_of_first_occurrence(kind):
    rng = np.random.default_rng(3)
    pool = ["", "a", "a" * 8, "a" * 9, "a" * 16, "a" * 17, "b" * 40, "é" * 5, "x\x00y", "Rest of Western Europe"]
    values = rng.choice(pool, 300).astype(object)
    if kind == "nulls":
        values[::7] = None
    column = {"str": pd.Series(pd.array(values, dtype="str")), "object": pd.Series(values),
              "large": pd.Series(values).astype("string[pyarrow]"), "nulls": pd.Series(values),
              "category": pd.Series(pd.Categorical(values))}[kind]
    codes, uniques = dictionary_codes(column)
    decoded = uniques.to_numpy(dtype=object)[codes]
    expected = pd.Series(values).where(pd.Series(values).notna(), "").to_numpy(dtype=object)
    assert decoded.tolist() == expected.tolist()
    if kind != "category":            # plain columns: codes in order of first occurrence, as pandas factorize
        assert codes.tolist() == pd.factorize(expected)[0].tolist()
