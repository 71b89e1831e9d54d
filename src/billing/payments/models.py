from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base


class PaymentMethod(Base):
    """A verified payment method: the gateway's reference and masked card data only."""

    __tablename__ = "payment_methods"
    __table_args__ = (
        # At most one default per account, enforced by the database.
        Index(
            "uq_payment_methods_one_default",
            "account_id",
            unique=True,
            postgresql_where=text("is_default AND detached_at IS NULL"),
        ),
        Index("ix_payment_methods_account_id_created_at", "account_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    gateway: Mapped[str] = mapped_column(String(32))
    gateway_payment_method_id: Mapped[str] = mapped_column(String(255))
    brand: Mapped[str] = mapped_column(String(32))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(SmallInteger)
    exp_year: Mapped[int] = mapped_column(SmallInteger)
    is_default: Mapped[bool]
    created_at: Mapped[datetime]
    detached_at: Mapped[datetime | None]
