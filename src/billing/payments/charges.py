"""Charging invoices without ever charging twice.

An attempt has three steps, and no transaction is open while the gateway is called:

1. ``begin``: under the invoice's row lock, write the payment ``pending`` and commit. Its id
   gives the gateway idempotency key; a partial unique index allows one payment in flight
   (``pending`` or ``unknown``) per invoice, so a second attempt cannot even be written.
2. ``charge``: call the gateway with that key. A timeout is not a failure: the outcome is
   ``unknown`` (None here).
3. ``record_outcome``: in a second transaction, under the invoice lock, write the outcome,
   pay the invoice or schedule the next retry, open or settle dunning, and write the events.
   A payment no longer in flight (a webhook or the reconciler got there first) is left alone.

A crash between 1 and 3 leaves a ``pending`` row; a timeout leaves an ``unknown`` one. Either
is reconciled once older than PAYMENT_RECONCILE_AFTER_SECONDS by asking the gateway what
happened under the payment's idempotency key, never by charging again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.accounts.queries import clock_filter
from billing.dunning import service as dunning
from billing.events.outbox import record_event
from billing.http.errors import Conflict, InvalidState, NotFound
from billing.invoicing.models import Invoice
from billing.invoicing.service import lock_invoice, record_payment
from billing.observability.metrics import PAYMENT_AMOUNT, PAYMENTS_ATTEMPTED
from billing.payments.gateways import (
    ChargeResult,
    GatewayError,
    GatewayUnavailable,
    PaymentGateway,
)
from billing.payments.models import IN_FLIGHT, Payment, PaymentMethod
from billing.payments.schemas import PaymentRead


class PaymentInProgress(Conflict):
    code = "conflict"


@dataclass(frozen=True, slots=True)
class Policy:
    retry_days: tuple[int, ...]
    dunning_schedule: dunning.Schedule


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the gateway call needs, detached from any session."""

    payment_id: uuid.UUID
    invoice_id: uuid.UUID
    account_id: uuid.UUID
    amount: int
    currency: str
    customer_id: str | None
    gateway_payment_method_id: str
    idempotency_key: str


def idempotency_key_for(payment_id: uuid.UUID) -> str:
    return f"payment_{payment_id}"


def payment_read(payment: Payment) -> PaymentRead:
    return PaymentRead.model_validate(payment)


async def _clear_retries(session: AsyncSession, invoice_id: uuid.UUID) -> None:
    """End the invoice's retry schedule: no payment of it waits for a retry any more."""
    await session.execute(
        update(Payment)
        .where(Payment.invoice_id == invoice_id, Payment.next_retry_at.is_not(None))
        .values(next_retry_at=None)
    )


async def _begin(
    session: AsyncSession,
    *,
    invoice: Invoice,
    method: PaymentMethod,
    customer_id: str | None,
    at: datetime,
) -> Attempt:
    """Write a pending payment for a locked, payable invoice (the caller commits)."""
    in_flight = await session.scalar(
        select(Payment.id).where(Payment.invoice_id == invoice.id, Payment.status.in_(IN_FLIGHT))
    )
    if in_flight is not None:
        raise PaymentInProgress(
            f"Payment {in_flight} of this invoice is still in progress; wait for its outcome.",
            extra={"payment_id": str(in_flight)},
        )
    last = await session.scalar(
        select(func.max(Payment.attempt_number)).where(Payment.invoice_id == invoice.id)
    )
    await _clear_retries(session, invoice.id)
    payment_id = uuid.uuid4()
    payment = Payment(
        id=payment_id,
        invoice_id=invoice.id,
        account_id=invoice.account_id,
        payment_method_id=method.id,
        amount=invoice.amount_remaining,
        amount_refunded=0,
        currency=invoice.currency,
        status="pending",
        gateway=method.gateway,
        gateway_transaction_id=None,
        failure_code=None,
        failure_message=None,
        idempotency_key=idempotency_key_for(payment_id),
        attempt_number=(last or 0) + 1,
        next_retry_at=None,
        created_at=at,
        updated_at=at,
    )
    session.add(payment)
    await session.flush()
    return Attempt(
        payment_id=payment_id,
        invoice_id=invoice.id,
        account_id=invoice.account_id,
        amount=payment.amount,
        currency=payment.currency,
        customer_id=customer_id,
        gateway_payment_method_id=method.gateway_payment_method_id,
        idempotency_key=payment.idempotency_key,
    )


async def begin_manual(
    session: AsyncSession,
    *,
    invoice_id: uuid.UUID,
    payment_method_id: uuid.UUID | None,
    at: datetime,
) -> Attempt:
    """Step 1 for `POST /v1/invoices/{id}/pay`: the pending payment, committed."""
    invoice = await lock_invoice(session, invoice_id)
    if invoice.status != "open" or invoice.amount_remaining <= 0:
        raise InvalidState(
            f"Only open invoices with an amount remaining can be paid; this one is "
            f"{invoice.status}.",
            extra={"current_status": invoice.status},
        )
    account = await session.get_one(Account, invoice.account_id)
    stmt = select(PaymentMethod).where(
        PaymentMethod.account_id == invoice.account_id, PaymentMethod.detached_at.is_(None)
    )
    if payment_method_id is not None:
        method = await session.scalar(stmt.where(PaymentMethod.id == payment_method_id))
        if method is None:
            raise NotFound(
                f"No payment method {payment_method_id} on the invoice's account.",
                param="payment_method_id",
            )
    else:
        method = await session.scalar(stmt.where(PaymentMethod.is_default))
        if method is None:
            raise InvalidState(
                "The account has no payment method; attach one or pass payment_method_id.",
                param="payment_method_id",
            )
    try:
        attempt = await _begin(
            session,
            invoice=invoice,
            method=method,
            customer_id=account.gateway_customer_id,
            at=at,
        )
        await session.commit()
    except IntegrityError as exc:  # a concurrent attempt won the in-flight slot
        await session.rollback()
        raise PaymentInProgress(
            "Another payment of this invoice is in progress; wait for its outcome."
        ) from exc
    return attempt


async def charge(gateway: PaymentGateway, attempt: Attempt) -> ChargeResult | None:
    """Step 2: ask the gateway. None means the outcome is unknown (reconciled later)."""
    try:
        return await gateway.charge(
            amount=attempt.amount,
            currency=attempt.currency,
            customer_id=attempt.customer_id,
            payment_method_id=attempt.gateway_payment_method_id,
            idempotency_key=attempt.idempotency_key,
            metadata={
                "payment_id": str(attempt.payment_id),
                "invoice_id": str(attempt.invoice_id),
                "account_id": str(attempt.account_id),
            },
        )
    except GatewayUnavailable:
        return None
    except GatewayError as exc:
        return ChargeResult("failed", None, exc.code, exc.message)


async def _next_retry_at(
    session: AsyncSession, invoice_id: uuid.UUID, at: datetime, days: Sequence[int]
) -> datetime | None:
    first_failure = await session.scalar(
        select(func.min(Payment.updated_at)).where(
            Payment.invoice_id == invoice_id, Payment.status == "failed"
        )
    )
    if first_failure is None:
        return None
    for day in days:
        when = first_failure + timedelta(days=day)
        if when > at:
            return when
    return None


async def record_outcome(
    session: AsyncSession,
    *,
    payment_id: uuid.UUID,
    result: ChargeResult | None,
    at: datetime,
    policy: Policy,
) -> Payment:
    """Step 3: write what the gateway said, and what follows from it; commit."""
    invoice_id = await session.scalar(select(Payment.invoice_id).where(Payment.id == payment_id))
    if invoice_id is None:
        raise NotFound(f"No payment {payment_id}.", param="id")
    invoice = await lock_invoice(session, invoice_id)
    payment = await session.get_one(Payment, payment_id, with_for_update=True)
    if payment.status not in IN_FLIGHT:
        await session.commit()
        return payment
    payment.updated_at = at
    if result is None:
        if payment.status == "pending":
            payment.status = "unknown"
            _count(payment)
        await session.commit()
        return payment

    payment.status = result.status
    payment.gateway_transaction_id = result.transaction_id or payment.gateway_transaction_id
    payment.failure_code = result.failure_code
    payment.failure_message = result.failure_message
    await session.flush()
    if result.status == "succeeded":
        if invoice.status == "open":
            await record_payment(session, invoice=invoice, amount=payment.amount, at=at)
        _event(session, payment, "payment.succeeded", at)
        await dunning.settle(session, account_id=payment.account_id, at=at)
    else:
        if invoice.status == "open":
            payment.next_retry_at = await _next_retry_at(session, invoice.id, at, policy.retry_days)
            await dunning.open_case(
                session,
                account_id=payment.account_id,
                anchor_at=invoice.due_at or at,
                at=at,
                schedule=policy.dunning_schedule,
            )
        _event(session, payment, "payment.failed", at)
    _count(payment)
    await session.commit()
    return payment


def _count(payment: Payment) -> None:
    PAYMENTS_ATTEMPTED.labels(payment.status).inc()
    PAYMENT_AMOUNT.labels(payment.currency, payment.status).inc(payment.amount)


def _event(session: AsyncSession, payment: Payment, type: str, at: datetime) -> None:
    data: dict[str, Any] = payment_read(payment).model_dump(mode="json")
    record_event(session, type=type, account_id=payment.account_id, data=data, at=at)


# --------------------------------------------------------------------------- worker claims


def _payable() -> list[ColumnElement[bool]]:
    return [Invoice.status == "open", Invoice.amount_remaining > 0]


_DEFAULT_METHOD = (
    (PaymentMethod.account_id == Invoice.account_id)
    & PaymentMethod.is_default
    & PaymentMethod.detached_at.is_(None)
)


async def _claim(session: AsyncSession, stmt: Any, *, at: datetime) -> list[Attempt]:
    rows = (await session.execute(stmt)).all()
    attempts = []
    for invoice, method, customer_id in rows:
        if method is None or invoice.status != "open" or invoice.amount_remaining <= 0:
            # Nothing to retry with (or nothing to collect): the schedule ends here.
            await _clear_retries(session, invoice.id)
            continue
        try:
            async with session.begin_nested():
                attempts.append(
                    await _begin(
                        session, invoice=invoice, method=method, customer_id=customer_id, at=at
                    )
                )
        except PaymentInProgress:
            # A manual attempt is in flight; its outcome schedules what comes next.
            await _clear_retries(session, invoice.id)
    await session.commit()
    return attempts


async def claim_first_attempts(
    session: AsyncSession, *, as_of: datetime, test_clock_id: uuid.UUID | None, limit: int
) -> list[Attempt]:
    """Open invoices never charged whose account has a default method: pending payments."""
    stmt = (
        select(Invoice, PaymentMethod, Account.gateway_customer_id)
        .join(Account, Account.id == Invoice.account_id)
        .join(PaymentMethod, _DEFAULT_METHOD)
        .where(
            *_payable(),
            Invoice.finalized_at <= as_of,
            ~exists().where(Payment.invoice_id == Invoice.id),
            clock_filter(test_clock_id),
        )
        .order_by(Invoice.finalized_at)
        .limit(limit)
        .with_for_update(of=Invoice, skip_locked=True)
    )
    return await _claim(session, stmt, at=as_of)


def _retry_due(as_of: datetime) -> ColumnElement[bool]:
    return exists().where(Payment.invoice_id == Invoice.id, Payment.next_retry_at <= as_of)


async def claim_retries(
    session: AsyncSession, *, as_of: datetime, test_clock_id: uuid.UUID | None, limit: int
) -> list[Attempt]:
    """Invoices whose failed payment's retry is due: the next attempt, with today's default."""
    stmt = (
        select(Invoice, PaymentMethod, Account.gateway_customer_id)
        .join(Account, Account.id == Invoice.account_id)
        .outerjoin(PaymentMethod, _DEFAULT_METHOD)
        .where(_retry_due(as_of), clock_filter(test_clock_id))
        .order_by(Invoice.due_at)
        .limit(limit)
        .with_for_update(of=Invoice, skip_locked=True)
    )
    return await _claim(session, stmt, at=as_of)


@dataclass(frozen=True, slots=True)
class Stale:
    payment_id: uuid.UUID
    idempotency_key: str
    transaction_id: str | None


async def claim_stale(
    session: AsyncSession,
    *,
    as_of: datetime,
    test_clock_id: uuid.UUID | None,
    limit: int,
    older_than: timedelta,
) -> list[Stale]:
    """In-flight payments untouched for `older_than`: leased (updated_at = now) for a check."""
    rows = list(
        await session.scalars(
            select(Payment)
            .join(Account, Account.id == Payment.account_id)
            .where(
                Payment.status.in_(IN_FLIGHT),
                Payment.updated_at <= as_of - older_than,
                clock_filter(test_clock_id),
            )
            .order_by(Payment.updated_at)
            .limit(limit)
            .with_for_update(of=Payment, skip_locked=True)
        )
    )
    stale = [Stale(p.id, p.idempotency_key, p.gateway_transaction_id) for p in rows]
    for payment in rows:
        payment.updated_at = as_of
    await session.commit()
    return stale


async def reconcile(gateway: PaymentGateway, stale: Stale) -> ChargeResult | None:
    """Ask the gateway what became of a charge; None while it cannot tell."""
    try:
        found = await gateway.retrieve_charge(
            idempotency_key=stale.idempotency_key, transaction_id=stale.transaction_id
        )
    except GatewayUnavailable:
        return None
    if found is None:
        return ChargeResult(
            "failed", None, "not_processed", "The gateway never received this charge."
        )
    return found
