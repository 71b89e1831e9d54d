from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base


class Invoice(Base):
    """An invoice. Once finalized (status other than draft) its amounts and lines are frozen
    by a database trigger; only payment state (status, amount_paid, …) may still change."""

    __tablename__ = "invoices"
    __table_args__ = (
        # Exactly once: one invoice per subscription per billing period (cycle_key).
        UniqueConstraint("subscription_id", "cycle_key", name="uq_invoices_subscription_cycle"),
        CheckConstraint("total = subtotal + tax", name="total"),
        CheckConstraint("amount_due = total - credits_applied", name="amount_due"),
        CheckConstraint("amount_remaining = amount_due - amount_paid", name="amount_remaining"),
        CheckConstraint(
            "subtotal >= 0 AND tax >= 0 AND credits_applied >= 0 AND amount_due >= 0 "
            "AND amount_paid >= 0 AND amount_remaining >= 0",
            name="non_negative",
        ),
        Index("ix_invoices_account_id_created_at", "account_id", "created_at"),
        Index("ix_invoices_created_at_id", "created_at", "id"),
        Index("ix_invoices_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("subscriptions.id"), index=True
    )
    currency: Mapped[str] = mapped_column(CHAR(3))
    status: Mapped[str] = mapped_column(String(16))
    billing_reason: Mapped[str] = mapped_column(String(32))
    cycle_key: Mapped[str | None] = mapped_column(String(40))
    period_start: Mapped[date | None]
    period_end: Mapped[date | None]
    subtotal: Mapped[int] = mapped_column(BigInteger)
    tax: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    credits_applied: Mapped[int] = mapped_column(BigInteger)
    amount_due: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger)
    amount_remaining: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    finalized_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    marked_uncollectible_at: Mapped[datetime | None]
    # How tax was treated ("taxed", "exempt", "reverse_charge", "none") and the note the
    # invoice must carry ("Reverse charge", "Tax exempt"); fixed at finalization.
    tax_status: Mapped[str] = mapped_column(String(16), server_default="none")
    tax_note: Mapped[str | None] = mapped_column(String(200))


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (Index("ix_invoice_lines_invoice_id_position", "invoice_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Deferrable: finalization writes these rows before their invoice (see invoicing.writer).
    invoice_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invoices.id", deferrable=True, initially="IMMEDIATE")
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(500))
    period_start: Mapped[date | None]
    period_end: Mapped[date | None]
    quantity: Mapped[Decimal] = mapped_column(Numeric(38, 12))
    unit_amount: Mapped[int | None] = mapped_column(BigInteger)
    unit_amount_decimal: Mapped[Decimal | None] = mapped_column(Numeric(38, 12))
    amount: Mapped[int] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]]
    tax_amount: Mapped[int] = mapped_column(BigInteger, server_default="0")
    tax_rate_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tax_rates.id"))
    tax_percentage: Mapped[Decimal | None] = mapped_column(Numeric(7, 4))


class InvoiceTax(Base):
    """One row per tax rate on an invoice: what was taxed at it and how much tax it gave.
    Written with the invoice and frozen with it (a trigger, as for lines)."""

    __tablename__ = "invoice_taxes"
    __table_args__ = (Index("ix_invoice_taxes_invoice_id_position", "invoice_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Deferrable: finalization writes these rows before their invoice (see invoicing.writer).
    invoice_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invoices.id", deferrable=True, initially="IMMEDIATE")
    )
    position: Mapped[int] = mapped_column(Integer)
    tax_rate_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tax_rates.id"))
    name: Mapped[str] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(CHAR(2))
    region: Mapped[str | None] = mapped_column(String(100))
    percentage: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    inclusive: Mapped[bool] = mapped_column(Boolean)
    taxable_amount: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)


class InvoiceNumberCounter(Base):
    """The gap-free counter: locked and bumped inside the finalizing transaction."""

    __tablename__ = "invoice_number_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
