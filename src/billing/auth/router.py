from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from billing.auth import service
from billing.auth.keys import Principal
from billing.auth.permissions import Permission
from billing.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from billing.deps import ClockDep, SessionDep, require
from billing.http.pagination import ListResponse, PageDep

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])

ApiKeysWrite = Annotated[Principal, Depends(require(Permission.API_KEYS_WRITE))]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an API key")
async def create_key(
    body: ApiKeyCreate, response: Response, session: SessionDep, _: ApiKeysWrite
) -> ApiKeyCreated:
    key, secret = await service.issue_key(session, role=body.role, name=body.name)
    # The secret must not be cached anywhere, the idempotency store included.
    response.headers["Cache-Control"] = "no-store"
    return ApiKeyCreated.model_validate(
        {**ApiKeyRead.model_validate(key).model_dump(), "secret": secret}
    )


@router.get("", summary="List API keys (secrets are never shown again)")
async def list_keys(
    session: SessionDep, page: PageDep, _: ApiKeysWrite
) -> ListResponse[ApiKeyRead]:
    keys, has_more = await service.list_keys(session, page=page)
    return ListResponse(data=[ApiKeyRead.model_validate(k) for k in keys], has_more=has_more)


@router.delete("/{key_id}", summary="Revoke an API key")
async def revoke_key(
    key_id: uuid.UUID, session: SessionDep, clock: ClockDep, _: ApiKeysWrite
) -> ApiKeyRead:
    return ApiKeyRead.model_validate(await service.revoke_key(session, key_id=key_id, clock=clock))
