from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from billing.events.catalog import is_valid_pattern
from billing.http.types import Metadata


def _patterns(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("list at least one event type, a category such as `invoice.*`, or `*`")
    unknown = [p for p in value if not is_valid_pattern(p)]
    if unknown:
        raise ValueError(
            f"unknown event type or category {unknown[0]!r} (see the event types in the docs)"
        )
    return list(dict.fromkeys(value))


EnabledEvents = Annotated[
    list[Annotated[str, Field(max_length=64)]],
    Field(max_length=100, examples=[["invoice.*", "subscription.canceled"]]),
    AfterValidator(_patterns),
]
Url = Annotated[str, Field(min_length=1, max_length=2048, examples=["https://example.com/hooks"])]


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/billing/webhooks",
                    "enabled_events": ["invoice.*", "subscription.canceled"],
                    "description": "Provisioning service",
                }
            ]
        },
    )

    url: Url
    enabled_events: EnabledEvents
    description: str | None = Field(default=None, max_length=500)
    disabled: bool = False
    metadata: Metadata = Field(default_factory=dict)


class WebhookEndpointUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"enabled_events": ["*"], "disabled": False}]},
    )

    url: Url | None = None
    enabled_events: EnabledEvents | None = None
    description: str | None = Field(default=None, max_length=500)
    disabled: bool | None = Field(
        default=None, description="false re-enables an endpoint that was disabled."
    )
    metadata: Metadata | None = None


class WebhookEndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    object: str = "webhook_endpoint"
    url: str
    enabled_events: list[str]
    description: str | None
    disabled: bool
    disabled_reason: str | None = Field(description="manual, gone (410) or failing.")
    disabled_at: datetime | None
    failing_since: datetime | None = Field(
        description="The first failed delivery since the last success."
    )
    metadata: Metadata
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpointRead):
    secret: str = Field(description="The signing secret (`whsec_…`). Shown once: keep it.")


class WebhookSecretRotated(BaseModel):
    object: str = "webhook_secret"
    endpoint_id: uuid.UUID
    secret: str = Field(description="The new signing secret. Shown once: keep it.")
    previous_secret_expires_at: datetime = Field(
        description="Until then deliveries carry a signature with each secret."
    )


class WebhookEndpointDeleted(BaseModel):
    object: str = "webhook_endpoint"
    id: uuid.UUID
    deleted: bool = True


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    object: str = "webhook_delivery"
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_response_status: int | None = Field(description="None when no response came back.")
    last_latency_ms: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
