"""API key use cases (the CLI and the /v1/api-keys routes share them)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.auth.keys import create_api_key
from billing.auth.models import ApiKey
from billing.auth.permissions import Role
from billing.clock import Clock
from billing.http.errors import NotFound
from billing.http.pagination import PageParams, paginate


async def issue_key(session: AsyncSession, *, role: Role, name: str) -> tuple[ApiKey, str]:
    key, secret = await create_api_key(session, role=role, name=name)
    await session.commit()
    return key, secret


async def list_keys(session: AsyncSession, *, page: PageParams) -> tuple[list[ApiKey], bool]:
    return await paginate(session, select(ApiKey), ApiKey, page)


async def revoke_key(session: AsyncSession, *, key_id: uuid.UUID, clock: Clock) -> ApiKey:
    key = await session.get(ApiKey, key_id, with_for_update=True)
    if key is None:
        raise NotFound(f"No API key {key_id}.", param="id")
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        await session.commit()
    return key
