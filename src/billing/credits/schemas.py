from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from billing.http.types import Currency


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be a positive amount in the currency's minor unit")
    return value


class CreditGrant(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "account_id": "8c7e2e4a-2b1f-4a53-9d0e-2f6c1d9f0a11",
                    "amount": 5000,
                    "currency": "USD",
                    "reason": "Goodwill for the March outage",
                }
            ]
        },
    )

    account_id: uuid.UUID
    amount: Annotated[int, Field(strict=True, le=10**12), AfterValidator(_positive)]
    currency: Currency | None = Field(
        default=None, description="Defaults to the account's currency."
    )
    reason: str | None = Field(default=None, max_length=500)
    expires_at: datetime | None = None


class CreditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: str = "credit_entry"
    id: uuid.UUID
    account_id: uuid.UUID
    currency: str
    kind: str
    amount: int
    grant_id: uuid.UUID | None
    invoice_id: uuid.UUID | None
    reason: str | None
    expires_at: datetime | None
    created_at: datetime


class CreditBalances(BaseModel):
    object: str = "credit_balance"
    account_id: uuid.UUID
    balances: dict[str, int] = Field(description="Available credit per currency, minor units.")
    balances_formatted: dict[str, str] = Field(
        default_factory=dict, description="The balances formatted in the account's locale."
    )
    ledger: list[CreditEntryRead]
