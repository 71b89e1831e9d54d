from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from billing.accounts import service
from billing.accounts.schemas import (
    AccountCreate,
    AccountDeleted,
    AccountRead,
    AccountStatus,
    AccountUpdate,
)
from billing.auth.keys import Principal
from billing.auth.permissions import Permission
from billing.deps import ClockDep, GatewayDep, SessionDep, require
from billing.http.pagination import ListResponse, PageDep

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

AccountsRead = Annotated[Principal, Depends(require(Permission.ACCOUNTS_READ))]
AccountsWrite = Annotated[Principal, Depends(require(Permission.ACCOUNTS_WRITE))]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an account")
async def create_account(
    body: AccountCreate,
    session: SessionDep,
    clock: ClockDep,
    gateway: GatewayDep,
    _: AccountsWrite,
) -> AccountRead:
    return await service.create_account(session, data=body, clock=clock, gateway=gateway)


@router.get("", summary="List accounts, newest first")
async def list_accounts(
    session: SessionDep,
    page: PageDep,
    _: AccountsRead,
    email: Annotated[str | None, Query(max_length=320, description="Exact, any case.")] = None,
    status: AccountStatus | None = None,
    created_gte: Annotated[datetime | None, Query(description="Created at or after.")] = None,
    created_lt: Annotated[datetime | None, Query(description="Created before.")] = None,
) -> ListResponse[AccountRead]:
    accounts, has_more = await service.list_accounts(
        session,
        page=page,
        email=email,
        status=status,
        created_gte=created_gte,
        created_lt=created_lt,
    )
    return ListResponse(data=accounts, has_more=has_more)


@router.get("/{account_id}", summary="Get an account")
async def get_account(account_id: uuid.UUID, session: SessionDep, _: AccountsRead) -> AccountRead:
    return await service.get_account(session, account_id=account_id)


@router.patch("/{account_id}", summary="Update an account")
async def update_account(
    account_id: uuid.UUID,
    body: AccountUpdate,
    session: SessionDep,
    clock: ClockDep,
    _: AccountsWrite,
) -> AccountRead:
    return await service.update_account(session, account_id=account_id, data=body, clock=clock)


@router.delete("/{account_id}", summary="Delete an account (soft: invoices keep referring to it)")
async def delete_account(
    account_id: uuid.UUID, session: SessionDep, clock: ClockDep, _: AccountsWrite
) -> AccountDeleted:
    await service.delete_account(session, account_id=account_id, clock=clock)
    return AccountDeleted(id=account_id)
