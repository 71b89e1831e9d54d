from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CHAR, Boolean, CheckConstraint, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base


class TaxRate(Base):
    """A tax rate for a country (and optionally a region), valid on [effective_from,
    effective_to). Rates are history: an invoice keeps the rate it was finalized with, so a
    rate is never deleted; a change is a new rate from its date."""

    __tablename__ = "tax_rates"
    __table_args__ = (
        CheckConstraint("percentage >= 0 AND percentage <= 100", name="percentage"),
        CheckConstraint(
            "effective_to IS NULL OR effective_to > effective_from", name="effective_range"
        ),
        Index("ix_tax_rates_country", "country"),
        Index("ix_tax_rates_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    country: Mapped[str] = mapped_column(CHAR(2))
    region: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    percentage: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    inclusive: Mapped[bool] = mapped_column(Boolean)
    effective_from: Mapped[date]
    effective_to: Mapped[date | None]
    created_at: Mapped[datetime]
