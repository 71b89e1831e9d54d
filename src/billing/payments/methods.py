"""Payment method use cases: attach (verified by the gateway), list, set default, detach."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.accounts.queries import get_live_account, lock_account
from billing.clock import Clock
from billing.events.outbox import record_event
from billing.http.errors import DomainError, NotFound
from billing.payments.gateways import (
    CardDetails,
    GatewayError,
    GatewayUnavailable,
    PaymentGateway,
    PaymentMethodDeclined,
)
from billing.payments.models import PaymentMethod
from billing.payments.schemas import PaymentMethodRead


class PaymentMethodRejected(DomainError):
    code = "payment_method_declined"


class GatewayFailed(DomainError):
    code = "gateway_error"


class GatewayDown(DomainError):
    code = "gateway_unavailable"


@asynccontextmanager
async def gateway_errors(param: str) -> AsyncIterator[None]:
    """Turn a gateway's failure into the API's domain error (nothing has been written yet)."""
    try:
        yield
    except PaymentMethodDeclined as exc:
        raise PaymentMethodRejected(
            f"The payment method was declined: {exc.message}",
            param=param,
            extra={"decline_code": exc.code},
        ) from exc
    except GatewayUnavailable as exc:
        raise GatewayDown(
            "The payment gateway did not answer. Retry with the same Idempotency-Key.",
            extra={"gateway_code": exc.code},
        ) from exc
    except GatewayError as exc:
        raise GatewayFailed(
            f"The payment gateway refused the request: {exc.message}",
            extra={"gateway_code": exc.code},
        ) from exc


async def verify_with_gateway(
    gateway: PaymentGateway, *, account: Account, token: str, param: str
) -> tuple[str | None, CardDetails]:
    """Make sure the account has a gateway customer and verify `token` against it.

    Returns the customer id (new or existing) and the verified card. Runs before any database
    write, so a declined card leaves nothing behind.
    """
    async with gateway_errors(param):
        customer_id = account.gateway_customer_id
        if customer_id is None:
            customer_id = await gateway.create_customer(
                account_id=account.id, email=account.email, name=account.name
            )
        card = await gateway.attach_payment_method(token=token, customer_id=customer_id)
    return customer_id, card


def new_payment_method(
    *, account_id: uuid.UUID, gateway: str, card: CardDetails, is_default: bool, clock: Clock
) -> PaymentMethod:
    return PaymentMethod(
        id=uuid.uuid4(),
        account_id=account_id,
        gateway=gateway,
        gateway_payment_method_id=card.gateway_payment_method_id,
        brand=card.brand,
        last4=card.last4,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        is_default=is_default,
        created_at=clock.now(),
        detached_at=None,
    )


async def attach(
    session: AsyncSession,
    *,
    gateway: PaymentGateway,
    account_id: uuid.UUID,
    token: str,
    set_default: bool,
    clock: Clock,
) -> PaymentMethod:
    account = await get_live_account(session, account_id)
    customer_id, card = await verify_with_gateway(
        gateway, account=account, token=token, param="token"
    )
    await session.rollback()  # no transaction held open across the gateway call

    account = await lock_account(session, account_id)  # serializes "first is default"
    if account.gateway_customer_id is None:
        account.gateway_customer_id = customer_id
    current_default = await default_method_of(session, account_id)
    make_default = set_default or current_default is None
    if make_default and current_default is not None:
        current_default.is_default = False
        await session.flush()
    method = new_payment_method(
        account_id=account_id, gateway=gateway.name, card=card, is_default=make_default, clock=clock
    )
    session.add(method)
    _record(session, "payment_method.attached", method, method.created_at)
    await session.commit()
    return method


def _record(session: AsyncSession, type: str, method: PaymentMethod, at: datetime) -> None:
    data = PaymentMethodRead.model_validate(method).model_dump(mode="json")
    record_event(session, type=type, account_id=method.account_id, data=data, at=at)


async def default_method_of(session: AsyncSession, account_id: uuid.UUID) -> PaymentMethod | None:
    """The account's default payment method (attached), if any."""
    return await session.scalar(
        select(PaymentMethod).where(
            PaymentMethod.account_id == account_id,
            PaymentMethod.is_default,
            PaymentMethod.detached_at.is_(None),
        )
    )


async def list_methods(session: AsyncSession, *, account_id: uuid.UUID) -> list[PaymentMethod]:
    await get_live_account(session, account_id)
    rows = await session.scalars(
        select(PaymentMethod)
        .where(PaymentMethod.account_id == account_id, PaymentMethod.detached_at.is_(None))
        .order_by(PaymentMethod.created_at.desc(), PaymentMethod.id.desc())
    )
    return list(rows)


async def _attached(
    session: AsyncSession, account_id: uuid.UUID, method_id: uuid.UUID
) -> PaymentMethod:
    method = await session.scalar(
        select(PaymentMethod).where(
            PaymentMethod.id == method_id,
            PaymentMethod.account_id == account_id,
            PaymentMethod.detached_at.is_(None),
        )
    )
    if method is None:
        raise NotFound(f"No payment method {method_id} on account {account_id}.", param="id")
    return method


async def set_default(
    session: AsyncSession, *, account_id: uuid.UUID, method_id: uuid.UUID, clock: Clock
) -> PaymentMethod:
    await lock_account(session, account_id)
    method = await _attached(session, account_id, method_id)
    if not method.is_default:
        await session.execute(
            update(PaymentMethod)
            .where(PaymentMethod.account_id == account_id, PaymentMethod.is_default)
            .values(is_default=False)
        )
        method.is_default = True
        _record(session, "payment_method.updated", method, clock.now())
    await session.commit()
    await session.refresh(method)
    return method


async def detach(
    session: AsyncSession, *, account_id: uuid.UUID, method_id: uuid.UUID, clock: Clock
) -> PaymentMethod:
    """Detach a method. If it was the default, the most recently added remaining one is."""
    await lock_account(session, account_id)
    method = await _attached(session, account_id, method_id)
    was_default = method.is_default
    method.detached_at = clock.now()
    method.is_default = False
    await session.flush()
    if was_default:
        successor = await session.scalar(
            select(PaymentMethod)
            .where(PaymentMethod.account_id == account_id, PaymentMethod.detached_at.is_(None))
            .order_by(PaymentMethod.created_at.desc(), PaymentMethod.id.desc())
            .limit(1)
        )
        if successor is not None:
            successor.is_default = True
            _record(session, "payment_method.updated", successor, method.detached_at)
    _record(session, "payment_method.detached", method, method.detached_at)
    await session.commit()
    return method
