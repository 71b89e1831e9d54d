"""Field types shared by the API schemas of every domain."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, PlainSerializer

from billing.core.money import is_active_currency


def plain_decimal(value: Decimal) -> str:
    """Canonical text of a decimal: no exponent, no trailing zeros ("1E+3" -> "1000")."""
    if value == 0:
        return "0"  # also turns "-0" into "0"
    return format(value.normalize(), "f")


# Decimals leave the API as canonical strings.
DecimalOut = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="json")]


def _currency(value: str) -> str:
    code = value.strip().upper()
    if not is_active_currency(code):
        raise ValueError(f"{value!r} is not an active ISO 4217 currency code")
    return code


Currency = Annotated[str, AfterValidator(_currency), Field(examples=["USD"])]


def _metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 50:
        raise ValueError("at most 50 keys")
    for key, item in value.items():
        if not 1 <= len(key) <= 40:
            raise ValueError(f"key {key!r} must be 1 to 40 characters")
        if len(item) > 500:
            raise ValueError(f"value of {key!r} is longer than 500 characters")
    return value


# Free-form key/value pairs for the integrator's own references (Stripe's limits).
Metadata = Annotated[dict[str, str], AfterValidator(_metadata)]
