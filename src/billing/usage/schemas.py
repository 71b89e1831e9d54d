"""API shapes of usage metering, and the parsing of usage events.

Events stay plain dicts (no model instance per event). A batch body is read by orjson, and
each event of the common shape is checked by a few C-level tests (`parse_event`); any other
event goes through a pydantic `TypeAdapter`, which decides and words the errors. Measured on
a 1,000-event body: 0.2 ms to read, about 0.5 ms more to check this way, against 1.6 ms for
the adapter over the whole body and 3.5 ms with one model instance per event.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from billing.catalog.models import Aggregation
from billing.catalog.schemas import METRIC_PATTERN
from billing.core.pricing import PricingModel
from billing.http.errors import DomainError, ValidationFailed
from billing.http.types import DecimalOut

MAX_BATCH = 10_000
MAX_PROPERTIES_BYTES = 4096
MAX_KEY_LENGTH = 255
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL
# Hex UUIDs with or without hyphens; ids stay strings until PostgreSQL reads them.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"

# At most 20 integer digits and 12 decimals (the column is numeric(32, 12)).
Quantity = Annotated[Decimal, Field(ge=0, max_digits=32, decimal_places=12, allow_inf_nan=False)]

EVENT_EXAMPLE: dict[str, Any] = {
    "subscription_id": "5b7f3a52-8f0e-4d8b-a1a4-0f3f7a0c9d11",
    "metric": "api_calls",
    "quantity": 120,
    "timestamp": "2026-03-14T09:26:53Z",
    "idempotency_key": "req_01HZX8K6Q2",
    "properties": {"endpoint": "/v1/search"},
}


class EventIn(TypedDict):
    """One usage event, as parsed on the hot path (plain dict, ids kept as strings)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    subscription_id: Annotated[str, Field(pattern=UUID_PATTERN)]
    metric: Annotated[str, Field(pattern=METRIC_PATTERN)]
    quantity: Quantity
    timestamp: NotRequired[AwareDatetime | None]
    idempotency_key: Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH, pattern=NO_NUL)]
    properties: NotRequired[dict[str, Any] | None]


_EVENT = TypeAdapter(EventIn)
_JSON: TypeAdapter[Any] = TypeAdapter(Any)


class UsageEventCreate(BaseModel):
    """The documented shape of one event (the same rules as the batch's events)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EVENT_EXAMPLE]})

    subscription_id: uuid.UUID
    metric: str = Field(pattern=METRIC_PATTERN, examples=["api_calls"])
    quantity: Quantity = Field(
        description="Amount of usage, >= 0; a whole number for `count` metrics."
    )
    timestamp: AwareDatetime | None = Field(
        default=None, description="When the usage happened (RFC 3339); now by default."
    )
    idempotency_key: str = Field(
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=NO_NUL,
        description="Unique per event: a resent event with the same key is counted once.",
    )
    properties: dict[str, Any] | None = Field(
        default=None,
        description="Up to 4 KB of JSON; `unique_count` metrics count the distinct values "
        "of the property their plan names.",
    )


class UsageBatchCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"events": [EVENT_EXAMPLE]}]}
    )

    events: list[UsageEventCreate] = Field(min_length=1, max_length=MAX_BATCH)


class Reason(StrEnum):
    """Why an event was rejected (stable codes)."""

    INVALID = "invalid"
    SUBSCRIPTION_NOT_FOUND = "subscription_not_found"
    SUBSCRIPTION_NOT_STARTED = "subscription_not_started"
    SUBSCRIPTION_PAUSED = "subscription_paused"
    SUBSCRIPTION_CANCELED = "subscription_canceled"
    UNKNOWN_METRIC = "unknown_metric"
    METRIC_NOT_PRICED = "metric_not_priced"
    MISSING_PROPERTY = "missing_property"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    PERIOD_NOT_BILLABLE = "period_not_billable"
    LATE_WINDOW_CLOSED = "late_window_closed"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"


class EventStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class EventResult(BaseModel):
    index: int
    status: EventStatus
    reason: Reason | None = None
    message: str | None = None
    field: str | None = None


class UsageBatchRead(BaseModel):
    object: Literal["usage_batch"] = "usage_batch"
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]


class UsageEventRead(BaseModel):
    object: Literal["usage_event"] = "usage_event"
    status: EventStatus
    subscription_id: uuid.UUID
    metric: str
    quantity: DecimalOut
    timestamp: datetime
    idempotency_key: str
    properties: dict[str, Any] | None


class TierRead(BaseModel):
    tier: int
    from_unit: DecimalOut
    up_to: DecimalOut | None
    quantity: DecimalOut
    unit_amount_decimal: DecimalOut
    flat_amount: int
    amount: int


class MetricUsageRead(BaseModel):
    metric: str
    aggregation: Aggregation
    property: str | None
    model: PricingModel
    value: DecimalOut
    events: int
    amount: int
    tiers: list[TierRead]


class UsageSummaryRead(BaseModel):
    object: Literal["usage_summary"] = "usage_summary"
    subscription_id: uuid.UUID
    period_start: date
    period_end: date
    currency: str
    billable: bool = Field(
        description="False for a trial period: its usage is recorded but never billed."
    )
    amount: int
    metrics: list[MetricUsageRead]


# --------------------------------------------------------------------------- parsing


class MalformedBody(DomainError):
    code = "malformed_request"


@dataclass(frozen=True, slots=True)
class Invalid:
    """An event that does not parse: rejected as `invalid` at its index."""

    message: str
    field: str | None


def _invalid(exc: ValidationError) -> Invalid:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"] if field is None else f"{field}: {first['msg']}"
    return Invalid(message=message, field=field)


def _validated(value: Any) -> EventIn | Invalid:
    try:
        event = _EVENT.validate_python(value)
    except ValidationError as exc:
        return _invalid(exc)
    # Ids leave parsing in canonical form (lower case, hyphens), as PostgreSQL prints them.
    event["subscription_id"] = str(uuid.UUID(event["subscription_id"]))
    return event


_FIELDS = frozenset(EventIn.__annotations__)
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_METRIC = re.compile(METRIC_PATTERN)
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)\Z")
_MAX_WHOLE = 10**20


def parse_event(value: Any) -> EventIn | Invalid:
    """One event as parsed JSON: checked, with quantity and timestamp converted.

    The common shape (canonical id, integer quantity, RFC 3339 timestamp) is checked here
    in a few C-level operations; anything else goes to the TypeAdapter, which has the last
    word and the error messages. The fast path accepts only what the adapter accepts, with
    the same values, so a batch is judged the same way whichever path each event takes.
    """
    if type(value) is dict and value.keys() <= _FIELDS:
        sub_id = value.get("subscription_id")
        metric = value.get("metric")
        quantity = value.get("quantity")
        key = value.get("idempotency_key")
        timestamp = value.get("timestamp")
        properties = value.get("properties")
        if (
            type(sub_id) is str
            and _CANONICAL_UUID.match(sub_id)
            and type(metric) is str
            and _METRIC.match(metric)
            and type(quantity) is int
            and 0 <= quantity < _MAX_WHOLE
            and type(key) is str
            and 0 < len(key) <= MAX_KEY_LENGTH
            and "\x00" not in key
            and (properties is None or type(properties) is dict)
        ):
            if timestamp is None:
                value["quantity"] = Decimal(quantity)
                return value  # type: ignore[return-value]
            parsed = _parse_rfc3339(timestamp) if type(timestamp) is str else None
            if parsed is not None:
                value["timestamp"] = parsed
                value["quantity"] = Decimal(quantity)
                return value  # type: ignore[return-value]
    return _validated(value)


def _parse_rfc3339(text: str) -> datetime | None:
    """The fast path's timestamp, or None to let the adapter judge (and explain) it."""
    if not _RFC3339.match(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # 24:00, 23:59:60, Feb 30 ...
        return None


def _document(body: bytes) -> Any:
    with contextlib.suppress(orjson.JSONDecodeError):
        return orjson.loads(body)
    # orjson refuses a few valid documents (integers beyond 64 bits): let pydantic judge.
    try:
        return _JSON.validate_json(body)
    except ValidationError as exc:
        raise MalformedBody("The request body is not valid JSON.") from exc


def parse_event_json(body: bytes) -> EventIn:
    """One event (`POST /v1/usage`); any problem is a 422 for the request."""
    event = parse_event(_document(body))
    if isinstance(event, Invalid):
        raise ValidationFailed(
            event.message, param=event.field or "body", extra={"reason": Reason.INVALID.value}
        )
    return event


def parse_batch(body: bytes) -> list[EventIn | Invalid]:
    """The events of a batch body, each parsed or `Invalid`; a bad envelope raises."""
    data = _document(body)
    if (
        not isinstance(data, dict)
        or set(data) != {"events"}
        or not isinstance(data["events"], list)
    ):
        raise ValidationFailed(
            'The body must be an object with one field, "events": a list of usage events.',
            param="events",
        )
    events: list[Any] = data["events"]
    if not 1 <= len(events) <= MAX_BATCH:
        raise ValidationFailed(
            f"A batch holds 1 to {MAX_BATCH} events; this one has {len(events)}. "
            "Split it into several requests.",
            param="events",
        )
    return [parse_event(event) for event in events]


def properties_json(properties: dict[str, Any] | None) -> str | None:
    """The stored JSON text of `properties` (None when absent); raises ValueError if too big."""
    if properties is None:
        return None
    encoded = orjson.dumps(properties)
    if len(encoded) > MAX_PROPERTIES_BYTES:
        raise ValueError(
            f"properties: {len(encoded)} bytes of JSON, more than {MAX_PROPERTIES_BYTES}"
        )
    if b"\\u0000" in encoded:
        raise ValueError("properties: text must not contain NUL characters")
    return encoded.decode()
