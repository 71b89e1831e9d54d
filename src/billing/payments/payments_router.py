"""Payments: list and read attempts, pay an invoice now, refund a payment."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from billing.auth.keys import Principal
from billing.auth.permissions import Permission
from billing.deps import ClockDep, GatewayDep, RuntimeDep, SessionDep, require
from billing.http.pagination import ListResponse, PageDep
from billing.payments import service
from billing.payments.schemas import (
    InvoicePay,
    PaymentRead,
    PaymentStatus,
    RefundCreate,
    RefundRead,
)

router = APIRouter(tags=["payments"])

PaymentsRead = Annotated[Principal, Depends(require(Permission.PAYMENTS_READ))]
PaymentsWrite = Annotated[Principal, Depends(require(Permission.PAYMENTS_WRITE))]


@router.get("/v1/payments", summary="List payment attempts, newest first")
async def list_payments(
    session: SessionDep,
    page: PageDep,
    _: PaymentsRead,
    invoice_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
    status: PaymentStatus | None = None,
) -> ListResponse[PaymentRead]:
    found, has_more = await service.list_payments(
        session, page=page, invoice_id=invoice_id, account_id=account_id, status=status
    )
    return ListResponse(data=found, has_more=has_more)


@router.get("/v1/payments/{payment_id}", summary="Get a payment attempt")
async def get_payment(payment_id: uuid.UUID, session: SessionDep, _: PaymentsRead) -> PaymentRead:
    return await service.get_payment(session, payment_id=payment_id)


@router.post(
    "/v1/invoices/{invoice_id}/pay",
    status_code=status.HTTP_201_CREATED,
    summary="Charge an open invoice now (a manual retry), optionally with another method",
)
async def pay_invoice(
    invoice_id: uuid.UUID,
    session: SessionDep,
    clock: ClockDep,
    gateway: GatewayDep,
    runtime: RuntimeDep,
    _: PaymentsWrite,
    body: InvoicePay | None = None,
) -> PaymentRead:
    return await service.pay_invoice(
        session,
        gateway=gateway,
        invoice_id=invoice_id,
        payment_method_id=body.payment_method_id if body else None,
        clock=clock,
        settings=runtime.settings,
    )


@router.post(
    "/v1/payments/{payment_id}/refund",
    status_code=status.HTTP_201_CREATED,
    summary="Refund all or part of a succeeded payment",
)
async def refund_payment(
    payment_id: uuid.UUID,
    session: SessionDep,
    clock: ClockDep,
    gateway: GatewayDep,
    _: PaymentsWrite,
    body: RefundCreate | None = None,
) -> RefundRead:
    return await service.refund_payment(
        session, gateway=gateway, payment_id=payment_id, data=body or RefundCreate(), clock=clock
    )
