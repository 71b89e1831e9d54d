from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from billing.auth.keys import Principal
from billing.auth.permissions import Permission
from billing.deps import ClockDep, SessionDep, require
from billing.http.pagination import ListResponse, PageDep
from billing.tax import service
from billing.tax.schemas import TaxRateCreate, TaxRateRead, TaxRateUpdate

router = APIRouter(prefix="/v1/tax-rates", tags=["tax"])

# Tax rates are configuration like the catalog: the same permissions.
TaxRead = Annotated[Principal, Depends(require(Permission.CATALOG_READ))]
TaxWrite = Annotated[Principal, Depends(require(Permission.CATALOG_WRITE))]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a tax rate (applies to invoices finalized from its effective_from date)",
)
async def create_rate(
    body: TaxRateCreate, session: SessionDep, clock: ClockDep, _: TaxWrite
) -> TaxRateRead:
    return await service.create_rate(session, data=body, clock=clock)


@router.get("", summary="List tax rates, newest first")
async def list_rates(
    session: SessionDep,
    page: PageDep,
    _: TaxRead,
    country: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$")] = None,
) -> ListResponse[TaxRateRead]:
    rates, has_more = await service.list_rates(session, page=page, country=country)
    return ListResponse(data=rates, has_more=has_more)


@router.get("/{rate_id}", summary="Get a tax rate")
async def get_rate(rate_id: uuid.UUID, session: SessionDep, _: TaxRead) -> TaxRateRead:
    return await service.get_rate(session, rate_id=rate_id)


@router.patch("/{rate_id}", summary="End a tax rate or change its description")
async def update_rate(
    rate_id: uuid.UUID, body: TaxRateUpdate, session: SessionDep, _: TaxWrite
) -> TaxRateRead:
    return await service.update_rate(session, rate_id=rate_id, data=body)
