"""Usage tables: the append-only event log, its rollups, and the periods already billed.

`usage_events` is written at volume (tens of thousands of rows a second), so it carries only
what ingestion and the rollup need: the primary key (an identity, so the rollup can walk the
log in order) and the unique idempotency key. No foreign key: a key check per row would cost
a lookup and a row lock on the subscription; ingestion validates subscriptions set-based.

`usage_rollups` folds the log into 15-minute buckets per subscription and metric (sum, count,
max and the latest value); `usage_rollup_values` keeps the distinct values `unique_count`
needs. Every billing period boundary is a local midnight, and every time zone in use today
is a whole number of quarter hours from UTC, so a period is an exact set of buckets.
`usage_rollup_state` says up to which event id the rollups are complete: a summary reads the
rollups plus the raw events after that id.

`usage_billed_periods` records each period whose usage was invoiced, with what was billed, so
late events can be billed on supplemental invoices as the difference.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base

# Quantities: at most 20 integer digits and 12 decimals (validated at ingestion).
QUANTITY = Numeric(32, 12)


class UsageEvent(Base):
    __tablename__ = "usage_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    subscription_id: Mapped[uuid.UUID]
    metric: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(QUANTITY)
    # The event's own time (`timestamp` in the API).
    occurred_at: Mapped[datetime]
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    properties: Mapped[dict[str, Any] | None]
    # The value `unique_count` counts (the metric's property, as text), extracted at ingestion.
    unique_value: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]


class UsageRollup(Base):
    __tablename__ = "usage_rollups"

    subscription_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[Decimal] = mapped_column(Numeric)
    peak: Mapped[Decimal] = mapped_column(QUANTITY)
    # The latest event of the bucket (by timestamp, then by arrival) and its quantity.
    latest_at: Mapped[datetime]
    latest_id: Mapped[int] = mapped_column(BigInteger)
    latest_value: Mapped[Decimal] = mapped_column(QUANTITY)


class UsageRollupValue(Base):
    __tablename__ = "usage_rollup_values"

    subscription_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(Text, primary_key=True)


class UsageRollupState(Base):
    """One row: every event with an id up to `rolled_through` is in the rollups."""

    __tablename__ = "usage_rollup_state"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    rolled_through: Mapped[int] = mapped_column(BigInteger)


class UsageBilledPeriod(Base):
    """A period whose usage was invoiced; late events for it are billed as the difference.

    `billed` maps each metric to the quantity and amount billed so far (the renewal invoice
    plus any supplemental ones). `pending_since` is set when events for the period may not be
    billed yet (late events, or the check right after the renewal); the worker re-prices the
    period once `next_check_at` has come, which is the next local midnight after a
    supplemental invoice: at most one per subscription, period and day.
    """

    __tablename__ = "usage_billed_periods"
    __table_args__ = (
        # A period can be billed in parts (an immediate plan change bills the usage so far).
        UniqueConstraint("subscription_id", "start_at", name="uq_usage_billed_periods_window"),
        Index(
            "ix_usage_billed_periods_due",
            "next_check_at",
            postgresql_where=text("pending_since IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscriptions.id"))
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plans.id"))
    currency: Mapped[str] = mapped_column(CHAR(3))
    period_start: Mapped[date]
    period_end: Mapped[date]
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    billed: Mapped[dict[str, Any]]
    billed_at: Mapped[datetime]
    pending_since: Mapped[datetime | None]
    next_check_at: Mapped[datetime]
    supplementals: Mapped[int] = mapped_column(Integer, default=0)
