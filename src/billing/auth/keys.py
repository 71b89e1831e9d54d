"""API keys: creation (the secret is returned once) and lookup by secret."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.auth.models import ApiKey
from billing.auth.permissions import Role

SECRET_PREFIX = "bk_"  # noqa: S105 (a public marker, not a secret)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key or a JWT subject, with one role."""

    kind: str
    id: str
    role: Role
    name: str


def hash_secret(secret: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(session: AsyncSession, *, role: Role, name: str) -> tuple[ApiKey, str]:
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=uuid.uuid4(),
        name=name,
        role=role.value,
        prefix=secret[:10],
        secret_hash=hash_secret(secret),
    )
    session.add(key)
    await session.flush()
    return key, secret


async def count_api_keys(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(ApiKey)) or 0)


class ApiKeyResolver:
    """Looks keys up by secret hash, with a short in-process cache.

    The cache keeps the per-request cost of auth off the database; a revoked key stops working
    within API_KEY_CACHE_SECONDS.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_seconds: float) -> None:
        self._sessions = sessions
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def resolve(self, secret: str) -> Principal | None:
        digest = hash_secret(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._sessions() as session:
            key = await session.scalar(
                select(ApiKey).where(ApiKey.secret_hash == digest, ApiKey.revoked_at.is_(None))
            )
        principal = (
            None
            if key is None
            else Principal(kind="api_key", id=str(key.id), role=Role(key.role), name=key.name)
        )
        if self._ttl > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, principal)
        return principal
