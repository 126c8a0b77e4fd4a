"""Small CSV files (accounts, invoices) parsed in the calling thread, with the errors of the threaded
reader; the account checks on timezone and currency, naming file, row and column."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from reconcile.io import tables
from reconcile.quality import InputError, QualityLog

ACCOUNTS = "waba_id,name,timezone,currency\nW1,One,UTC,usd\nW2,Two,{tz},{cur}\n"


def test_a_small_csv_parses_in_the_calling_thread_to_strings():
    table = tables._parse_csv(b"a,b\n1,\n\"x,y\",2\n", {"a": pa.string(), "b": pa.string()})
    assert table.to_pydict() == {"a": ["1", "x,y"], "b": ["", "2"]}


def test_a_failing_small_csv_gives_the_threaded_readers_error_text():
    # the serial reader would say "CSV parse error: Row #2: Expected 2 columns, got 1: 1"
    with pytest.raises(pa.ArrowInvalid, match=r"^CSV parse error: Expected 2 columns, got 1: 1$"):
        tables._parse_csv(b"a,b\n1\n", {"a": pa.string(), "b": pa.string()})


def test_an_unreadable_small_csv_is_named_as_before():
    with pytest.raises(InputError) as err:
        tables._read_csv_table(b"a,b\n1\n", "t.csv")          # no quality log: no ragged-rows path
    assert str(err.value) == "file t.csv: not a readable CSV file (CSV parse error: Expected 2 columns, got 1: 1)"


def test_ragged_rows_of_a_small_csv_are_findings(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("waba_id,currency\nW1,USD\nW2\nW3,EUR,x\n")
    quality = QualityLog()
    accounts = tables.read_accounts(str(path), quality)
    assert accounts["waba_id"].tolist() == ["W1"]
    found = quality.frame()
    assert found[["code", "row", "detail"]].values.tolist() == [
        ["bad_row", 2, "1 fields where the header has 2: row left out"],
        ["bad_row", 3, "3 fields where the header has 2: row left out"]]


@pytest.mark.parametrize("tz, cur, column, message", [
    ("Mars/Olympus", "EUR", "timezone", "'Mars/Olympus' is not an IANA timezone"),
    ("utc", "EUR", "timezone", "'utc' is not an IANA timezone"),
    ("Europe/Paris", "ABC", "currency", "'ABC' is not an ISO 4217 currency"),
    ("Europe/Paris", "", "currency", "'' is not an ISO 4217 currency"),
])
def test_an_unknown_timezone_or_currency_names_file_row_and_column(tmp_path, tz, cur, column, message):
    path = tmp_path / "accounts.csv"
    path.write_text(ACCOUNTS.format(tz=tz, cur=cur))
    with pytest.raises(InputError) as err:
        tables.read_accounts(str(path), QualityLog())
    assert str(err.value) == f"file {path}, row 2, column '{column}': {message}"


def test_known_timezones_and_currencies_pass(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text(ACCOUNTS.format(tz="", cur="brl"))       # empty timezone: UTC
    accounts = tables.read_accounts(str(path), QualityLog())
    assert accounts[["timezone", "currency"]].values.tolist() == [["UTC", "USD"], ["UTC", "BRL"]]


def test_isin_answers_as_pandas_isin():
    values = pd.Series(["UTC", "", "Mars/Olympus", None], dtype="str")
    assert tables._isin(values, {"UTC", ""}).tolist() == [True, True, False, False]
    assert tables._isin(values, {"UTC", ""}).tolist() == values.isin({"UTC", ""}).tolist()
    as_objects = pd.Series(["UTC", 3], dtype=object)                 # not an Arrow column: pandas answers
    assert tables._isin(as_objects, {"UTC"}).tolist() == [True, False]
