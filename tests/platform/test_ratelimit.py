"""Per-key rate limits: 429 problem+json with Retry-After, in memory and on Redis."""

from __future__ import annotations

import pytest

from billing.auth.permissions import Role
from tests.conftest import AppFactory, http_client, new_api_key


async def _exhaust(make_app: AppFactory, **settings: object) -> None:
    app = make_app(rate_limit_per_hour=3, **settings)
    key_a = await new_api_key(app, Role.SUPPORT_REP)
    key_b = await new_api_key(app, Role.SUPPORT_REP)
    async with http_client(app, key_a) as a, http_client(app, key_b) as b:
        statuses = [(await a.get("/health/ready")).status_code for _ in range(3)]
        # /health/ready is public; limits apply to authenticated API routes.
        assert statuses == [200, 200, 200]
        # support_rep cannot list keys (403), but every authenticated call counts.
        codes = [(await a.get("/v1/api-keys")).status_code for _ in range(4)]
        assert codes == [403, 403, 403, 429]
        limited = await a.get("/v1/api-keys")
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.json()["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 3600
        # Another key has its own budget.
        assert (await b.get("/v1/api-keys")).status_code == 403


async def test_rate_limit_in_memory(make_app: AppFactory) -> None:
    await _exhaust(make_app)


@pytest.mark.redis
async def test_rate_limit_on_redis(make_app: AppFactory, redis_url: str) -> None:
    # A fresh database index is not available everywhere; keys are per-principal ids, which
    # are new UUIDs in every run, so runs never share a budget.
    await _exhaust(make_app, redis_url=redis_url)


@pytest.mark.redis
async def test_redis_limit_is_shared_between_app_instances(
    make_app: AppFactory, redis_url: str
) -> None:
    first = make_app(rate_limit_per_hour=2, redis_url=redis_url)
    second = make_app(rate_limit_per_hour=2, redis_url=redis_url)
    key = await new_api_key(first, Role.SUPPORT_REP)
    async with http_client(first, key) as a, http_client(second, key) as b:
        assert (await a.get("/v1/api-keys")).status_code == 403
        assert (await b.get("/v1/api-keys")).status_code == 403
        assert (await a.get("/v1/api-keys")).status_code == 429
        assert (await b.get("/v1/api-keys")).status_code == 429
