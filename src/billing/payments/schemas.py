from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class PaymentMethodAttach(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"token": "pm_card_visa", "set_default": False}]},
    )

    token: str = Field(
        min_length=1,
        max_length=255,
        description="The gateway's payment method token (sandbox: `pm_card_visa`, ...).",
    )
    set_default: bool = Field(
        default=False, description="Make it the default (the first method always is)."
    )


class PaymentMethodRead(BaseModel):
    """Masked card data only: never a card number, never the gateway token."""

    model_config = ConfigDict(from_attributes=True)

    object: str = "payment_method"
    id: uuid.UUID
    account_id: uuid.UUID
    gateway: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool
    created_at: datetime


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


class PaymentRead(BaseModel):
    """A payment attempt; also the `data` of the payment.* events."""

    model_config = ConfigDict(from_attributes=True)

    object: str = "payment"
    id: uuid.UUID
    invoice_id: uuid.UUID
    account_id: uuid.UUID
    payment_method_id: uuid.UUID | None
    amount: int
    amount_refunded: int
    currency: str
    status: PaymentStatus
    gateway: str
    gateway_transaction_id: str | None
    failure_code: str | None
    failure_message: str | None
    idempotency_key: str
    attempt_number: int
    next_retry_at: datetime | None
    created_at: datetime
    updated_at: datetime


class InvoicePay(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{}, {"payment_method_id": "0b9f…"}]},
    )

    payment_method_id: uuid.UUID | None = Field(
        default=None, description="Charge this method of the account instead of its default."
    )


class RefundCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"amount": 1000, "reason": "Goodwill"}]},
    )

    amount: int | None = Field(
        default=None, gt=0, description="Minor units; omit to refund what is left of the payment."
    )
    reason: str | None = Field(default=None, max_length=500)


class RefundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: str = "refund"
    id: uuid.UUID
    payment_id: uuid.UUID
    invoice_id: uuid.UUID
    account_id: uuid.UUID
    amount: int
    currency: str
    status: PaymentStatus
    reason: str | None
    gateway_refund_id: str | None
    failure_code: str | None
    created_at: datetime
