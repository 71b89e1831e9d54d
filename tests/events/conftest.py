"""Fixtures for events and webhooks: a real receiver, an app that may send to it, its worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billing.worker.runner import Worker
from tests.conftest import AppFactory, http_client, new_api_key, runtime_of
from tests.events.receiver import Receiver

# Short retries, so a test sees a whole schedule in about a second.
FAST_RETRIES = "0.2s,0.2s,0.2s"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    if server.hold is not None:
        server.hold.set()
    await server.stop()


def hooks_settings(**overrides: Any) -> dict[str, Any]:
    """The receiver runs on 127.0.0.1 over http: allow both (the SSRF tests do not)."""
    return {
        "webhooks_allow_private": True,
        "webhooks_allow_http": True,
        "webhook_retry_schedule": FAST_RETRIES,
        "webhook_timeout_seconds": 5,
    } | overrides


@pytest.fixture
def hooks_app(make_app: AppFactory) -> FastAPI:
    return make_app(**hooks_settings())


@pytest.fixture
async def hooks(hooks_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(hooks_app, await new_api_key(hooks_app)) as c:
        yield c


@pytest.fixture
def hooks_worker(hooks_app: FastAPI) -> Worker:
    return runtime_of(hooks_app).worker()


async def create_endpoint(
    client: httpx.AsyncClient, url: str, events: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"url": url, "enabled_events": events or ["*"]} | fields
    response = await client.post("/v1/webhook-endpoints", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def until(worker: Worker, done: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Run the worker's due work again and again (retries fall due) until `done()`."""
    deadline = time.monotonic() + within
    while not await done():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await worker.run_due()
        await asyncio.sleep(0.05)


async def deliveries(client: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries?limit=100")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data
