from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CHAR, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base


class DunningCase(Base):
    """An account's period of non-payment: opened by the first failed payment of an invoice,
    closed when no invoice with a failed payment is left unpaid. One open case per account."""

    __tablename__ = "dunning_cases"
    __table_args__ = (
        Index(
            "uq_dunning_cases_one_open",
            "account_id",
            unique=True,
            postgresql_where=text("closed_at IS NULL"),
        ),
        Index(
            "ix_dunning_cases_next_step_at",
            "next_step_at",
            postgresql_where=text("closed_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    # Days overdue count from here: the due date of the oldest unpaid invoice.
    anchor_at: Mapped[datetime]
    next_step_at: Mapped[datetime | None]
    last_step: Mapped[str | None] = mapped_column(String(16))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class DunningStep(Base):
    """A dunning step taken (once per case and step), with what the account owed then."""

    __tablename__ = "dunning_steps"
    __table_args__ = (
        UniqueConstraint("case_id", "step", name="uq_dunning_steps_case_step"),
        Index("ix_dunning_steps_account_id_created_at", "account_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dunning_cases.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    step: Mapped[str] = mapped_column(String(16))
    days_overdue: Mapped[int] = mapped_column(Integer)
    invoice_ids: Mapped[list[Any]] = mapped_column(JSONB)
    amount_due: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3))
    created_at: Mapped[datetime]
