from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CHAR, BigInteger, CheckConstraint, ForeignKey, Identity, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base


class CreditEntry(Base):
    """One line of an account's credit ledger, in one currency.

    A `grant` adds credit (it may expire); every other entry draws on (negative) or gives back
    to (positive) one grant, named by `grant_id`. A grant's remaining credit, and the balance,
    are sums over the ledger, never a number kept separately.
    """

    __tablename__ = "credit_entries"
    __table_args__ = (
        CheckConstraint(
            "(kind = 'grant' AND grant_id IS NULL AND amount > 0) OR "
            "(kind <> 'grant' AND grant_id IS NOT NULL)",
            name="grant_shape",
        ),
        Index("ix_credit_entries_account_currency", "account_id", "currency"),
        Index("ix_credit_entries_grant_id", "grant_id"),
        Index("ix_credit_entries_invoice_id", "invoice_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Insertion order: entries of one instant (a test clock step) keep the order they happened.
    seq: Mapped[int] = mapped_column(BigInteger, Identity())
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    currency: Mapped[str] = mapped_column(CHAR(3))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    grant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("credit_entries.id"))
    # Deferrable: finalization writes these rows before their invoice (see invoicing.writer).
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("invoices.id", deferrable=True, initially="IMMEDIATE")
    )
    reason: Mapped[str | None] = mapped_column(String(500))
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
