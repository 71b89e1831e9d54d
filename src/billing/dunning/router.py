"""Dunning steps taken for an account (reminders, warnings, blocking, unblocking)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from billing.accounts.router import AccountsRead
from billing.deps import SessionDep
from billing.dunning import service
from billing.http.pagination import ListResponse

router = APIRouter(tags=["dunning"])


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
