"""The built-in tax engine: pure code, no I/O.

Per invoice: decide the treatment from the account (exempt, reverse charge, or taxed by
location), pick the rate in force on the invoice's local date, tax each line once (half-up,
negative lines get negative tax) and group the result per rate.

`credit_balance` lines are not a supply: they move the unused part of a downgrade to the
account's credit. They carry the tax that balances the negative tax of the other lines, so an
invoice's tax never goes below zero, and that tax goes to the credit balance with the net.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from stdnum.eu import vat as eu_vat

from billing.core.money import round_minor

CREDIT_BALANCE = "credit_balance"

# EU member states by ISO 3166-1 code (python-stdnum's list, without Northern Ireland's XI,
# which is not a country code).
EU_COUNTRIES = frozenset(code.upper() for code in eu_vat.MEMBER_STATES if code != "xi")

EXEMPT_NOTE = "Tax exempt"
REVERSE_CHARGE_NOTE = "Reverse charge"


class TaxStatus(StrEnum):
    TAXED = "taxed"
    EXEMPT = "exempt"
    REVERSE_CHARGE = "reverse_charge"
    NONE = "none"  # no rate applies (no location, or none configured for it)


def valid_eu_vat(value: str) -> bool:
    return bool(eu_vat.is_valid(value))


@dataclass(frozen=True, slots=True)
class TaxProfile:
    """What tax needs to know about an account."""

    account_id: uuid.UUID
    country: str | None
    region: str | None
    tax_exempt: str  # none | exempt | reverse
    tax_ids: tuple[tuple[str, str], ...]  # (type, value)
    timezone: str
    locale: str

    @property
    def has_valid_eu_vat_id(self) -> bool:
        return any(kind == "eu_vat" and valid_eu_vat(value) for kind, value in self.tax_ids)


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate as applied: from the tax_rates table (id set) or from an external provider."""

    id: uuid.UUID | None
    name: str
    country: str | None
    region: str | None
    percentage: Decimal
    effective_from: date | None = None
    effective_to: date | None = None

    def in_force(self, on: date) -> bool:
        starts = self.effective_from is None or self.effective_from <= on
        return starts and (self.effective_to is None or on < self.effective_to)


@dataclass(frozen=True, slots=True)
class LineTax:
    amount: int
    rate: Rate | None


@dataclass(frozen=True, slots=True)
class TaxBreakdown:
    rate: Rate
    taxable_amount: int
    amount: int


@dataclass(frozen=True, slots=True)
class InvoiceTax:
    status: TaxStatus
    note: str | None
    lines: tuple[LineTax, ...]
    breakdown: tuple[TaxBreakdown, ...]

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def moved_to_credit(self) -> int:
        """Tax carried by credit_balance lines: it goes to the credit balance with the net."""
        return sum(t.amount for t in self.lines if t.rate is None and t.amount > 0)


@dataclass(frozen=True, slots=True)
class TaxLine:
    """A line as tax sees it."""

    kind: str
    amount: int


def no_tax(lines: Sequence[TaxLine], status: TaxStatus, note: str | None) -> InvoiceTax:
    return InvoiceTax(status, note, tuple(LineTax(0, None) for _ in lines), ())


def treatment(profile: TaxProfile, seller_country: str | None) -> TaxStatus | None:
    """Exempt or reverse charge for the whole invoice, or None: taxed by location."""
    if profile.tax_exempt == "exempt":
        return TaxStatus.EXEMPT
    if profile.tax_exempt == "reverse":
        return TaxStatus.REVERSE_CHARGE
    if (
        seller_country in EU_COUNTRIES
        and profile.country in EU_COUNTRIES
        and profile.country != seller_country
        and profile.has_valid_eu_vat_id
    ):
        # EU B2B across a border: the buyer accounts for the VAT (Art. 196 VAT Directive).
        return TaxStatus.REVERSE_CHARGE
    return None


def pick_rate(rates: Sequence[Rate], country: str, region: str | None, on: date) -> Rate | None:
    """The rate in force on `on` for the location: a region's rate over the country's, then the
    latest `effective_from`; among equals the last one given (callers pass creation order)."""
    best: Rate | None = None
    best_key: tuple[bool, date] | None = None
    for rate in rates:
        if rate.country != country or not rate.in_force(on):
            continue
        if rate.region is not None and rate.region != region:
            continue
        key = (rate.region is not None, rate.effective_from or date.min)
        if best_key is None or key >= best_key:
            best, best_key = rate, key
    return best


def line_tax(amount: int, percentage: Decimal) -> int:
    """Tax of one line, rounded once, half-up (away from zero: -x gets exactly -tax(x))."""
    return round_minor(Decimal(amount) * percentage / 100)


def tax_lines(lines: Sequence[TaxLine], rate: Rate) -> list[LineTax]:
    return [
        LineTax(0, None)
        if line.kind == CREDIT_BALANCE
        else LineTax(line_tax(line.amount, rate.percentage), rate)
        for line in lines
    ]


def balance(lines: Sequence[TaxLine], taxes: list[LineTax]) -> list[LineTax]:
    """Keep the invoice's tax >= 0.

    A downgrade's negative lines give negative tax; the credit_balance line that moves the net
    to the credit balance takes the opposite tax (which then goes to the credit too). Without
    such a line only per-line rounding can push the sum below zero (by a minor unit or two):
    the largest charge absorbs that.
    """
    total = sum(t.amount for t in taxes)
    if total >= 0:
        return taxes
    target = next((i for i in reversed(range(len(lines))) if lines[i].kind == CREDIT_BALANCE), None)
    if target is not None:
        taxes[target] = LineTax(-total, None)
        return taxes
    largest = max(range(len(lines)), key=lambda i: lines[i].amount)
    taxes[largest] = LineTax(taxes[largest].amount - total, taxes[largest].rate)
    return taxes


def breakdown(lines: Sequence[TaxLine], taxes: Sequence[LineTax]) -> tuple[TaxBreakdown, ...]:
    """One row per rate, in the order the rates first appear."""
    rows: dict[Rate, list[int]] = {}
    for line, tax in zip(lines, taxes, strict=True):
        if tax.rate is None:
            continue
        row = rows.setdefault(tax.rate, [0, 0])
        row[0] += line.amount
        row[1] += tax.amount
    return tuple(TaxBreakdown(rate, taxable, amount) for rate, (taxable, amount) in rows.items())


def finish(status: TaxStatus, lines: Sequence[TaxLine], taxes: list[LineTax]) -> InvoiceTax:
    taxes = balance(lines, taxes)
    return InvoiceTax(status, None, tuple(taxes), breakdown(lines, taxes))


def calculate(
    profile: TaxProfile,
    lines: Sequence[TaxLine],
    rates: Sequence[Rate],
    *,
    on: date,
    seller_country: str | None,
) -> InvoiceTax:
    """Tax for one invoice of `profile`'s account, finalized on local date `on`."""
    special = treatment(profile, seller_country)
    if special is TaxStatus.EXEMPT:
        return no_tax(lines, special, EXEMPT_NOTE)
    if special is TaxStatus.REVERSE_CHARGE:
        return no_tax(lines, special, REVERSE_CHARGE_NOTE)
    if profile.country is None:
        return no_tax(lines, TaxStatus.NONE, None)
    rate = pick_rate(rates, profile.country, profile.region, on)
    if rate is None:
        return no_tax(lines, TaxStatus.NONE, None)
    return finish(TaxStatus.TAXED, lines, tax_lines(lines, rate))
