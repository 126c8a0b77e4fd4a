"""Number → country → market (rule book section 0, "Market") and the default market map."""
from __future__ import annotations

import numpy as np
import pandas as pd
import phonenumbers
import pytest

from reconcile.quality import InputError
from reconcile.rules.markets import country_to_market, load_market_map, resolve_numbers


@pytest.fixture(scope="module")
def market_map():
    return load_market_map()


CASES = [
    ("12025550123", "US", "North America"),
    ("14165550123", "CA", "North America"),
    ("18765550123", "JM", "Rest of Latin America"),
    ("17875550123", "PR", "Rest of Latin America"),
    ("18095550123", "DO", "Rest of Latin America"),
    ("5511987650001", "BR", "Brazil"),
    ("919876500006", "IN", "India"),
    ("447700900123", "GB", "United Kingdom"),
    ("447911123456", "GG", "United Kingdom"),
    ("79161234567", "RU", "Russia"),
    ("77011234567", "KZ", "Other"),
    ("4915123456789", "DE", "Germany"),
    ("33612345678", "FR", "France"),
    ("97312345678", "BH", "Rest of Middle East"),
    ("254712345678", "KE", "Rest of Africa"),
    ("61412345678", "AU", "Rest of Asia Pacific"),
    ("48512345678", "PL", "Rest of Central & Eastern Europe"),
    ("46701234567", "SE", "Rest of Western Europe"),
]


def test_known_numbers(market_map):
    got = resolve_numbers([n for n, _, _ in CASES], market_map)
    assert got["country"].tolist() == [c for _, c, _ in CASES]
    assert got["market"].tolist() == [m for _, _, m in CASES]
    assert set(got["problem"]) == {""}


def test_problems_and_alignment(market_map):
    numbers = ["5511987650001", "", "12a45", "999123456", "8001234567", "1", None, "+44 7700 900123",
               "5511987650001", "12999999999"]
    got = resolve_numbers(pd.Series(numbers, dtype="object"), market_map)
    assert got.values.tolist() == [
        ["BR", "Brazil", ""],
        ["", "Other", "unparseable_number"],
        ["", "Other", "unparseable_number"],
        ["", "Other", "unknown_calling_code"],
        ["", "Other", "unknown_calling_code"],      # +800: non-geographic, no country
        ["", "Other", "unparseable_number"],
        ["", "Other", "unparseable_number"],
        ["GB", "United Kingdom", ""],
        ["BR", "Brazil", ""],
        ["US", "North America", ""],               # unassigned area code 299: the code's main region
    ]


def test_validity_is_not_a_criterion(market_map):
    # too short to be a valid Brazilian number, still priced as Brazil by calling code
    assert not phonenumbers.is_valid_number(phonenumbers.parse("+5511"))
    assert resolve_numbers(["5511"], market_map).values.tolist() == [["BR", "Brazil", ""]]


def test_matches_phonenumbers_region_for_shared_codes(market_map):
    rng = np.random.default_rng(7)
    codes = rng.choice(["1", "7", "44", "39", "47", "61", "262", "590", "599", "358", "212", "290"], 400)
    numbers = [c + str(n) for c, n in zip(codes, rng.integers(10**7, 10**10, 400))]
    got = resolve_numbers(numbers, market_map)["country"].tolist()
    for number, country in zip(numbers, got):
        region = phonenumbers.region_code_for_number(phonenumbers.parse("+" + number))
        if region and not number.startswith("1"):
            assert country == region, number


def test_categorical_input_gives_same_answer(market_map):
    numbers = pd.Series([n for n, _, _ in CASES] * 3)
    assert resolve_numbers(numbers.astype("category"), market_map).equals(resolve_numbers(numbers, market_map))


def test_default_map_covers_every_phonenumbers_region(market_map):
    assert set(phonenumbers.SUPPORTED_REGIONS) <= set(market_map["country"])
    assert not market_map["country"].duplicated().any()
    assert market_map.set_index("country").loc[["US", "CA", "GG", "BS", "ZW"], "market"].tolist() == [
        "North America", "North America", "United Kingdom", "Other", "Other"]


def test_country_to_market_unknown_is_other(market_map):
    assert country_to_market(["br", "XX", "", None], market_map).tolist() == ["Brazil", "Other", "Other", "Other"]


def test_market_map_file_replaces_default_and_is_validated(tmp_path):
    (tmp_path / "m.csv").write_text("country,market\nBR,LatAm\n")
    mm = load_market_map(str(tmp_path / "m.csv"))
    assert resolve_numbers(["5511987650001", "12025550123"], mm)["market"].tolist() == ["LatAm", "Other"]
    (tmp_path / "bad.csv").write_text("country,region\nBR,LatAm\n")
    with pytest.raises(InputError) as err:
        load_market_map(str(tmp_path / "bad.csv"))
    assert err.value.column == "market"


@pytest.mark.parametrize("seed", [3, 11])
def test_class_representatives_give_the_per_number_answer(market_map, monkeypatch, seed):
    """Many distinct numbers are resolved through one representative per (prefix, length) class, the
    members of shared non-+1 calling codes one by one: same answer as resolving every number."""
    import reconcile.rules.markets as markets

    rng = np.random.default_rng(seed)
    codes = rng.choice(["1", "7", "44", "39", "47", "61", "262", "590", "599", "55", "91", "800", "882", "999",
                        "358", "9", "0", "", "+44 ", "1 "], 3000)
    numbers = [c + "".join(rng.choice(list("0123456789"), rng.integers(0, 16))) for c in codes]
    numbers = [n[:3] + "a" + n[3:] if i % 37 == 0 else n for i, n in enumerate(numbers)]
    numbers += ["", None, "+", "1", "44", "4412", "44123"] * 2
    monkeypatch.setattr(markets, "_REDUCE_MIN", 10**9)
    each = resolve_numbers(pd.Series(numbers, dtype="str"), market_map)
    monkeypatch.setattr(markets, "_REDUCE_MIN", 0)
    classes = resolve_numbers(pd.Series(numbers, dtype="str"), market_map)
    pd.testing.assert_frame_equal(classes, each, check_exact=True)
    assert set(each["problem"]) == {"", "unparseable_number", "unknown_calling_code"}


def test_number_classes_by_prefix_and_length():
    """One class per (first four digits, length) after dropping '+' and spaces, lengths above 21
    together; every non-digit or empty string in one class (key 0); classes in order of first appearance."""
    import pyarrow as pa

    from reconcile.engine.numbers import number_classes

    numbers = pa.array(["447700900123", "447700900999", "4477", "+44 7700 900123", "12a", "", "x",
                        "1" * 22, "1" * 30, "1" * 21, "4477009001230", "12", "012"])
    cls, first, keys, dropped = number_classes(numbers, np.arange(len(numbers)))
    assert cls.tolist() == [0, 0, 1, 0, 2, 2, 2, 3, 3, 3, 4, 5, 6]
    assert first.tolist() == [0, 2, 4, 7, 10, 11, 12]
    assert keys.tolist() == [124_478, 44_478, 0, 211_112, 134_478, 20_013, 30_013]
    assert dropped
    cls, first, keys, dropped = number_classes(numbers, np.array([4, 0, 1]))
    assert (cls.tolist(), first.tolist(), keys.tolist(), dropped) == ([0, 1, 1], [0, 1], [0, 124_478], False)


@pytest.mark.parametrize("reduce_min", [0, 10**9])
def test_number_codes_in_order_of_first_appearance(market_map, monkeypatch, reduce_min):
    """Codes over names numbered by first appearance (as pd.factorize), by classes or one by one, and the
    same again from the class answers kept by the first call."""
    import pyarrow as pa

    import reconcile.rules.markets as markets

    monkeypatch.setattr(markets, "_REDUCE_MIN", reduce_min)
    monkeypatch.setattr(markets, "_CLASS_ANSWERS", {})
    numbers = pa.array(["447700900123", "5511987650001", "999123", "447911123456", "12a", "5511987650002"])
    for _ in range(2):
        got = markets.resolve_number_codes(numbers, np.arange(6), market_map)
        assert (got.country.tolist(), got.country_names) == ([0, 1, 2, 3, 2, 1], ["GB", "BR", "", "GG"])
        assert (got.market.tolist(), got.market_names) == ([0, 1, 2, 0, 2, 1], ["United Kingdom", "Brazil", "Other"])
        assert got.problem.tolist() == [0, 0, 2, 0, 1, 0]
        assert [p.tolist() for p in got.decode()][2] == ["", "", "unknown_calling_code", "", "unparseable_number", ""]
    assert len(markets._CLASS_ANSWERS) == (5 if reduce_min == 0 else 0)
    nulls = markets.resolve_number_codes(pa.array(["12a", None]), np.arange(2), market_map)
    assert (nulls.problem.tolist(), nulls.country_names) == ([1, 1], [""])
    got = markets.resolve_number_codes(numbers, np.array([5, 0]), market_map)
    assert (got.country.tolist(), got.country_names, got.market_names) == ([0, 1], ["BR", "GB"],
                                                                           ["Brazil", "United Kingdom"])


def test_shared_code_regions_agree_with_phonenumbers_on_every_number_type():
    """The example number of every number type of every region of a shared code (other than +1), with
    its last 0..3 digits replaced at random: the vectorised regions (types merged per length) are
    phonenumbers' ``region_code_for_number`` (no region: the code's main region)."""
    import pyarrow as pa
    from phonenumbers import PhoneMetadata

    import reconcile.rules.markets as markets

    rng = np.random.default_rng(3)
    seen = set()
    for cc in sorted(markets._SHARED_CODES - {"1"}):
        examples = [desc.example_number for region in markets._GEO_CODES[cc] for name in markets._TYPE_DESCS
                    for desc in [getattr(PhoneMetadata.metadata_for_region(region), name, None)]
                    if desc is not None and desc.example_number]
        nsn = [e[:k] + "".join(rng.choice(list("0123456789"), len(e) - k))
               for e in examples for k in range(len(e) - 3, len(e) + 1)]
        got = markets._regions_for_national_numbers(pa.array(nsn), cc)
        want = [phonenumbers.region_code_for_number(phonenumbers.parse("+" + cc + n)) or markets._GEO_CODES[cc][0]
                for n in nsn]
        assert got.tolist() == want, cc
        seen |= set(want)
    assert {"GG", "JE", "IM", "KZ", "VA", "SJ", "AX", "YT", "BQ", "CX"} <= seen
