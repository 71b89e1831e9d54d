from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from billing.auth.keys import Principal
from billing.auth.permissions import Permission
from billing.credits import service
from billing.credits.schemas import CreditBalances, CreditEntryRead, CreditGrant
from billing.deps import ClockDep, SessionDep, require

router = APIRouter(tags=["credits"])

CreditsRead = Annotated[Principal, Depends(require(Permission.CREDITS_READ))]
CreditsWrite = Annotated[Principal, Depends(require(Permission.CREDITS_WRITE))]


@router.post(
    "/v1/credits",
    status_code=status.HTTP_201_CREATED,
    summary="Grant credit to an account (applied automatically to its next invoices)",
)
async def grant_credit(
    body: CreditGrant, session: SessionDep, clock: ClockDep, _: CreditsWrite
) -> CreditEntryRead:
    entry = await service.grant_credit(session, data=body, clock=clock)
    return CreditEntryRead.model_validate(entry)


@router.get(
    "/v1/accounts/{account_id}/credits",
    summary="An account's credit balance per currency, and its ledger",
)
async def account_credits(
    account_id: uuid.UUID, session: SessionDep, _: CreditsRead
) -> CreditBalances:
    return await service.balances(session, account_id=account_id)
