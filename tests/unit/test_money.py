"""Formatting helpers: half-up rounding, CSV money strings, masking, formula escaping."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from reconcile.report.money import (escape_formula, escape_text, mask_digit_runs, mask_phone, money_strings,
                                    round_half_up)


def test_round_half_up_agrees_with_decimal():
    values = [0.00005, 1.00005, -0.00005, 2.5e-5, 0.12345, -1.23455, 1234567.00005, 0.0, np.nan]
    got = round_half_up(values, 4)
    assert got[:8].tolist() == [0.0001, 1.0001, -0.0001, 0.0, 0.1235, -1.2346, 1234567.0001, 0.0]
    assert np.isnan(got[8])
    rng = np.random.default_rng(7)
    sample = np.round(rng.uniform(-5000, 5000, 20_000), 5)
    expected = [float(Decimal(repr(float(x))).quantize(Decimal("0.0001"), ROUND_HALF_UP)) for x in sample]
    assert (round_half_up(sample, 4) == np.array(expected)).all()


def test_money_strings():
    assert money_strings([12.34, 0.00005, -0.01, -0.00001, np.nan, 1e9, 0.123456], 4).tolist() == \
        ["12.3400", "0.0001", "-0.0100", "0.0000", "", "1000000000.0000", "0.1235"]
    assert money_strings([1.5, 2.0], 0).tolist() == ["2", "2"]


def test_mask_phone():
    assert mask_phone(["5511987651234", "1234", "", "+1 555-123-4567"]).tolist() == \
        ["*********1234", "1234", "", "+* ***-***-4567"]


def test_mask_digit_runs_only_long_numbers():
    assert mask_digit_runs(["user 5511987651234 at row 1234567", "12345678"]).tolist() == \
        ["user *********1234 at row 1234567", "****5678"]


def test_escape_formula_payloads():
    payloads = ['=HYPERLINK("http://x","y")', "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "#N/A", "ok", "a=b", ""]
    assert escape_formula(payloads).tolist() == [
        '\'=HYPERLINK("http://x","y")', "'+1", "'-1", "'@SUM(A1)", "'\t=1", "'\r=1", "'#N/A", "ok", "a=b", ""]
    assert escape_text("=1+1") == "'=1+1" and escape_text("fine") == "fine"
    assert escape_formula(["bell\x07"]).tolist() == ["bell"]
