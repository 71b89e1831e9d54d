from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from billing.auth.keys import Principal
from billing.auth.permissions import Permission
from billing.deps import ClockDep, SessionDep, require
from billing.http.pagination import ListResponse, PageDep
from billing.invoicing import service
from billing.invoicing.schemas import InvoiceRead, InvoiceStatus

router = APIRouter(prefix="/v1/invoices", tags=["invoices"])

InvoicesRead = Annotated[Principal, Depends(require(Permission.INVOICES_READ))]
InvoicesWrite = Annotated[Principal, Depends(require(Permission.INVOICES_WRITE))]


@router.get("", summary="List invoices, newest first")
async def list_invoices(
    session: SessionDep,
    page: PageDep,
    _: InvoicesRead,
    account_id: uuid.UUID | None = None,
    subscription_id: uuid.UUID | None = None,
    status: InvoiceStatus | None = None,
    created_gte: datetime | None = None,
    created_lt: datetime | None = None,
) -> ListResponse[InvoiceRead]:
    invoices, has_more = await service.list_invoices(
        session,
        page=page,
        account_id=account_id,
        subscription_id=subscription_id,
        status=status,
        created_gte=created_gte,
        created_lt=created_lt,
    )
    return ListResponse(data=invoices, has_more=has_more)


@router.get("/{invoice_id}", summary="Get an invoice with its lines")
async def get_invoice(invoice_id: uuid.UUID, session: SessionDep, _: InvoicesRead) -> InvoiceRead:
    return await service.get_invoice(session, invoice_id=invoice_id)


@router.post("/{invoice_id}/void", summary="Void an open invoice (applied credit is returned)")
async def void_invoice(
    invoice_id: uuid.UUID, session: SessionDep, clock: ClockDep, _: InvoicesWrite
) -> InvoiceRead:
    return await service.void_invoice(session, invoice_id=invoice_id, clock=clock)


@router.post("/{invoice_id}/mark-paid", summary="Record an off-line payment of an open invoice")
async def mark_paid(
    invoice_id: uuid.UUID, session: SessionDep, clock: ClockDep, _: InvoicesWrite
) -> InvoiceRead:
    return await service.mark_paid(session, invoice_id=invoice_id, clock=clock)


@router.post("/{invoice_id}/mark-uncollectible", summary="Give up collecting an open invoice")
async def mark_uncollectible(
    invoice_id: uuid.UUID, session: SessionDep, clock: ClockDep, _: InvoicesWrite
) -> InvoiceRead:
    return await service.mark_uncollectible(session, invoice_id=invoice_id, clock=clock)
