from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base


class Subscription(Base):
    """A subscription to one plan version. Periods are local dates in the account's zone.

    `next_action_at` is the instant the worker must next look at it (a start, a trial end, a
    renewal or a cancellation at period end); the worker's sweep is an index scan on it.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index(
            "ix_subscriptions_due",
            "next_action_at",
            postgresql_where=text("next_action_at IS NOT NULL"),
        ),
        Index("ix_subscriptions_account_id_created_at", "account_id", "created_at"),
        Index("ix_subscriptions_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plans.id"), index=True)
    currency: Mapped[str] = mapped_column(CHAR(3))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    start_date: Mapped[date]
    # Periods advance from cycle_anchor by N intervals; anchor_day keeps a calendar day
    # (e.g. the 31st) through short months.
    cycle_anchor: Mapped[date | None]
    anchor_day: Mapped[int | None] = mapped_column(SmallInteger)
    period_index: Mapped[int] = mapped_column(Integer, default=0)
    current_period_start: Mapped[date | None]
    current_period_end: Mapped[date | None]
    trial_start: Mapped[date | None]
    trial_end: Mapped[date | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    canceled_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # A plan or quantity change applied at the next period boundary: {plan_id, quantity, ...}.
    pending_change: Mapped[dict[str, Any] | None]
    # Usage before this instant of the current period is billed already (an immediate plan
    # change, pause or cancellation billed it); the period's remaining usage starts here.
    usage_from: Mapped[datetime | None]
    pause_at_period_end: Mapped[bool] = mapped_column(default=False, server_default=false())
    paused_at: Mapped[datetime | None]
    resumes_at: Mapped[datetime | None]
    next_action_at: Mapped[datetime | None]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SubscriptionHistory(Base):
    """Every change of state, plan or quantity, with old and new values and who made it."""

    __tablename__ = "subscription_history"
    __table_args__ = (Index("ix_subscription_history_subscription_id_at", "subscription_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    seq: Mapped[int] = mapped_column(BigInteger, Identity())
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscriptions.id"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    old: Mapped[dict[str, Any] | None]
    new: Mapped[dict[str, Any] | None]
