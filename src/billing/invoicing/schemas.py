from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from billing.http.types import DecimalOut


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class InvoiceLineRead(BaseModel):
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


class InvoiceRead(BaseModel):
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
