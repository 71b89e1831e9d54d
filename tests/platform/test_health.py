from __future__ import annotations

import httpx
import pytest

from tests.conftest import AppFactory, http_client


async def test_liveness_needs_no_auth(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readiness_checks_the_database(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "not_configured"},
    }


async def test_readiness_fails_naming_the_database_when_it_is_down(make_app: AppFactory) -> None:
    # Nothing listens on port 9 of the loopback: the database is unreachable.
    app = make_app(url="postgresql+asyncpg://postgres@127.0.0.1:9/billing")
    async with http_client(app) as c:
        response = await c.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert body["failing"] == ["database"]
    assert "database" in body["detail"]


@pytest.mark.redis
async def test_readiness_reports_redis_when_configured(
    make_app: AppFactory, redis_url: str
) -> None:
    app = make_app(redis_url=redis_url)
    async with http_client(app) as c:
        response = await c.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_readiness_fails_naming_redis_when_it_is_down(make_app: AppFactory) -> None:
    app = make_app(redis_url="redis://127.0.0.1:9/0")
    async with http_client(app) as c:
        response = await c.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["failing"] == ["redis"]
