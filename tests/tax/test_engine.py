"""The pure tax engine: table-driven, no database."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.tax.engine import (
    LineTax,
    Rate,
    TaxLine,
    TaxProfile,
    TaxStatus,
    calculate,
    line_tax,
    pick_rate,
)


def rate(
    country: str, pct: str, start: str = "2020-01-01", end: str | None = None, **kw: str
) -> Rate:
    return Rate(
        id=uuid.uuid4(),
        name=kw.get("name", "VAT"),
        country=country,
        region=kw.get("region"),
        percentage=Decimal(pct),
        effective_from=date.fromisoformat(start),
        effective_to=date.fromisoformat(end) if end else None,
    )


def profile(country: str | None = "DE", **kw: object) -> TaxProfile:
    return TaxProfile(
        account_id=uuid.uuid4(),
        country=country,
        region=kw.get("region"),  # type: ignore[arg-type]
        tax_exempt=kw.get("tax_exempt", "none"),  # type: ignore[arg-type]
        tax_ids=kw.get("tax_ids", ()),  # type: ignore[arg-type]
        timezone="UTC",
        locale="en_US",
    )


@pytest.mark.parametrize(
    ("amount", "percentage", "expected"),
    [
        (2900, "19", 551),  # 551.00
        (8700, "7.25", 631),  # 630.75 -> 631
        (1050, "5", 53),  # 52.5 -> 53 (half up)
        (-1050, "5", -53),  # negative lines: the exact opposite
        (1049, "5", 52),  # 52.45 -> 52
        (0, "19", 0),
        (1, "19", 0),  # 0.19 -> 0
        (3, "19", 1),  # 0.57 -> 1
        (100000, "0", 0),
        (123456789, "21.5", 26543210),  # 26543209.635 -> 26543210
    ],
)
def test_line_tax_is_rounded_once_half_up(amount: int, percentage: str, expected: int) -> None:
    assert line_tax(amount, Decimal(percentage)) == expected


@given(st.integers(min_value=-(10**12), max_value=10**12), st.decimals(0, 100, places=4))
def test_negative_lines_get_exactly_the_opposite_tax(amount: int, percentage: Decimal) -> None:
    assert line_tax(-amount, percentage) == -line_tax(amount, percentage)


def test_pick_rate_prefers_the_region_then_the_latest_start() -> None:
    country = rate("US", "1")
    state = rate("US", "7.25", region="CA")
    newer_state = rate("US", "7.5", start="2025-07-01", region="CA")
    rates = [country, state, newer_state]
    on = date.fromisoformat
    assert pick_rate(rates, "US", "CA", on("2025-06-30")) is state
    assert pick_rate(rates, "US", "CA", on("2025-07-01")) is newer_state
    assert pick_rate(rates, "US", "TX", on("2025-07-01")) is country
    assert pick_rate(rates, "US", None, on("2025-07-01")) is country
    assert pick_rate(rates, "DE", None, on("2025-07-01")) is None
    assert pick_rate([rate("US", "1", start="2026-01-01")], "US", None, on("2025-12-31")) is None
    ended = rate("US", "1", end="2025-01-01")
    assert pick_rate([ended], "US", None, on("2024-12-31")) is ended
    assert pick_rate([ended], "US", None, on("2025-01-01")) is None  # the end is exclusive


def test_treatments() -> None:
    lines = [TaxLine("subscription", 10000)]
    rates = [rate("DE", "19"), rate("FR", "20")]
    on = date(2025, 3, 1)
    fr_vat = (("eu_vat", "FR40303265045"),)

    def status(
        seller: str | None, country: str | None, **kw: object
    ) -> tuple[TaxStatus, int, str | None]:
        result = calculate(profile(country, **kw), lines, rates, on=on, seller_country=seller)
        return result.status, result.total, result.note

    assert status(None, country="DE") == (TaxStatus.TAXED, 1900, None)
    assert status(None, country="DE", tax_exempt="exempt") == (TaxStatus.EXEMPT, 0, "Tax exempt")
    assert status(None, country="DE", tax_exempt="reverse") == (
        TaxStatus.REVERSE_CHARGE,
        0,
        "Reverse charge",
    )
    # Cross-border EU B2B only with a seller country set, and only with a valid VAT id.
    assert status("DE", country="FR", tax_ids=fr_vat)[0] is TaxStatus.REVERSE_CHARGE
    assert status(None, country="FR", tax_ids=fr_vat) == (TaxStatus.TAXED, 2000, None)
    assert status("DE", country="FR", tax_ids=(("eu_vat", "FR00000000000"),))[1] == 2000
    assert status("DE", country="FR", tax_ids=(("us_ein", "12-3456789"),))[1] == 2000
    # Same country: local VAT. Seller outside the EU: no EU reverse charge.
    assert status("FR", country="FR", tax_ids=fr_vat) == (TaxStatus.TAXED, 2000, None)
    assert status("US", country="FR", tax_ids=fr_vat) == (TaxStatus.TAXED, 2000, None)
    assert status(None, country=None) == (TaxStatus.NONE, 0, None)
    assert status(None, country="JP") == (TaxStatus.NONE, 0, None)


def test_credit_balance_lines_carry_the_balancing_tax() -> None:
    lines = [
        TaxLine("proration", -7026),
        TaxLine("proration", 2058),
        TaxLine("credit_balance", 4968),
    ]
    result = calculate(
        profile("US"), lines, [rate("US", "10")], on=date(2025, 1, 10), seller_country=None
    )
    assert [t.amount for t in result.lines] == [-703, 206, 497]
    assert result.total == 0
    assert result.moved_to_credit == 497
    [row] = result.breakdown
    assert (row.taxable_amount, row.amount) == (-4968, -497)


def test_rounding_never_makes_an_invoice_tax_negative() -> None:
    # -0.5 -> -1 and two +0.25 -> 0 each: without balancing the tax would be -1.
    lines = [TaxLine("proration", -10), TaxLine("proration", 5), TaxLine("subscription", 5)]
    result = calculate(
        profile("DE"), lines, [rate("DE", "5")], on=date(2025, 1, 1), seller_country=None
    )
    assert result.total == 0
    assert result.lines[0] == LineTax(-1, result.lines[0].rate)
    assert [t.amount for t in result.lines] == [-1, 1, 0]
