"""Payment use cases for the API: list, read, pay an invoice now, refund."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.clock.service import account_now
from billing.events.outbox import record_event
from billing.http.errors import InvalidState, NotFound, ValidationFailed
from billing.http.pagination import PageParams, paginate
from billing.invoicing.models import Invoice
from billing.payments import charges
from billing.payments.gateways import GatewayError, GatewayUnavailable, PaymentGateway
from billing.payments.methods import GatewayDown, GatewayFailed
from billing.payments.models import CreditNote, Payment, Refund
from billing.payments.schemas import PaymentRead, PaymentStatus, RefundCreate, RefundRead
from billing.settings import Settings, dunning_steps, retry_days


def policy_of(settings: Settings) -> charges.Policy:
    return charges.Policy(
        retry_days=retry_days(settings.payment_retry_days),
        dunning_schedule=dunning_steps(settings.dunning_schedule),
    )


async def list_payments(
    session: AsyncSession,
    *,
    page: PageParams,
    invoice_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    status: PaymentStatus | None,
) -> tuple[list[PaymentRead], bool]:
    stmt = select(Payment)
    if invoice_id is not None:
        stmt = stmt.where(Payment.invoice_id == invoice_id)
    if account_id is not None:
        stmt = stmt.where(Payment.account_id == account_id)
    if status is not None:
        stmt = stmt.where(Payment.status == status.value)
    found, has_more = await paginate(session, stmt, Payment, page)
    return [charges.payment_read(p) for p in found], has_more


async def get_payment(session: AsyncSession, *, payment_id: uuid.UUID) -> PaymentRead:
    payment = await session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"No payment {payment_id}.", param="id")
    return charges.payment_read(payment)


async def pay_invoice(
    session: AsyncSession,
    *,
    gateway: PaymentGateway,
    invoice_id: uuid.UUID,
    payment_method_id: uuid.UUID | None,
    clock: Clock,
    settings: Settings,
) -> PaymentRead:
    """Charge an open invoice now (a manual retry), never while another attempt is in flight."""
    account_id = await session.scalar(select(Invoice.account_id).where(Invoice.id == invoice_id))
    if account_id is None:
        raise NotFound(f"No invoice {invoice_id}.", param="id")
    now = await account_now(session, account_id, clock)
    await session.rollback()
    attempt = await charges.begin_manual(
        session, invoice_id=invoice_id, payment_method_id=payment_method_id, at=now
    )
    result = await charges.charge(gateway, attempt)
    payment = await charges.record_outcome(
        session, payment_id=attempt.payment_id, result=result, at=now, policy=policy_of(settings)
    )
    return charges.payment_read(payment)


async def refund_payment(
    session: AsyncSession,
    *,
    gateway: PaymentGateway,
    payment_id: uuid.UUID,
    data: RefundCreate,
    clock: Clock,
) -> RefundRead:
    """Refund all or part of a succeeded payment; the invoice stays paid, a credit note records it.

    The refunded amount is reserved on the payment (and the refund written `pending`) before
    the gateway is called, so concurrent refunds can never exceed the payment.
    """
    payment = await session.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise NotFound(f"No payment {payment_id}.", param="id")
    if payment.status != "succeeded" or payment.gateway_transaction_id is None:
        raise InvalidState(
            f"Only succeeded payments can be refunded; this one is {payment.status}.",
            extra={"current_status": payment.status},
        )
    left = payment.amount - payment.amount_refunded
    amount = left if data.amount is None else data.amount
    if amount <= 0 or amount > left:
        raise ValidationFailed(
            f"The refund must be between 1 and {left}, what is left of this payment.",
            param="amount",
        )
    now = await account_now(session, payment.account_id, clock)
    refund_id = uuid.uuid4()
    refund = Refund(
        id=refund_id,
        payment_id=payment.id,
        invoice_id=payment.invoice_id,
        account_id=payment.account_id,
        amount=amount,
        currency=payment.currency,
        status="pending",
        reason=data.reason,
        gateway_refund_id=None,
        failure_code=None,
        idempotency_key=f"refund_{refund_id}",
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    payment.amount_refunded += amount
    transaction_id = payment.gateway_transaction_id
    await session.commit()

    try:
        result = await gateway.refund(
            transaction_id=transaction_id,
            amount=amount,
            currency=refund.currency,
            idempotency_key=refund.idempotency_key,
        )
    except GatewayUnavailable as exc:
        await _set_refund_status(session, refund_id, "unknown", now)
        raise GatewayDown(
            f"The payment gateway did not answer; refund {refund_id} is recorded as unknown.",
            extra={"gateway_code": exc.code, "refund_id": str(refund_id)},
        ) from exc
    except GatewayError as exc:
        await _release(session, refund_id, exc.code, now)
        raise GatewayFailed(
            f"The payment gateway refused the refund: {exc.message}",
            extra={"gateway_code": exc.code},
        ) from exc
    if result.status == "failed":
        await _release(session, refund_id, result.failure_code or "refund_failed", now)
        raise GatewayFailed("The payment gateway declined the refund.")

    refund = await session.get_one(Refund, refund_id, with_for_update=True)
    payment = await session.get_one(Payment, refund.payment_id)
    refund.status = "succeeded"
    refund.gateway_refund_id = result.transaction_id
    refund.updated_at = now
    session.add(
        CreditNote(
            id=uuid.uuid4(),
            account_id=refund.account_id,
            invoice_id=refund.invoice_id,
            payment_id=refund.payment_id,
            refund_id=refund.id,
            amount=refund.amount,
            currency=refund.currency,
            reason=refund.reason,
            created_at=now,
        )
    )
    await session.flush()
    read = RefundRead.model_validate(refund)
    data_json = charges.payment_read(payment).model_dump(mode="json")
    data_json["refund"] = read.model_dump(mode="json")
    record_event(
        session, type="payment.refunded", account_id=refund.account_id, data=data_json, at=now
    )
    await session.commit()
    return read


async def _set_refund_status(
    session: AsyncSession, refund_id: uuid.UUID, status: str, at: datetime
) -> None:
    refund = await session.get_one(Refund, refund_id, with_for_update=True)
    refund.status = status
    refund.updated_at = at
    await session.commit()


async def _release(session: AsyncSession, refund_id: uuid.UUID, code: str, at: datetime) -> None:
    """A refund the gateway refused: mark it failed and give the reserved amount back."""
    refund = await session.get_one(Refund, refund_id, with_for_update=True)
    payment = await session.get_one(Payment, refund.payment_id, with_for_update=True)
    refund.status = "failed"
    refund.failure_code = code
    refund.updated_at = at
    payment.amount_refunded -= refund.amount
    await session.commit()
