from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventRead(BaseModel):
    """An event as the API lists it and as webhooks deliver it (the request body)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Also the `webhook-id` of its deliveries: deduplicate on it.")
    object: str = "event"
    type: str = Field(examples=["invoice.finalized"])
    account_id: uuid.UUID | None
    created_at: datetime = Field(description="When the change happened (on the account's clock).")
    data: dict[str, Any] = Field(description="The resource as the API returned it at that moment.")


class RedeliverRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"endpoint_id": "0b8e8c52-7a57-4d39-9a0a-3f8a4c1b2d11"}]},
    )

    endpoint_id: uuid.UUID | None = Field(
        default=None,
        description="Send to this endpoint only; unset: every enabled endpoint subscribed to "
        "the event's type.",
    )
