from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from billing.core.money import format_amount
from billing.http.types import DecimalOut


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


@lru_cache(maxsize=8192)
def formatted(amount: int, currency: str, locale: str) -> str:
    """`format_amount`, cached: invoices repeat the same few amounts (prices, zero) a lot, and
    finalization formats every invoice it writes (the events carry the formatted amounts)."""
    return format_amount(amount, currency, locale)


class _Formatting(BaseModel):
    # Not part of the API shape: what the *_formatted fields are formatted with.
    format_currency: str = Field(default="USD", exclude=True, repr=False)
    format_locale: str = Field(default="en_US", exclude=True, repr=False)

    def _fmt(self, amount: int) -> str:
        return formatted(amount, self.format_currency, self.format_locale)


class InvoiceTaxRead(_Formatting):
    """Tax per rate on an invoice."""

    model_config = ConfigDict(from_attributes=True)

    object: str = "invoice_tax"
    tax_rate_id: uuid.UUID | None
    name: str
    country: str | None
    region: str | None
    percentage: DecimalOut
    inclusive: bool
    taxable_amount: int
    amount: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def amount_formatted(self) -> str:
        return self._fmt(self.amount)


class InvoiceLineRead(_Formatting):
    model_config = ConfigDict(from_attributes=True)

    object: str = "invoice_line"
    id: uuid.UUID
    kind: str
    description: str
    period_start: date | None
    period_end: date | None
    quantity: DecimalOut
    unit_amount: int | None
    unit_amount_decimal: DecimalOut | None
    amount: int
    details: dict[str, Any]
    tax_amount: int = 0
    tax_rate_id: uuid.UUID | None = None
    tax_percentage: DecimalOut | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def amount_formatted(self) -> str:
        return self._fmt(self.amount)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tax_amount_formatted(self) -> str:
        return self._fmt(self.tax_amount)


class InvoiceRead(_Formatting):
    model_config = ConfigDict(from_attributes=True)

    object: str = "invoice"
    id: uuid.UUID
    number: str | None
    account_id: uuid.UUID
    subscription_id: uuid.UUID | None
    currency: str
    status: InvoiceStatus
    billing_reason: str
    period_start: date | None
    period_end: date | None
    lines: list[InvoiceLineRead]
    subtotal: int
    tax: int
    total: int
    credits_applied: int
    amount_due: int
    amount_paid: int
    amount_remaining: int
    created_at: datetime
    finalized_at: datetime | None
    due_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    tax_status: str = Field(
        default="none",
        description="taxed, exempt, reverse_charge, or none (no rate for the location).",
    )
    tax_note: str | None = Field(
        default=None, description='What the invoice must say about tax ("Reverse charge").'
    )
    taxes: list[InvoiceTaxRead] = Field(default_factory=list, description="Tax per rate.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def subtotal_formatted(self) -> str:
        return self._fmt(self.subtotal)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tax_formatted(self) -> str:
        return self._fmt(self.tax)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_formatted(self) -> str:
        return self._fmt(self.total)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def amount_due_formatted(self) -> str:
        return self._fmt(self.amount_due)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def amount_remaining_formatted(self) -> str:
        return self._fmt(self.amount_remaining)


def formatting(currency: str, locale: str) -> dict[str, str]:
    """The hidden fields that the *_formatted fields of the read models use."""
    return {"format_currency": currency, "format_locale": locale}
