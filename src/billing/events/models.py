"""Events: the transactional outbox every state change writes to."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Identity, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base


class Event(Base):
    """One row per state change, written in the same transaction as the change.

    A trigger (migration 0006) fans every inserted event out to the webhook endpoints that
    subscribe to its type, in the same transaction, and notifies the workers.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_account_id_created_at", "account_id", "created_at"),
        Index("ix_events_type_created_at", "type", "created_at"),
        Index("ix_events_created_at", "created_at"),
        Index("ix_events_recorded_at", "recorded_at"),
        # Partial: almost every event has no key, and those cost the index nothing.
        Index(
            "uq_events_dedup_key",
            "dedup_key",
            unique=True,
            postgresql_where=text("dedup_key IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Commit order is not id order; `seq` gives deliveries a stable order per stream.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[uuid.UUID | None]
    # json, not jsonb: the payload is written once and only ever read whole, never searched
    # inside; PostgreSQL checks json's syntax but does not convert it, which costs half as
    # much on the hot path (three events per renewal), and keeps the fields in their order.
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # When the change happened, on the account's clock (a test clock's time for its accounts).
    created_at: Mapped[datetime]
    # When the row was written, on the database's clock: what retention counts from.
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Set by sweeps that derive events from time (a trial ending soon): emitted once per key.
    dedup_key: Mapped[str | None] = mapped_column(String(200))
