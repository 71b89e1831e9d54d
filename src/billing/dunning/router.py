"""Dunning steps taken for an account (reminders, warnings, blocking, unblocking)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from billing.auth.keys import Principal
from billing.auth.permissions import Permission
from billing.deps import SessionDep, require
from billing.dunning import service
from billing.http.pagination import ListResponse

router = APIRouter(tags=["dunning"])

AccountsRead = Annotated[Principal, Depends(require(Permission.ACCOUNTS_READ))]


class DunningStepRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: str = "dunning_step"
    id: uuid.UUID
    account_id: uuid.UUID
    step: str
    days_overdue: int
    invoice_ids: list[uuid.UUID]
    amount_due: int
    currency: str
    created_at: datetime


@router.get(
    "/v1/accounts/{account_id}/dunning-steps", summary="An account's dunning steps, oldest first"
)
async def list_dunning_steps(
    account_id: uuid.UUID, session: SessionDep, _: AccountsRead
) -> ListResponse[DunningStepRead]:
    steps = await service.list_steps(session, account_id=account_id)
    return ListResponse(data=[DunningStepRead.model_validate(s) for s in steps], has_more=False)
