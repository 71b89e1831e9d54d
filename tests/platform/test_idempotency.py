"""Idempotency-Key: replay, reuse with another body, in-flight conflict, what is not stored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field

from billing.deps import SessionDep
from billing.events.outbox import record_event
from billing.worker.runner import Worker
from tests.conftest import AppFactory, Sql, http_client, new_api_key


class ThingIn(BaseModel):
    name: str = Field(min_length=1)


def with_routes(app: FastAPI) -> asyncio.Event:
    """Mount a small write endpoint (it records an event row) for exercising the middleware."""
    gate = asyncio.Event()
    gate.set()

    async def create_thing(body: ThingIn, session: SessionDep) -> dict[str, str]:
        await gate.wait()
        event = record_event(
            session,
            type="thing.created",
            account_id=None,
            data={"name": body.name},
            at=datetime.now(UTC),
        )
        await session.commit()
        return {"id": str(event.id), "name": body.name}

    async def fail() -> None:
        raise RuntimeError("transient")

    app.add_api_route("/things", create_thing, methods=["POST"], status_code=201)
    app.add_api_route("/fail", fail, methods=["POST"])
    return gate


@pytest.fixture
async def setup(make_app: AppFactory) -> tuple[FastAPI, asyncio.Event, str]:
    app = make_app()
    gate = with_routes(app)
    return app, gate, await new_api_key(app)


async def count_things(sql: Sql) -> int:
    rows = await sql("SELECT count(*) AS n FROM events WHERE type = 'thing.created'")
    return int(rows[0].n)


async def test_replay_returns_the_stored_response_and_writes_once(
    setup: tuple[FastAPI, asyncio.Event, str], sql: Sql
) -> None:
    app, _, secret = setup
    async with http_client(app, secret) as c:
        headers = {"Idempotency-Key": "key-1"}
        first = await c.post("/things", json={"name": "a"}, headers=headers)
        second = await c.post("/things", json={"name": "a"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count_things(sql) == 1


async def test_same_key_with_another_body_is_422(
    setup: tuple[FastAPI, asyncio.Event, str], sql: Sql
) -> None:
    app, _, secret = setup
    async with http_client(app, secret) as c:
        headers = {"Idempotency-Key": "key-2"}
        await c.post("/things", json={"name": "a"}, headers=headers)
        other = await c.post("/things", json={"name": "b"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert await count_things(sql) == 1


async def test_same_key_while_in_flight_is_409(
    setup: tuple[FastAPI, asyncio.Event, str], sql: Sql
) -> None:
    app, gate, secret = setup
    gate.clear()
    async with http_client(app, secret) as c:
        headers = {"Idempotency-Key": "key-3"}
        first = asyncio.create_task(c.post("/things", json={"name": "a"}, headers=headers))
        await asyncio.sleep(0.2)  # the first request is now waiting inside the handler
        second = await c.post("/things", json={"name": "a"}, headers=headers)
        gate.set()
        done = await first
    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_key_in_use"
    assert done.status_code == 201
    assert await count_things(sql) == 1


async def test_validation_failures_and_server_errors_are_not_stored(
    setup: tuple[FastAPI, asyncio.Event, str], sql: Sql
) -> None:
    app, _, secret = setup
    async with http_client(app, secret) as c:
        headers = {"Idempotency-Key": "key-4"}
        invalid = await c.post("/things", json={"name": ""}, headers=headers)
        assert invalid.status_code == 422
        valid = await c.post("/things", json={"name": "fixed"}, headers=headers)
        assert valid.status_code == 201
        assert "idempotent-replayed" not in valid.headers

        failed = await c.post("/fail", headers={"Idempotency-Key": "key-5"})
        assert failed.status_code == 500
        again = await c.post("/fail", headers={"Idempotency-Key": "key-5"})
        assert again.status_code == 500
        assert "idempotent-replayed" not in again.headers
    assert await count_things(sql) == 1


async def test_keys_are_scoped_to_the_caller(
    setup: tuple[FastAPI, asyncio.Event, str], sql: Sql
) -> None:
    app, _, secret = setup
    other = await new_api_key(app)
    async with http_client(app, secret) as a, http_client(app, other) as b:
        headers = {"Idempotency-Key": "shared-name"}
        first = await a.post("/things", json={"name": "a"}, headers=headers)
        second = await b.post("/things", json={"name": "a"}, headers=headers)
    assert first.json()["id"] != second.json()["id"]
    assert await count_things(sql) == 2


async def test_key_longer_than_255_characters_is_rejected(
    setup: tuple[FastAPI, asyncio.Event, str],
) -> None:
    app, _, secret = setup
    async with http_client(app, secret) as c:
        ok = await c.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "k" * 255})
        too_long = await c.post(
            "/things", json={"name": "a"}, headers={"Idempotency-Key": "k" * 256}
        )
    assert ok.status_code == 201
    assert too_long.status_code == 422
    assert too_long.json()["param"] == "Idempotency-Key"


async def test_responses_with_secrets_are_never_stored(client: httpx.AsyncClient, sql: Sql) -> None:
    headers = {"Idempotency-Key": "new-key"}
    created = await client.post(
        "/v1/api-keys", json={"role": "support_rep", "name": "n"}, headers=headers
    )
    assert created.status_code == 201
    rows = await sql("SELECT count(*) AS n FROM idempotency_keys")
    assert rows[0].n == 0


async def test_expired_keys_are_purged_by_the_worker(
    setup: tuple[FastAPI, asyncio.Event, str], sql: Sql, worker: Worker
) -> None:
    app, _, secret = setup
    async with http_client(app, secret) as c:
        await c.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "old"})
        await c.post("/things", json={"name": "b"}, headers={"Idempotency-Key": "fresh"})
    rows = await sql("SELECT key, expires_at - created_at AS ttl FROM idempotency_keys")
    assert {r.ttl.total_seconds() for r in rows} == {24 * 3600}
    await sql(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'old'"
    )
    done = await worker.run_due()
    assert done["idempotency_keys_expired"] == 1
    remaining = await sql("SELECT key FROM idempotency_keys")
    assert [r.key for r in remaining] == ["fresh"]
