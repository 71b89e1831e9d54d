from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CHAR, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base


class Account(Base):
    """A customer. Soft-deleted accounts keep their rows (invoices refer to them)."""

    __tablename__ = "accounts"
    __table_args__ = (
        Index("ix_accounts_email_lower", text("lower(email)")),
        Index("ix_accounts_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(CHAR(3))
    timezone: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active")
    tax_exempt: Mapped[str] = mapped_column(String(16), default="none")
    tax_ids: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    address: Mapped[dict[str, Any] | None]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    gateway_customer_id: Mapped[str | None] = mapped_column(String(255))
    test_clock_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("test_clocks.id"), index=True
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
