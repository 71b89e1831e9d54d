from __future__ import annotations

import uuid

from fastapi import APIRouter

from billing.accounts.router import AccountsRead
from billing.deps import SessionDep
from billing.http.pagination import ListResponse, PageDep
from billing.notifications import service
from billing.notifications.schemas import EmailRead

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


@router.get("/{account_id}/emails", summary="List the emails made for an account, newest first")
async def list_account_emails(
    account_id: uuid.UUID, session: SessionDep, page: PageDep, _: AccountsRead
) -> ListResponse[EmailRead]:
    emails, has_more = await service.list_account_emails(session, account_id=account_id, page=page)
    return ListResponse(data=[EmailRead.model_validate(e) for e in emails], has_more=has_more)
