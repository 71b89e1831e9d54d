"""The plan catalog table and the typed, pure view of a plan's prices.

One row per plan VERSION. A version's prices are one immutable JSON document (validated by
the API on the way in); `Plan.price_for` turns it into `PlanPrice` for the billing engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.core.periods import Interval
from billing.core.pricing import MeteredPrice, PricingModel, Tier
from billing.db.base import Base

__all__ = [
    "Aggregation",
    "MeteredComponent",
    "Plan",
    "PlanPrice",
    "metered_price_from_document",
    "plan_price_from_document",
    "plan_price_in",
]


class Aggregation(StrEnum):
    """How a period's usage events of one metric become one quantity."""

    SUM = "sum"
    COUNT = "count"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"


@dataclass(frozen=True, slots=True)
class MeteredComponent:
    """One usage metric of a price: how to aggregate its events and how to price the total."""

    metric: str
    aggregation: Aggregation
    property: str | None
    price: MeteredPrice


@dataclass(frozen=True, slots=True)
class PlanPrice:
    """A plan's price in one currency: per-seat recurring amount plus metered components."""

    currency: str
    unit_amount: int
    metered: dict[str, MeteredComponent]


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def metered_price_from_document(component: Mapping[str, Any]) -> MeteredPrice:
    """Build a `MeteredPrice` from one metered component's pricing fields (stored JSON, or
    the validated request's `model_dump()`)."""
    tiers = tuple(
        Tier(
            up_to=_decimal(tier["up_to"]),
            unit_amount_decimal=Decimal(str(tier["unit_amount_decimal"])),
            flat_amount=int(tier["flat_amount"]),
        )
        for tier in component.get("tiers") or ()
    )
    package_amount = component.get("package_amount")
    return MeteredPrice(
        model=PricingModel(component["model"]),
        unit_amount_decimal=_decimal(component.get("unit_amount_decimal")),
        tiers=tiers,
        package_size=_decimal(component.get("package_size")),
        package_amount=None if package_amount is None else int(package_amount),
        free_units=_decimal(component.get("free_units")) or Decimal(0),
    )


def plan_price_from_document(document: Mapping[str, Any]) -> PlanPrice:
    """Build a `PlanPrice` from one stored price (the JSON the API validated and wrote)."""
    metered: dict[str, MeteredComponent] = {}
    for component in document.get("metered") or ():
        metered[component["metric"]] = MeteredComponent(
            metric=component["metric"],
            aggregation=Aggregation(component["aggregation"]),
            property=component.get("property"),
            price=metered_price_from_document(component),
        )
    return PlanPrice(
        currency=document["currency"], unit_amount=int(document["unit_amount"]), metered=metered
    )


def plan_price_in(prices: Iterable[Mapping[str, Any]], currency: str) -> PlanPrice | None:
    """The price in exactly `currency` among stored price documents, or None if none is."""
    for document in prices:
        if document["currency"] == currency:
            return plan_price_from_document(document)
    return None


class Plan(Base):
    """One immutable version of a plan; only `active` ever changes in place."""

    __tablename__ = "plans"
    __table_args__ = (
        # Also the index for "latest version of a code": PostgreSQL scans it backwards for
        # ORDER BY version DESC, so a separate (code, version DESC) index would duplicate it.
        UniqueConstraint("code", "version", name="uq_plans_code_version"),
        Index("ix_plans_created_at_id", "created_at", "id"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("interval IN ('day', 'week', 'month', 'year')", name="interval_unit"),
        CheckConstraint("interval_count BETWEEN 1 AND 365", name="interval_count_range"),
        CheckConstraint("trial_days BETWEEN 0 AND 730", name="trial_days_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    interval: Mapped[str] = mapped_column(String(8))
    interval_count: Mapped[int] = mapped_column(Integer)
    trial_days: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    prices: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # `metadata` is taken by SQLAlchemy's declarative base, hence the trailing underscore.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]

    @property
    def interval_unit(self) -> Interval:
        """The billing interval as the enum `core.periods` works with."""
        return Interval(self.interval)

    @property
    def currencies(self) -> list[str]:
        """The currencies this version has a price in, in the order they were given."""
        return [str(price["currency"]) for price in self.prices]

    def price_for(self, currency: str) -> PlanPrice | None:
        """This version's price in `currency` (ISO 4217, any case), or None if it has none."""
        return plan_price_in(self.prices, currency.upper())
