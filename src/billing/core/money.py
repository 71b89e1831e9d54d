"""Money helpers: ISO 4217 exponents, half-up rounding, formatting, allocation.

Amounts are integers in the currency's minor unit; exponents and formatting come
from Babel's CLDR data, never from a hand-written table.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import cache

from babel.core import get_global
from babel.numbers import format_currency, get_currency_precision, is_currency

__all__ = [
    "active_currencies",
    "allocate_largest_remainder",
    "format_amount",
    "is_active_currency",
    "minor_unit_exponent",
    "round_minor",
    "to_minor_units",
]


@cache
def active_currencies() -> frozenset[str]:
    """Currencies that are legal tender today in some CLDR territory."""
    # CLDR records each territory's currency history with validity dates and a
    # tender flag; a code still in use somewhere has an entry without an end date.
    # Reading the stored ranges (rather than get_territory_currencies(), which
    # defaults to today's date) keeps this deterministic and clock-free.
    # Funds, metals and test codes (XXX, XTS, XAU...) are non-tender and excluded.
    territories = get_global("territory_currencies")
    return frozenset(
        code
        for history in territories.values()
        for code, _start, end, tender in history
        if tender and end is None
    )


def is_active_currency(code: str) -> bool:
    """True for an upper-case ISO 4217 code that is legal tender somewhere today."""
    return isinstance(code, str) and code.isupper() and code in active_currencies()


def minor_unit_exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (USD 2, JPY 0, BHD 3)."""
    # Any code Babel knows is accepted (not only active ones) so that documents in a
    # since-retired currency (e.g. HRK) stay readable; unknown codes would otherwise
    # silently get Babel's default of 2.
    if not is_currency(currency):
        raise ValueError(f"unknown currency code: {currency!r}")
    return get_currency_precision(currency)


def round_minor(amount: Decimal) -> int:
    """Round a Decimal amount in minor units once, half-up (away from zero on .5)."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError(f"amount must be finite: {amount}")
    # Same result as quantize(Decimal(1), ROUND_HALF_UP), but never limited by the
    # context precision and never signals Inexact (callers may trap it).
    return int(amount.to_integral_value(rounding=ROUND_HALF_UP))


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Convert a major-unit Decimal (29.99 USD) to integer minor units (2999), half-up."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    # scaleb only shifts the exponent, so no digits are lost before the one rounding.
    return round_minor(amount.scaleb(minor_unit_exponent(currency)))


def format_amount(amount_minor: int, currency: str, locale: str = "en_US") -> str:
    """Format integer minor units for display with CLDR symbols and digits."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"amount_minor must be an int, not {type(amount_minor).__name__}")
    major = Decimal(amount_minor).scaleb(-minor_unit_exponent(currency))
    return format_currency(major, currency, locale=locale, currency_digits=True)


def allocate_largest_remainder(total: int, weights: Sequence[Decimal]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` summing to ``total``.

    Hamilton / largest-remainder method: each part is its exact share rounded
    toward zero, and the units left over go one each to the largest fractional
    remainders, ties to the earlier index. A negative total is split as its
    absolute value and negated, so results are symmetric. If every weight is zero
    the total is split evenly (as if all weights were equal). Weights must be
    finite and non-negative; empty weights are only allowed for a zero total.
    """
    if isinstance(total, bool) or not isinstance(total, int):
        raise TypeError(f"total must be an int, not {type(total).__name__}")
    if not weights:
        if total != 0:
            raise ValueError("cannot allocate a non-zero total over no weights")
        return []
    exact: list[Fraction] = []
    for index, weight in enumerate(weights):
        if not isinstance(weight, Decimal) or not weight.is_finite() or weight < 0:
            raise ValueError(f"weight {index} must be a finite Decimal >= 0: {weight!r}")
        # Fraction(Decimal) is exact, so shares are computed without any rounding.
        exact.append(Fraction(weight))
    weight_sum = sum(exact, Fraction(0))
    if weight_sum == 0:
        exact = [Fraction(1)] * len(exact)
        weight_sum = Fraction(len(exact))

    magnitude = abs(total)
    shares = [magnitude * weight / weight_sum for weight in exact]
    parts = [share.numerator // share.denominator for share in shares]
    leftover = magnitude - sum(parts)
    # Shares sum to the total exactly, so 0 <= leftover < len(parts).
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for index in by_remainder[:leftover]:
        parts[index] += 1
    sign = -1 if total < 0 else 1
    return [sign * part for part in parts]
