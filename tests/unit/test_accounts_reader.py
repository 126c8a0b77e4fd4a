"""read_accounts: defaults, normalisation, the checks in order, findings; each expectation written by hand."""
import pytest

from reconcile.io.tables import read_accounts
from reconcile.quality import InputError, QualityLog


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_defaults_upper_case_and_a_bad_country_left_empty(tmp_path):
    a = _write(tmp_path, "a.csv", "waba_id,name,timezone,currency,business_country,portfolio_id\n"
                                  "W1,,,usd,br,\n"                 # defaults: name/portfolio = waba, UTC
                                  "W2,Two,Asia/Kolkata, eur ,xyz,P9\n")   # currency trimmed + upper; 3 letters: bad
    b = _write(tmp_path, "b.csv", "waba_id,currency\nW3,BRL\n")    # optional columns absent
    q = QualityLog()
    acc = read_accounts([a, b], q)
    assert acc.columns.tolist() == ["waba_id", "name", "timezone", "currency", "business_country", "portfolio_id",
                                    "source", "row"]
    assert acc["name"].tolist() == ["W1", "Two", "W3"]
    assert acc["timezone"].tolist() == ["UTC", "Asia/Kolkata", "UTC"]
    assert acc["currency"].tolist() == ["USD", "EUR", "BRL"]
    assert acc["business_country"].tolist() == ["BR", "", ""]
    assert acc["portfolio_id"].tolist() == ["W1", "P9", "W3"]
    assert acc["source"].tolist() == [a, a, b] and acc["row"].tolist() == [1, 2, 1]      # data rows, 1-based
    assert all(str(acc[c].dtype) == "str" for c in acc.columns if c != "row") and acc["row"].dtype == "int64"
    findings = q.frame()
    assert findings[["code", "source", "row", "column"]].values.tolist() == [
        ["bad_business_country", a, 2, "business_country"]]


@pytest.mark.parametrize("text, row, column, message", [
    ("waba_id,currency\nW1,USD\n,USD\n", 2, "waba_id", "empty waba_id"),
    # the checks run in order over all rows: the empty id (row 2) before the bad currency (row 1)
    ("waba_id,currency\nW1,XXX\n,USD\n", 2, "waba_id", "empty waba_id"),
    ("waba_id,currency\nW1,XXX\nW2,USD\n", 1, "currency", "'XXX' is not an ISO 4217 currency"),
    ("waba_id,currency\nW1,USD\nW2,EUR\nW1,EUR\n", 3, "waba_id", "waba_id 'W1' listed twice"),
])
def test_the_first_bad_row_of_each_check_is_named(tmp_path, text, row, column, message):
    path = _write(tmp_path, "acc.csv", text)
    with pytest.raises(InputError) as err:
        read_accounts(path, QualityLog())
    assert err.value.row == row and err.value.column == column and message in str(err.value)
