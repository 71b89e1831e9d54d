from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from billing.accounts.router import AccountsRead, AccountsWrite
from billing.deps import ClockDep, GatewayDep, SessionDep
from billing.http.pagination import ListResponse
from billing.payments import methods
from billing.payments.schemas import PaymentMethodAttach, PaymentMethodRead

router = APIRouter(prefix="/v1/accounts/{account_id}/payment-methods", tags=["payment methods"])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Attach a payment method")
async def attach_payment_method(
    account_id: uuid.UUID,
    body: PaymentMethodAttach,
    session: SessionDep,
    clock: ClockDep,
    gateway: GatewayDep,
    _: AccountsWrite,
) -> PaymentMethodRead:
    method = await methods.attach(
        session,
        gateway=gateway,
        account_id=account_id,
        token=body.token,
        set_default=body.set_default,
        clock=clock,
    )
    return PaymentMethodRead.model_validate(method)


@router.get("", summary="List an account's payment methods (masked)")
async def list_payment_methods(
    account_id: uuid.UUID, session: SessionDep, _: AccountsRead
) -> ListResponse[PaymentMethodRead]:
    found = await methods.list_methods(session, account_id=account_id)
    return ListResponse(data=[PaymentMethodRead.model_validate(m) for m in found], has_more=False)


@router.post("/{method_id}/default", summary="Make a payment method the default")
async def set_default_payment_method(
    account_id: uuid.UUID,
    method_id: uuid.UUID,
    session: SessionDep,
    clock: ClockDep,
    _: AccountsWrite,
) -> PaymentMethodRead:
    method = await methods.set_default(
        session, account_id=account_id, method_id=method_id, clock=clock
    )
    return PaymentMethodRead.model_validate(method)


@router.delete("/{method_id}", summary="Detach a payment method")
async def detach_payment_method(
    account_id: uuid.UUID,
    method_id: uuid.UUID,
    session: SessionDep,
    clock: ClockDep,
    _: AccountsWrite,
) -> PaymentMethodRead:
    method = await methods.detach(session, account_id=account_id, method_id=method_id, clock=clock)
    return PaymentMethodRead.model_validate(method)
