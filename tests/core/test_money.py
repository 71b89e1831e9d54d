"""Tests for billing.core.money."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.core.money import (
    active_currencies,
    allocate_largest_remainder,
    format_amount,
    is_active_currency,
    minor_unit_exponent,
    round_minor,
    to_minor_units,
)

D = Decimal


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [
        # zero-decimal
        ("JPY", 0),
        ("KRW", 0),
        ("CLP", 0),
        ("VND", 0),
        ("ISK", 0),
        ("PYG", 0),
        ("UGX", 0),
        ("XAF", 0),
        ("XOF", 0),
        ("RWF", 0),
        # CLDR (unlike ISO 4217's 3) uses 0 digits for IQD
        ("IQD", 0),
        # two-decimal
        ("USD", 2),
        ("EUR", 2),
        ("GBP", 2),
        ("CHF", 2),
        ("CAD", 2),
        ("AUD", 2),
        ("INR", 2),
        ("BRL", 2),
        ("MXN", 2),
        ("CNY", 2),
        ("SEK", 2),
        # three-decimal
        ("BHD", 3),
        ("KWD", 3),
        ("OMR", 3),
        ("JOD", 3),
        ("TND", 3),
        ("LYD", 3),
        # retired currency still known to CLDR, so old documents stay readable
        ("HRK", 2),
    ],
)
def test_minor_unit_exponent(currency: str, exponent: int) -> None:
    assert minor_unit_exponent(currency) == exponent


@pytest.mark.parametrize("code", ["ABC", "usd", "", "US", "USDX"])
def test_minor_unit_exponent_rejects_unknown_codes(code: str) -> None:
    with pytest.raises(ValueError, match="unknown currency"):
        minor_unit_exponent(code)


@pytest.mark.parametrize(
    ("code", "active"),
    [
        ("USD", True),
        ("EUR", True),
        ("JPY", True),
        ("BHD", True),
        ("KWD", True),
        ("CLP", True),
        ("XOF", True),
        ("XCG", True),
        ("usd", False),
        ("Usd", False),
        ("", False),
        ("ABC", False),
        ("XXX", False),  # "no currency"
        ("XTS", False),  # testing code
        ("XAU", False),  # gold, not legal tender
        ("CLF", False),  # fund code
        ("HRK", False),  # replaced by EUR in 2023
        ("DEM", False),
        ("ZWD", False),
        ("ANG", False),  # replaced by XCG
    ],
)
def test_is_active_currency(code: str, active: bool) -> None:
    assert is_active_currency(code) is active


def test_active_currencies_all_have_a_cldr_exponent() -> None:
    codes = active_currencies()
    assert len(codes) > 140
    assert {minor_unit_exponent(code) for code in codes} == {0, 2, 3}


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (D("2.5"), 3),
        (D("-2.5"), -3),
        (D("3.5"), 4),  # not banker's rounding (which would give 4 here, 2 for 2.5)
        (D("0.5"), 1),
        (D("-0.5"), -1),
        (D("1234.5"), 1235),
        (D("1234.49999"), 1234),
        (D("-1234.49999"), -1234),
        (D("-1234.5"), -1235),
        (D("0"), 0),
        (D("-0"), 0),
        (D("7"), 7),
        (D("1E+3"), 1000),
        # 10.05 USD x 1/2 in cents: 1005 / 2 = 502.5 -> 503 (DESIGN.md section 3)
        (D(1005) / 2, 503),
        (D("493.8"), 494),  # 0.04 cents x 12,345 calls
        (D("0.4999999999999999999999999999"), 0),
        # wider than the default 28-digit context: must not raise
        (D("123456789012345678901234567890.5"), 123456789012345678901234567891),
    ],
)
def test_round_minor_half_up(amount: Decimal, expected: int) -> None:
    result = round_minor(amount)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("amount", [D("NaN"), D("Infinity"), D("-Infinity")])
def test_round_minor_rejects_non_finite(amount: Decimal) -> None:
    with pytest.raises(ValueError, match="finite"):
        round_minor(amount)


def test_round_minor_rejects_float() -> None:
    with pytest.raises(TypeError):
        round_minor(2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (D("29.99"), "USD", 2999),
        (D("29"), "USD", 2900),
        (D("0.005"), "USD", 1),
        (D("0.004999"), "USD", 0),
        (D("-0.005"), "USD", -1),
        (D("5.025"), "EUR", 503),
        (D("500"), "JPY", 500),
        (D("499.5"), "JPY", 500),
        (D("-499.5"), "JPY", -500),
        (D("1"), "BHD", 1000),
        (D("1.2345"), "BHD", 1235),
        (D("0.0005"), "KWD", 1),
        (D("1234.5"), "CLP", 1235),
    ],
)
def test_to_minor_units(amount: Decimal, currency: str, expected: int) -> None:
    assert to_minor_units(amount, currency) == expected


@pytest.mark.parametrize(
    ("amount_minor", "currency", "locale", "expected"),
    [
        (1234567, "JPY", "ja_JP", "￥1,234,567"),
        (500, "JPY", "en_US", "¥500"),
        (123456, "EUR", "de_DE", "1.234,56\xa0€"),
        (123456, "EUR", "fr_FR", "1\u202f234,56\xa0€"),
        (99, "EUR", "nl_NL", "€\xa00,99"),
        (1000, "BHD", "en_US", "BHD1.000"),
        (1234567, "KWD", "en_US", "KWD1,234.567"),
        (2900, "USD", "en_US", "$29.00"),
        (-2999, "USD", "en_US", "-$29.99"),
        (0, "USD", "en_US", "$0.00"),
        (5, "USD", "en_US", "$0.05"),
        (123456, "USD", "de_DE", "1.234,56\xa0$"),
        (123456, "GBP", "en_GB", "£1,234.56"),
        (123456, "CHF", "de_CH", "CHF\xa01\u2019234.56"),
        (12345678, "INR", "en_IN", "₹1,23,456.78"),
        (1500, "CLP", "es_CL", "$1.500"),
        (10000, "KRW", "ko_KR", "₩10,000"),
        (150000, "VND", "vi_VN", "150.000\xa0₫"),
        (1234, "ISK", "is_IS", "1.234\xa0kr."),
    ],
)
def test_format_amount(amount_minor: int, currency: str, locale: str, expected: str) -> None:
    assert format_amount(amount_minor, currency, locale) == expected


def test_format_amount_defaults_to_en_us() -> None:
    assert format_amount(2999, "USD") == "$29.99"


def test_format_amount_rejects_unknown_currency() -> None:
    with pytest.raises(ValueError, match="unknown currency"):
        format_amount(100, "ABC")


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (100, [D(1), D(1), D(1)], [34, 33, 33]),
        (-100, [D(1), D(1), D(1)], [-34, -33, -33]),
        (2, [D(1), D(1), D(1)], [1, 1, 0]),
        (10, [D(1)], [10]),
        (1000, [D("0.5"), D("0.25"), D("0.25")], [500, 250, 250]),
        # exact shares 1.7, 1.7, 6.6 -> floors 1, 1, 6; the two left go to the .7s
        (10, [D(17), D(17), D(66)], [2, 2, 6]),
        (-10, [D(17), D(17), D(66)], [-2, -2, -6]),
        # exact shares 1.5, 1.5, 7 -> floors 1, 1, 7; one left, tie to the earlier index
        (10, [D(15), D(15), D(70)], [2, 1, 7]),
        (-10, [D(15), D(15), D(70)], [-2, -1, -7]),
        # shares 3.5, 1.5 -> both .5 remainders, tie to the earlier index
        (5, [D(7), D(3)], [4, 1]),
        (0, [D(1), D(2)], [0, 0]),
        (7, [D(0), D(1), D(0)], [0, 7, 0]),
        # all-zero weights: split evenly
        (5, [D(0), D(0), D(0)], [2, 2, 1]),
        (-5, [D(0), D(0)], [-3, -2]),
        (0, [], []),
    ],
)
def test_allocate_largest_remainder(
    total: int, weights: list[Decimal], expected: list[int]
) -> None:
    assert allocate_largest_remainder(total, weights) == expected


def test_allocate_empty_weights_with_non_zero_total() -> None:
    with pytest.raises(ValueError, match="no weights"):
        allocate_largest_remainder(1, [])


@pytest.mark.parametrize("weight", [D(-1), D("NaN"), D("Infinity")])
def test_allocate_rejects_bad_weights(weight: Decimal) -> None:
    with pytest.raises(ValueError, match="weight 1"):
        allocate_largest_remainder(10, [D(1), weight])


weights_strategy = st.lists(
    st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False, allow_infinity=False),
    max_size=12,
)


@given(total=st.integers(min_value=-(10**12), max_value=10**12), weights=weights_strategy)
def test_allocate_properties(total: int, weights: list[Decimal]) -> None:
    if not weights:
        return  # covered by the explicit empty-weights tests
    parts = allocate_largest_remainder(total, weights)
    assert len(parts) == len(weights)
    assert all(type(part) is int for part in parts)
    assert sum(parts) == total
    exact = [Fraction(weight) for weight in weights]
    weight_sum = sum(exact, Fraction(0))
    if weight_sum == 0:
        exact = [Fraction(1)] * len(weights)
        weight_sum = Fraction(len(weights))
    for part, weight in zip(parts, exact, strict=True):
        share = total * weight / weight_sum
        assert abs(part - share) < 1


@given(total=st.integers(min_value=0, max_value=10**9), weights=weights_strategy.filter(bool))
def test_allocate_negative_total_is_symmetric(total: int, weights: list[Decimal]) -> None:
    positive = allocate_largest_remainder(total, weights)
    assert allocate_largest_remainder(-total, weights) == [-part for part in positive]
