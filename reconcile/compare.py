"""Compare what the logs justify (billable units) with what Meta invoiced: variance, drill-down, summary.

Contract: contracts.md, "variance.csv — expected vs invoiced". One row per group
``waba_id, billing_month, market, pricing_model, category, pricing_type``:

* expected side: number of units and the *unrounded* float64 sum of their amounts (rule book section 0,
  "Rounding": totals are sums of unrounded values); units without a rate (NaN amount) are left out of the
  sum and make the group ``unpriced``;
* invoiced side: the summed quantity and amount of the invoice lines that are usable — lines of an account
  not in the run (``invoice_unknown_account``), of a billing month outside the period
  (``invoice_out_of_period``) or in another currency than the account's (``invoice_currency_mismatch``)
  are left out and reported as data-quality errors (an empty currency means the account's);
* ``status`` by precedence ``not_invoiced``, ``not_expected``, ``unpriced``, then by amount
  (``amount_diff`` rounded half-up to 4 places, outside ±tolerance), then by quantity, else ``match``.

Everything is vectorised (integer group ids, bincount / groupby sums, np.select), so millions of units
cost a fraction of a second.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .engine.string_sets import first_occurrence_codes
from .contracts import (DEFAULT_TOLERANCE, MONEY_DECIMALS, UNIT_COLUMNS, VARIANCE_COLUMNS, VARIANCE_GROUP,
                        VARIANCE_STATUSES, Period)
from .quality import QualityLog
from .report.money import round_half_up

#: statuses whose units are shown as evidence (everything but ``match``)
EVIDENCE_STATUSES = ("over_billed", "under_billed", "not_invoiced", "not_expected", "unpriced")

_INT_COLUMNS = ("expected_quantity", "invoiced_quantity", "quantity_diff")
_MONEY_COLUMNS = ("expected_amount", "invoiced_amount", "amount_diff")


# --------------------------------------------------------------------------- invoice lines
def usable_invoice_lines(invoice_lines: pd.DataFrame, accounts: pd.DataFrame, period: Period,
                         quality: QualityLog) -> pd.DataFrame:
    """The invoice lines that take part in the variance; the others are reported (contracts.md, variance).

    Checks, in this order (a line is reported once, for the first check it fails):
    ``invoice_unknown_account`` (account not in the run — usually already removed by the reader, only
    what is left is reported), ``invoice_out_of_period``, ``invoice_currency_mismatch``. All are
    ``error`` findings: the line is excluded from the variance. Returns the frame itself when every line
    is usable (no copy).
    """
    lines = invoice_lines
    if lines.empty:
        return lines.iloc[0:0]
    account_currency = dict(zip(accounts["waba_id"], accounts["currency"]))
    waba = lines["waba_id"].astype(str)
    month = lines["billing_month"].astype(str)
    known = waba.isin(list(account_currency)).to_numpy(dtype=bool)              # the masks: numpy arrays
    in_period = (month.between(period.first, period.last) & month.str.fullmatch(r"\d{4}-\d{2}")).to_numpy(
        dtype=bool, na_value=False)
    expected_currency = waba.map(account_currency).fillna("")
    currency = lines["currency"].fillna("").astype(str) if "currency" in lines else pd.Series("", index=lines.index)
    same_currency = ((currency == "") | (currency == expected_currency)).to_numpy(dtype=bool)

    unknown = ~known
    out_of_period = known & ~in_period
    mismatch = known & in_period & ~same_currency
    _report(quality, lines, unknown, "invoice_unknown_account", "waba_id", lambda: (
        "account " + waba[unknown] + " is not in this run's accounts; line left out of the variance"))
    _report(quality, lines, out_of_period, "invoice_out_of_period", "billing_month", lambda: (
        "billing month " + lines.loc[out_of_period, "billing_month"].astype(str)
        + f" is outside the period {period}; line left out of the variance"))
    _report(quality, lines, mismatch, "invoice_currency_mismatch", "currency", lambda: (
        "invoice currency " + currency[mismatch] + " differs from account " + waba[mismatch]
        + " currency " + expected_currency[mismatch] + "; line left out of the variance"))
    usable = known & in_period & same_currency
    return lines if usable.all() else lines[usable]


def _report(quality: QualityLog, lines: pd.DataFrame, mask: pd.Series, code: str, column: str,
            detail) -> None:
    """One ``error`` finding per line of ``mask``; ``detail()`` gives their texts (built only when needed)."""
    if not mask.any():
        return
    picked = lines[mask]
    source = picked["source"].astype(str) if "source" in picked else ""
    row = picked["row"] if "row" in picked else None
    quality.add_many("error", code, source=source, row=row, column=column, detail=detail().to_numpy(dtype=object),
                     n=len(picked))


# --------------------------------------------------------------------------- variance
def compare(units: pd.DataFrame, invoice_lines: pd.DataFrame, accounts: pd.DataFrame, period: Period,
            quality: QualityLog, *, tolerance: float = DEFAULT_TOLERANCE,
            relative_tolerance: float | None = None) -> pd.DataFrame:
    """Expected (units) against invoiced (invoice lines): the variance table (contracts.VARIANCE_COLUMNS).

    ``tolerance`` is absolute, in the account currency per line (group). With ``relative_tolerance`` r a
    group's amount passes when ``|amount_diff| <= max(tolerance, r * |expected_amount|)``.
    ``amount_diff`` is returned rounded half-up to 4 places (the value that was compared); expected and
    invoiced amounts are unrounded float64 sums. ``currency`` is the account's currency.
    Rows are sorted by the group columns.

    Units and usable lines are given one group id each from the same coding of the group columns
    (:func:`_group_ids`, ids in the groups' sort order); the sums per group are ``np.bincount`` over the
    units (in unit order) and a pandas groupby sum over the lines, so no multi-column groupby, merge or
    sort is needed.
    """
    lines = usable_invoice_lines(invoice_lines, accounts, period, quality)
    unit_group, line_group, groups = _group_ids(units, lines)
    size = len(groups["waba_id"])

    amount = units["amount"].to_numpy(dtype="float64", na_value=np.nan) if len(units) else np.empty(0)
    unpriced = np.isnan(amount)
    expected_quantity = np.bincount(unit_group, minlength=size).astype("int64")
    expected_amount = np.bincount(unit_group, weights=np.where(unpriced, 0.0, amount), minlength=size)
    unpriced_units = np.bincount(unit_group, weights=unpriced, minlength=size).astype("int64")
    invoiced_quantity = np.bincount(line_group, weights=lines["quantity"].fillna(0).astype("int64").to_numpy(),
                                    minlength=size).astype("int64") if len(lines) else np.zeros(size, dtype="int64")
    invoiced_amount = np.zeros(size, dtype="float64")
    if len(lines):                              # pandas' sum (compensated) for the money
        sums = pd.Series(lines["amount"].astype("float64").to_numpy()).groupby(line_group).sum()
        invoiced_amount[sums.index.to_numpy()] = sums.to_numpy()
    has_expected = expected_quantity > 0
    has_invoice = np.bincount(line_group, minlength=size) > 0

    quantity_diff = invoiced_quantity - expected_quantity
    amount_diff = round_half_up(invoiced_amount - expected_amount, MONEY_DECIMALS)
    allowed = np.full(size, float(tolerance))
    if relative_tolerance is not None:
        allowed = np.maximum(allowed, float(relative_tolerance) * np.abs(expected_amount))

    status = np.select(
        [~has_invoice, ~has_expected, unpriced_units > 0,
         amount_diff > allowed, amount_diff < -allowed,
         quantity_diff > 0, quantity_diff < 0],
        ["not_invoiced", "not_expected", "unpriced", "over_billed", "under_billed", "over_billed",
         "under_billed"],
        default="match",
    )

    account_currency = dict(zip(accounts["waba_id"], accounts["currency"]))
    currency = np.empty(size, dtype=object)                    # per group (few): None when not an account
    currency[:] = [account_currency.get(w) for w in groups["waba_id"]]
    if "currency" in units and len(units):  # units of an account missing from ``accounts`` keep their own currency
        first_unit = np.full(size, -1, dtype="int64")
        first_unit[unit_group[::-1]] = np.arange(len(units) - 1, -1, -1)     # first unit of each group
        fill = pd.isna(currency) & (first_unit >= 0)
        if fill.any():
            currency[fill] = units["currency"].iloc[first_unit[fill]].to_numpy(dtype=object)
    columns = {
        **groups,
        "expected_quantity": expected_quantity,
        "invoiced_quantity": invoiced_quantity,
        "quantity_diff": quantity_diff,
        "expected_amount": expected_amount,
        "invoiced_amount": invoiced_amount,
        "amount_diff": amount_diff,
        "currency": np.array(["" if pd.isna(c) else str(c) for c in currency], dtype=object),
        "status": status.astype(object),
    }
    return pd.DataFrame({c: columns[c] for c in VARIANCE_COLUMNS})


def _group_ids(units: pd.DataFrame, lines: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The group (VARIANCE_GROUP) of every unit and of every usable invoice line, one numbering for both,
    and the groups' key values (per column, an object array of ``str``); groups are numbered in the order
    of their key values (the variance's row order).

    Each group column is coded once for the units (:func:`dictionary_codes`: a Categorical's own codes or
    a compiled pass over the strings); the lines' few values (missing: "") are factorized after the units'
    distinct values, so that equal values share a code and new ones are appended. The per-column codes are
    combined into one integer key; the groups it gives are then sorted by their values (few groups: per
    column, the rank of each value)."""
    n_units = len(units)
    key = np.zeros(n_units + len(lines), dtype="int64")
    dictionaries = []
    if n_units:                   # two threads: the compiled coding of a str column runs without the GIL
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="reconcile-group-codes") as pool:
            coded = dict(zip(VARIANCE_GROUP, pool.map(dictionary_codes, [units[c] for c in VARIANCE_GROUP])))
    line_keys = lines[VARIANCE_GROUP].fillna("").astype(str) if len(lines) else None
    for column in VARIANCE_GROUP:
        unit_codes, uniques = coded[column] if n_units else (np.empty(0, dtype="int64"), pd.Index([], dtype=object))
        line_values = line_keys[column].to_numpy(dtype=object) if len(lines) else np.empty(0, dtype=object)
        codes, distinct = pd.factorize(np.concatenate([uniques.to_numpy(dtype=object), line_values]))
        if not uniques.is_unique:                          # a "" category and a missing value: one code
            unit_codes = codes[:len(uniques)][unit_codes]
        for part, part_codes in ((key[:n_units], unit_codes), (key[n_units:], codes[len(uniques):])):
            part *= len(distinct)                             # views: in place
            part += part_codes
        dictionaries.append(np.asarray(distinct, dtype=object))
    group_of_row, group_keys = pd.factorize(key, sort=False)
    group_keys = np.asarray(group_keys, dtype="int64")
    values, ranks = {}, []
    for column, names in zip(reversed(VARIANCE_GROUP), reversed(dictionaries)):
        group_keys, codes = np.divmod(group_keys, len(names))
        rank = np.empty(len(names), dtype="int64")
        rank[np.argsort(names, kind="stable")] = np.arange(len(names))
        values[column] = names[codes]
        ranks.append(rank[codes])
    order = np.lexsort(ranks)                     # the last rank (the first column) is the primary key
    number = np.empty(len(order), dtype="int64")
    number[order] = np.arange(len(order))
    group_of_row = number[group_of_row]
    return group_of_row[:n_units], group_of_row[n_units:], {c: values[c][order] for c in VARIANCE_GROUP}


def dictionary_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of a string column and its distinct values (``codes`` index ``uniques``; a missing
    value counts as ""). Categoricals use their own codes; other columns are coded in order of first
    occurrence, as Arrow's dictionary encoding does, by a compiled pass over their Arrow buffers
    (:func:`reconcile.engine.string_sets.first_occurrence_codes`; no Python loop)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype("int64")
        uniques = pd.Index(values.cat.categories.astype(str).tolist() + [""], dtype=object)
        return np.where(codes < 0, len(uniques) - 1, codes), uniques
    array = pa.array(values.to_numpy(dtype=object) if values.dtype == object else values, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    array = pc.fill_null(array, "") if array.null_count else array
    coded = first_occurrence_codes(array)
    if coded is None:
        encoded = pc.dictionary_encode(array)
        return (encoded.indices.to_numpy(zero_copy_only=False).astype("int64"),
                pd.Index(encoded.dictionary.to_pylist(), dtype=object))
    codes, first = coded
    return codes, pd.Index(array.take(pa.array(first)).to_pylist(), dtype=object)


# --------------------------------------------------------------------------- drill-down
def drilldown_positions(units: pd.DataFrame, variance: pd.DataFrame, *,
                        statuses: Iterable[str] = EVIDENCE_STATUSES,
                        limit: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Row positions (in ``units``) of the evidence units, in variance order then by ``opened_at``
    (ties keep the units' own order, i.e. ``unit_id`` for frames in UNIT_ORDER).

    Returns ``(positions, variance_row_of_each, total)`` where ``total`` is the number of evidence units
    before ``limit`` is applied. Only the first ``limit`` units are sorted, so a capped drill-down of
    10M units stays cheap.
    """
    wanted = variance["status"].isin(list(statuses)).to_numpy()
    if units.empty or not wanted.any():
        return np.empty(0, dtype="int64"), np.empty(0, dtype="int64"), 0
    vrow = _variance_row_of_units(units, variance)
    selected = vrow >= 0
    selected[selected] = wanted[vrow[selected]]
    total = int(selected.sum())
    if limit is not None and total > limit:
        counts = np.bincount(vrow[selected], minlength=len(variance))
        last_needed = int(np.searchsorted(np.cumsum(counts), limit))  # variance row where the cap falls
        selected &= vrow <= last_needed
    positions = np.flatnonzero(selected)
    opened = units["opened_at"].to_numpy(dtype="datetime64[ns]").view("int64")[positions] \
        if "opened_at" in units else np.zeros(len(positions), dtype="int64")
    order = np.lexsort((opened, vrow[positions]))  # stable: ties keep input order
    positions = positions[order]
    if limit is not None:
        positions = positions[:limit]
    return positions, vrow[positions], total


def _variance_row_of_units(units: pd.DataFrame, variance: pd.DataFrame) -> np.ndarray:
    """For every unit, the position of its group in ``variance`` (-1 when absent), without a
    multi-column merge: each group column is dictionary-coded, its few distinct values are mapped onto the
    variance's values, and the per-column codes are combined into one integer key."""
    key_units = np.zeros(len(units), dtype="int64")
    key_var = np.zeros(len(variance), dtype="int64")
    valid = np.ones(len(units), dtype=bool)
    for column in VARIANCE_GROUP:
        categories = pd.Index(pd.unique(variance[column].astype(str).to_numpy(dtype=object)), dtype=object)
        var_codes = categories.get_indexer(variance[column].astype(str).to_numpy(dtype=object))
        codes, uniques = dictionary_codes(units[column])
        unit_codes = categories.get_indexer(uniques)[codes]
        valid &= unit_codes >= 0
        radix = len(categories) + 1
        key_units = key_units * radix + np.maximum(unit_codes, 0)
        key_var = key_var * radix + var_codes
    rows = pd.Index(key_var).get_indexer(key_units)
    return np.where(valid, rows, -1).astype("int64")


def drilldown(units: pd.DataFrame, variance: pd.DataFrame, *,
              statuses: Sequence[str] = EVIDENCE_STATUSES, limit: int | None = None) -> pd.DataFrame:
    """The units behind every variance row whose status is in ``statuses`` — the evidence for a dispute
    (opening message ids and times) — in variance order, then by ``opened_at``.

    Columns: the unit columns (UNIT_COLUMNS, then any extra columns of ``units``) and the variance
    ``status`` of the unit's group. ``limit`` keeps only the first N rows (cheaply).
    """
    positions, vrow, _ = drilldown_positions(units, variance, statuses=statuses, limit=limit)
    columns = [c for c in UNIT_COLUMNS if c in units] + [c for c in units.columns if c not in UNIT_COLUMNS
                                                         and c != "status"]
    out = units.iloc[positions][columns].reset_index(drop=True)
    out["status"] = variance["status"].to_numpy(dtype=object)[vrow] if len(vrow) else pd.Series(dtype=object)
    return out


# --------------------------------------------------------------------------- summary
def summarise(variance: pd.DataFrame) -> pd.DataFrame:
    """Totals per ``waba_id × billing_month``: quantities, expected / invoiced amounts (sums of the
    unrounded group amounts), ``amount_diff`` (invoiced − expected, rounded half-up to 4 places),
    ``currency`` and one count column per status (VARIANCE_STATUSES order)."""
    keys = ["waba_id", "billing_month"]
    columns = keys + ["currency", "groups", "expected_quantity", "invoiced_quantity", "expected_amount",
                      "invoiced_amount", "amount_diff"] + list(VARIANCE_STATUSES)
    if variance.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    grouped = variance.groupby(keys, sort=True)
    out = grouped.agg(currency=("currency", "first"), groups=("status", "size"),
                      expected_quantity=("expected_quantity", "sum"), invoiced_quantity=("invoiced_quantity", "sum"),
                      expected_amount=("expected_amount", "sum"), invoiced_amount=("invoiced_amount", "sum"))
    out["amount_diff"] = round_half_up((out["invoiced_amount"] - out["expected_amount"]).to_numpy(),
                                       MONEY_DECIMALS)
    counts = pd.crosstab([variance["waba_id"], variance["billing_month"]], variance["status"])
    counts = counts.reindex(columns=list(VARIANCE_STATUSES), fill_value=0)
    out = out.join(counts).reset_index()
    for status in VARIANCE_STATUSES:
        out[status] = out[status].fillna(0).astype("int64")
    return out[columns]
