"""API shapes of the plan catalog, and the rules a price list must follow.

Structural checks (types, ranges, patterns) live on the models, so they come back as a
normal request validation error. Rules that span fields or that `core.pricing` already
knows (tier order, fields per pricing model) are in `plan_errors`, which the service runs
with the full dotted path of every offending field.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    field_validator,
)
from pydantic_core import PydanticCustomError

from billing.catalog.models import Aggregation, metered_price_from_document
from billing.core.periods import Interval
from billing.core.pricing import MeteredPrice, PricingModel, price_errors
from billing.http.types import Currency, Metadata, plain_decimal

CODE_PATTERN = r"^[a-z0-9][a-z0-9_\-.]*$"
METRIC_PATTERN = r"^[a-z][a-z0-9_.\-]{0,63}$"
# A ceiling far above any real price that keeps amount x quantity inside a bigint later.
MAX_AMOUNT = 999_999_999_999
# A billing period is at most three years long.
MAX_INTERVAL_COUNT: dict[Interval, int] = {
    Interval.DAY: 1095,
    Interval.WEEK: 156,
    Interval.MONTH: 36,
    Interval.YEAR: 3,
}
MAX_PRICES = 100
MAX_METERED = 50
MAX_TIERS = 100


# Decimals arrive as JSON strings or numbers and leave as canonical strings. Size limits keep
# a value like "1e999999" from being accepted (and expanded to a million digits).
DecimalValue = Annotated[
    Decimal,
    Field(max_digits=30, decimal_places=12),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
]
# Minor units; the sign of tier and package amounts is checked by core.pricing.
MinorAmount = Annotated[StrictInt, Field(le=MAX_AMOUNT)]


def _code(value: str) -> str:
    # GET /v1/plans/{ref} reads a UUID as an id, so a code must never look like one.
    try:
        uuid.UUID(value)
    except ValueError:
        return value
    raise ValueError("must not be a UUID (plan ids are UUIDs)")


PlanCode = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=CODE_PATTERN, examples=["pro"]),
    AfterValidator(_code),
]
PlanName = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=2000)]
IntervalCount = Annotated[int, Field(ge=1, le=365)]
TrialDays = Annotated[int, Field(ge=0, le=730)]


# --------------------------------------------------------------------------- requests


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    up_to: DecimalValue | None = Field(
        description="Inclusive upper bound of the tier in units; null on the last tier only."
    )
    unit_amount_decimal: DecimalValue = Field(
        default=Decimal(0),
        description="Price per unit in MINOR units, as a decimal string ('0.04' = $0.0004).",
    )
    flat_amount: MinorAmount = Field(
        default=0, description="Flat fee in minor units, charged once the tier is reached."
    )


class MeteredComponentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str = Field(pattern=METRIC_PATTERN, examples=["api_calls"])
    aggregation: Aggregation = Aggregation.SUM
    model: PricingModel
    tiers: list[TierIn] | None = Field(
        default=None, max_length=MAX_TIERS, description="graduated and volume pricing only."
    )
    unit_amount_decimal: DecimalValue | None = Field(
        default=None, description="per_unit pricing only: price per unit in minor units."
    )
    package_size: DecimalValue | None = Field(
        default=None, description="package pricing only: units per package."
    )
    package_amount: MinorAmount | None = Field(
        default=None, description="package pricing only: price per started package."
    )
    free_units: DecimalValue = Field(
        default=Decimal(0), description="Units free of charge each period, before any model."
    )
    property: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="unique_count only: the event property whose distinct values are counted.",
    )

    @field_validator("tiers")
    @classmethod
    def _no_empty_tiers(cls, value: list[TierIn] | None) -> list[TierIn] | None:
        # [] and null mean the same (no tiers); store one form.
        return value or None

    def to_metered_price(self) -> MeteredPrice:
        """The pure pricing object, so `core.pricing` can judge (and later price) it."""
        return metered_price_from_document(self.model_dump())


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: Currency
    unit_amount: MinorAmount = Field(
        ge=0, description="Recurring amount per seat and period, in minor units (2900 = $29.00)."
    )
    metered: list[MeteredComponentIn] = Field(default_factory=list, max_length=MAX_METERED)


PLAN_EXAMPLE_METERED: dict[str, Any] = {
    "code": "pro",
    "name": "Pro",
    "description": "Pro plan: $29 per seat and month, plus API calls beyond 1,000.",
    "interval": "month",
    "interval_count": 1,
    "trial_days": 14,
    "prices": [
        {
            "currency": "USD",
            "unit_amount": 2900,
            "metered": [
                {
                    "metric": "api_calls",
                    "aggregation": "sum",
                    "model": "graduated",
                    "tiers": [
                        {"up_to": "1000", "unit_amount_decimal": "0", "flat_amount": 0},
                        {"up_to": None, "unit_amount_decimal": "0.04", "flat_amount": 0},
                    ],
                }
            ],
        },
        {"currency": "EUR", "unit_amount": 2700},
    ],
    "metadata": {"tier": "growth"},
}
PLAN_EXAMPLE_ANNUAL: dict[str, Any] = {
    "code": "pro-annual",
    "name": "Pro (annual)",
    "interval": "year",
    "prices": [{"currency": "USD", "unit_amount": 29000}],
}


class PlanCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [PLAN_EXAMPLE_METERED, PLAN_EXAMPLE_ANNUAL]},
    )

    code: PlanCode = Field(description="Stable identifier shared by all versions of the plan.")
    name: PlanName
    description: Description | None = None
    interval: Interval
    interval_count: IntervalCount = 1
    trial_days: TrialDays = 0
    active: bool = True
    prices: list[PriceIn] = Field(
        min_length=1, max_length=MAX_PRICES, description="One price per currency."
    )
    metadata: Metadata = Field(default_factory=dict)


class PlanVersionCreate(BaseModel):
    """A new version: every field optional; omitted ones are copied from the latest version."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"prices": [{"currency": "USD", "unit_amount": 3900}]},
                {"trial_days": 30},
            ]
        },
    )

    name: PlanName | None = None
    description: Description | None = None
    interval: Interval | None = None
    interval_count: IntervalCount | None = None
    trial_days: TrialDays | None = None
    active: bool | None = Field(
        default=None, description="Defaults to true: a new version is made to be sold."
    )
    prices: list[PriceIn] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PRICES,
        description="Replaces the whole price list when given.",
    )
    metadata: Metadata | None = None

    @field_validator(
        "name", "interval", "interval_count", "trial_days", "active", "prices", "metadata"
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # null for a required attribute is a mistake, not "copy it"; omit the field instead.
        if value is None:
            raise ValueError("may not be null (omit the field to keep the current value)")
        return value


def _immutable(value: Any) -> Any:
    raise PydanticCustomError(
        "immutable_field",
        "plan versions are immutable: only `active` can be changed in place; "
        "to change anything else, POST /v1/plans/<code>/versions to create a new version",
    )


class PlanUpdate(BaseModel):
    """The one in-place change a version allows: (de)activating it."""

    # Unknown fields are rejected (as extra="forbid" would) with an error that names the
    # field and tells the client how to change it instead.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"active": False}], "additionalProperties": False},
    )
    __pydantic_extra__: dict[str, Annotated[Any, AfterValidator(_immutable)]] = Field(init=False)

    active: bool


# --------------------------------------------------------------------------- responses


class TierRead(BaseModel):
    up_to: DecimalValue | None
    unit_amount_decimal: DecimalValue
    flat_amount: int


class MeteredComponentRead(BaseModel):
    metric: str
    aggregation: Aggregation
    model: PricingModel
    tiers: list[TierRead] | None
    unit_amount_decimal: DecimalValue | None
    package_size: DecimalValue | None
    package_amount: int | None
    free_units: DecimalValue
    property: str | None


class PriceRead(BaseModel):
    currency: str
    unit_amount: int
    metered: list[MeteredComponentRead]


class PlanRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: str = "plan"
    id: uuid.UUID
    code: str
    version: int
    name: str
    description: str | None
    interval: Interval
    interval_count: int
    trial_days: int
    active: bool
    prices: list[PriceRead]
    # The ORM attribute is `metadata_` (SQLAlchemy owns `metadata`).
    metadata: dict[str, str] = Field(validation_alias=AliasChoices("metadata_", "metadata"))
    created_at: datetime


# --------------------------------------------------------------------------- rules


def interval_errors(interval: Interval, interval_count: int) -> list[tuple[str, str]]:
    """A billing period may be at most three years long."""
    limit = MAX_INTERVAL_COUNT[interval]
    if interval_count > limit:
        return [
            (
                "interval_count",
                f"a billing period may be at most 3 years: at most {limit} for {interval}",
            )
        ]
    return []


def price_list_errors(prices: Sequence[PriceIn]) -> list[tuple[str, str]]:
    """Rules over a plan's prices; `(dotted field path, message)` pairs, empty if valid."""
    errors: list[tuple[str, str]] = []
    currencies: set[str] = set()
    for i, price in enumerate(prices):
        at = f"prices.{i}"
        if price.currency in currencies:
            errors.append(
                (
                    f"{at}.currency",
                    f"a plan has one price per currency: {price.currency} is repeated",
                )
            )
        currencies.add(price.currency)
        metrics: set[str] = set()
        for j, component in enumerate(price.metered):
            here = f"{at}.metered.{j}"
            if component.metric in metrics:
                errors.append((f"{here}.metric", f"metric {component.metric!r} is repeated"))
            metrics.add(component.metric)
            if component.aggregation is Aggregation.UNIQUE_COUNT and component.property is None:
                errors.append((f"{here}.property", "is required for unique_count aggregation"))
            elif (
                component.aggregation is not Aggregation.UNIQUE_COUNT
                and component.property is not None
            ):
                errors.append((f"{here}.property", "is only allowed with unique_count aggregation"))
            errors.extend(
                (f"{here}.{path}", message)
                for path, message in price_errors(component.to_metered_price())
            )
    return errors


def plan_errors(
    *, interval: Interval, interval_count: int, prices: Sequence[PriceIn]
) -> list[tuple[str, str]]:
    """Every rule a plan version must satisfy beyond its fields' own types and ranges."""
    return interval_errors(interval, interval_count) + price_list_errors(prices)
