from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from billing.auth.keys import Principal
from billing.auth.permissions import Permission
from billing.catalog import service
from billing.catalog.schemas import PlanCreate, PlanRead, PlanUpdate, PlanVersionCreate
from billing.deps import ClockDep, SessionDep, require
from billing.http.pagination import ListResponse, PageDep

router = APIRouter(prefix="/v1/plans", tags=["plans"])

CatalogRead = Annotated[Principal, Depends(require(Permission.CATALOG_READ))]
CatalogWrite = Annotated[Principal, Depends(require(Permission.CATALOG_WRITE))]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a plan (version 1)")
async def create_plan(
    body: PlanCreate, session: SessionDep, clock: ClockDep, _: CatalogWrite
) -> PlanRead:
    return PlanRead.model_validate(await service.create_plan(session, data=body, clock=clock))


@router.get("", summary="List plan versions, newest first")
async def list_plans(
    session: SessionDep,
    page: PageDep,
    _: CatalogRead,
    active: Annotated[bool | None, Query(description="Only active or inactive versions.")] = None,
    code: Annotated[str | None, Query(description="Only versions of this plan code.")] = None,
) -> ListResponse[PlanRead]:
    plans, has_more = await service.list_plans(session, page=page, active=active, code=code)
    return ListResponse(data=plans, has_more=has_more)


@router.post(
    "/{code}/versions",
    status_code=status.HTTP_201_CREATED,
    summary="Create the next version of a plan (omitted fields are copied from the latest)",
)
async def create_version(
    code: str, body: PlanVersionCreate, session: SessionDep, clock: ClockDep, _: CatalogWrite
) -> PlanRead:
    plan = await service.create_version(session, code=code, data=body, clock=clock)
    return PlanRead.model_validate(plan)


@router.get("/{code}/versions", summary="List every version of a plan, oldest first")
async def list_versions(code: str, session: SessionDep, _: CatalogRead) -> ListResponse[PlanRead]:
    plans = await service.list_versions(session, code=code)
    return ListResponse(data=[PlanRead.model_validate(p) for p in plans], has_more=False)


@router.get("/{plan_ref}", summary="Get a plan version by id, or a code's latest version")
async def get_plan(plan_ref: str, session: SessionDep, _: CatalogRead) -> PlanRead:
    return PlanRead.model_validate(await service.get_plan_by_ref(session, ref=plan_ref))


@router.patch("/{plan_id}", summary="Activate or deactivate a plan version")
async def update_plan(
    plan_id: uuid.UUID, body: PlanUpdate, session: SessionDep, clock: ClockDep, _: CatalogWrite
) -> PlanRead:
    plan = await service.set_active(session, plan_id=plan_id, active=body.active, clock=clock)
    return PlanRead.model_validate(plan)
