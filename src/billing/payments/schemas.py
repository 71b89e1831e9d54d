from __future__ import annotations

import uuid
from datetime import datetime

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
