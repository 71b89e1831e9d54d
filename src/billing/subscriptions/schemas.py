from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from billing.core.lifecycle import SubscriptionStatus
from billing.http.types import Metadata


def _billing_anchor(value: Any) -> Any:
    # One clear message rather than one per member of the union.
    if value == "start" or (type(value) is int and 1 <= value <= 31):
        return value
    raise ValueError("must be 'start' or a day of the month from 1 to 31")


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"account_id": "8c7e2e4a-2b1f-4a53-9d0e-2f6c1d9f0a11", "plan_code": "pro"},
                {
                    "account_id": "8c7e2e4a-2b1f-4a53-9d0e-2f6c1d9f0a11",
                    "plan_code": "team",
                    "quantity": 5,
                    "trial_days": 0,
                    "billing_anchor": 1,
                },
            ]
        },
    )

    account_id: uuid.UUID
    plan_id: uuid.UUID | None = None
    plan_code: str | None = Field(default=None, min_length=1, max_length=64)
    quantity: int = Field(default=1, ge=1, le=1_000_000, strict=True)
    start_date: date | None = Field(
        default=None, description="Local date in the account's time zone; today by default."
    )
    trial_days: int | None = Field(
        default=None, ge=0, le=730, description="Overrides the plan's trial length."
    )
    billing_anchor: Annotated[
        Literal["start"] | int,
        BeforeValidator(_billing_anchor),
        Field(description="`start` (anniversary) or a day of the month (calendar billing)."),
    ] = "start"
    metadata: Metadata = Field(default_factory=dict)


class PendingChange(BaseModel):
    """A plan or quantity change that applies at the end of the current period."""

    plan_id: uuid.UUID
    plan_code: str
    plan_version: int
    quantity: int
    effective_date: date
    requested_at: datetime


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"plan_code": "business"},
                {"quantity": 5, "proration": "immediate"},
                {"plan_code": "starter", "proration": "at_period_end"},
            ]
        },
    )

    plan_id: uuid.UUID | None = None
    plan_code: str | None = Field(default=None, min_length=1, max_length=64)
    quantity: int | None = Field(default=None, ge=1, le=1_000_000, strict=True)
    proration: Literal["immediate", "at_period_end"] | None = Field(
        default=None,
        description="Default: `immediate` for upgrades, `at_period_end` for downgrades (by the "
        "recurring amount normalized to a month).",
    )

    @model_validator(mode="after")
    def _something(self) -> SubscriptionUpdate:
        if self.plan_id is not None and self.plan_code is not None:
            raise ValueError("give at most one of plan_id or plan_code")
        if self.plan_id is None and self.plan_code is None and self.quantity is None:
            raise ValueError("give a new plan (plan_id or plan_code) and/or a quantity")
        return self


class PauseRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"resumes_at": "2026-09-01T00:00:00Z"}]},
    )

    resumes_at: AwareDatetime | None = Field(
        default=None, description="Resume automatically then (within PAUSE_MAX_DAYS)."
    )
    at_period_end: bool = Field(
        default=False, description="Pause when the current paid period ends instead of now."
    )


class SubscriptionRead(BaseModel):
    object: str = "subscription"
    id: uuid.UUID
    account_id: uuid.UUID
    plan_id: uuid.UUID
    plan_code: str
    plan_version: int
    currency: str
    quantity: int
    status: SubscriptionStatus
    start_date: date
    billing_anchor: Literal["start"] | int
    current_period_start: date | None
    current_period_end: date | None
    trial_start: date | None
    trial_end: date | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    ended_at: datetime | None
    pending_change: PendingChange | None
    pause_at_period_end: bool
    paused_at: datetime | None
    resumes_at: datetime | None
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime
    # True while dunning has blocked the account for non-payment (GET reads fill it in).
    service_blocked: bool = False


class HistoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: str = "subscription_history"
    id: uuid.UUID
    at: datetime
    kind: str
    actor: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
