from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
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


# Statuses a payment is "in flight" in: the charge may have happened; only one per invoice.
IN_FLIGHT = ("pending", "unknown")


class Payment(Base):
    """One attempt to collect an invoice. Written `pending` and committed before the gateway
    is called; its id is the gateway idempotency key, so the attempt can never charge twice."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'unknown')", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount", name="amount_refunded"
        ),
        # No double charge: at most one attempt in flight per invoice, and one per number.
        Index(
            "uq_payments_one_in_flight",
            "invoice_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'unknown')"),
        ),
        UniqueConstraint("invoice_id", "attempt_number", name="uq_payments_invoice_attempt"),
        Index("ix_payments_account_id_created_at", "account_id", "created_at"),
        Index("ix_payments_created_at_id", "created_at", "id"),
        Index(
            "ix_payments_next_retry_at",
            "next_retry_at",
            postgresql_where=text("next_retry_at IS NOT NULL"),
        ),
        Index(
            "ix_payments_in_flight_updated_at",
            "updated_at",
            postgresql_where=text("status IN ('pending', 'unknown')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    payment_method_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payment_methods.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    currency: Mapped[str] = mapped_column(CHAR(3))
    status: Mapped[str] = mapped_column(String(16))
    gateway: Mapped[str] = mapped_column(String(32))
    gateway_transaction_id: Mapped[str | None] = mapped_column(String(255))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    attempt_number: Mapped[int] = mapped_column(Integer)
    # Set on a failed attempt while retries remain; cleared when the retry is made.
    next_retry_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Refund(Base):
    """A full or partial refund of a succeeded payment (idempotency key from its own id)."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'unknown')", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_refunds_payment_id", "payment_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"))
    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    gateway_refund_id: Mapped[str | None] = mapped_column(String(255))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CreditNote(Base):
    """The account's document for money given back on a paid invoice (a refund)."""

    __tablename__ = "credit_notes"
    __table_args__ = (Index("ix_credit_notes_account_id_created_at", "account_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"))
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"))
    refund_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("refunds.id"), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]


class SandboxCharge(Base):
    """The sandbox gateway's own ledger (it plays the card processor), keyed by idempotency key.

    Not our bookkeeping: it is what "the gateway" remembers, so after a crash or a timeout the
    question "did this charge happen?" has an answer, exactly as it has at Stripe.
    """

    __tablename__ = "sandbox_charges"

    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # charge | refund
    transaction_id: Mapped[str] = mapped_column(String(64), unique=True)
    charge_transaction_id: Mapped[str | None] = mapped_column(String(64))  # refunds only
    payment_method: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3))
    status: Mapped[str] = mapped_column(String(16))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class StripeWebhookEvent(Base):
    """Stripe event ids already handled: a replayed webhook changes nothing."""

    __tablename__ = "stripe_webhook_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
