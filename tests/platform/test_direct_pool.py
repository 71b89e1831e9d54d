"""The direct asyncpg pool and request-scoped sessions: reads see what they must, nothing leaks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import text

from billing.accounts import service as accounts
from billing.accounts.models import Account
from billing.db.engine import create_engine, direct_pool, raw_connect
from billing.deps import SessionDep
from billing.http.context import at_request_end
from billing.runtime import Runtime
from tests.conftest import AppFactory, http_client, log_lines, new_api_key
from tests.factories.accounts import create_account


def _account() -> Account:
    now = datetime.now(UTC)
    return Account(
        id=uuid.uuid4(),
        email="pending@example.com",
        currency="USD",
        timezone="UTC",
        locale="en_US",
        status="active",
        tax_exempt="none",
        tax_ids=[],
        metadata_={},
        created_at=now,
        updated_at=now,
    )


async def test_a_read_inside_a_session_transaction_sees_its_uncommitted_writes(
    runtime: Runtime,
) -> None:
    async with runtime.sessions() as session:
        account = _account()
        session.add(account)
        await session.flush()
        read = await accounts.get_account(session, account_id=account.id)
        assert read.email == "pending@example.com"
        await session.rollback()


async def test_a_read_outside_a_transaction_leaves_the_session_untouched(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    created = await create_account(client, email="direct@example.com", name="Direct")
    async with runtime.sessions() as session:
        read = await accounts.get_account(session, account_id=uuid.UUID(created["id"]))
        assert not session.in_transaction()
    assert read.model_dump(mode="json") == created


async def test_the_direct_pool_closes_with_its_engine(database_url: str) -> None:
    engine = create_engine(database_url)
    async with direct_pool(engine).acquire() as conn:
        pid = conn.get_server_pid()
    await engine.dispose()
    check = await raw_connect(database_url)
    try:
        alive = await check.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await check.close()
    assert alive == 0


async def test_a_disposed_engine_gets_a_new_direct_pool(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        first = direct_pool(engine)
        async with first.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
        await engine.dispose()
        second = direct_pool(engine)
        assert second is not first
        async with second.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await engine.dispose()


@pytest.fixture
def leaky_app(make_app: AppFactory) -> FastAPI:
    """A route that leaves its transaction open, and one that uses its session not at all."""
    app = make_app()

    async def leave_open(session: SessionDep) -> dict[str, int]:
        await session.execute(text("SELECT 1"))
        return {"in_transaction": int(session.in_transaction())}

    async def unused(session: SessionDep) -> dict[str, bool]:
        return {"ok": True}

    app.add_api_route("/leave-open", leave_open)
    app.add_api_route("/unused", unused)
    return app


async def test_a_route_session_is_closed_once_the_request_ends(leaky_app: FastAPI) -> None:
    pool = leaky_app.state.runtime.engine.sync_engine.pool
    async with http_client(leaky_app, await new_api_key(leaky_app)) as c:
        for path in ("/leave-open", "/unused", "/leave-open"):
            response = await c.get(path)
            assert response.status_code == 200
            assert pool.checkedout() == 0
    assert response.json() == {"in_transaction": 1}


async def test_a_failing_cleanup_is_logged_and_does_not_change_the_answer(
    make_app: AppFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    app = make_app()

    async def broken() -> None:
        raise RuntimeError("cleanup failed")

    async def route(request: Request) -> dict[str, str]:
        at_request_end(request.scope, broken)
        return {"ok": "yes"}

    app.add_api_route("/cleanup", route)
    async with http_client(app) as c:
        response = await c.get("/cleanup", headers={"X-Request-ID": "cleanup-1"})
    assert response.status_code == 200
    assert response.json() == {"ok": "yes"}
    [line] = [e for e in log_lines(capfd) if e["event"] == "request_cleanup_failed"]
    assert line["request_id"] == "cleanup-1"
