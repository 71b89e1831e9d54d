"""The worker delivers promptly (NOTIFY), survives a dropped listener and a killed process,
and a slow receiver never holds up other endpoints."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from billing.worker.runner import Worker
from tests.conftest import AppFactory, Sql, http_client, new_api_key, runtime_of, worker_process
from tests.events.conftest import create_endpoint, deliveries, hooks_settings, until
from tests.events.receiver import Receiver, Reply

LISTENERS = (
    "SELECT count(*) AS n FROM pg_stat_activity "
    "WHERE application_name = 'billing-listen' AND datname = current_database()"
)


@asynccontextmanager
async def running(worker: Worker, sql: Sql) -> AsyncIterator[None]:
    """The worker's real loop, as `billing worker` runs it, with its LISTEN connection up."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        await wait_for_listener(sql)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def wait_for_listener(sql: Sql, count: int = 1) -> None:
    deadline = time.monotonic() + 10
    while (await sql(LISTENERS))[0].n != count:
        assert time.monotonic() < deadline, "the worker is not listening"
        await asyncio.sleep(0.05)


def slow_tick_app(make_app: AppFactory) -> FastAPI:
    # A tick far longer than the test: only the NOTIFY can explain a prompt delivery.
    return make_app(**hooks_settings(worker_tick_seconds=120))


async def test_delivery_follows_the_commit_without_waiting_for_a_tick(
    make_app: AppFactory, receiver: Receiver, sql: Sql
) -> None:
    app = slow_tick_app(make_app)
    async with http_client(app, await new_api_key(app)) as client:
        await create_endpoint(client, receiver.url)
        async with running(runtime_of(app).worker(), sql):
            committed = time.monotonic()
            await client.post("/v1/accounts", json={"email": "fast@example.com"})
            [request] = await receiver.wait_for(1, within=5)
            assert request.at - committed < 3
            assert request.json["type"] == "account.created"


async def test_a_dropped_listener_connection_is_opened_again(
    make_app: AppFactory, receiver: Receiver, sql: Sql
) -> None:
    app = slow_tick_app(make_app)
    async with http_client(app, await new_api_key(app)) as client:
        await create_endpoint(client, receiver.url)
        async with running(runtime_of(app).worker(), sql):
            await sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'billing-listen' AND datname = current_database()"
            )
            await wait_for_listener(sql, 0)
            await wait_for_listener(sql, 1)
            await client.post("/v1/accounts", json={"email": "again@example.com"})
            [request] = await receiver.wait_for(1, within=5)
            assert request.json["data"]["email"] == "again@example.com"


async def test_a_slow_receiver_does_not_hold_up_other_endpoints(
    make_app: AppFactory, receiver: Receiver, sql: Sql
) -> None:
    slow = Receiver()
    slow.default = Reply(200, delay=4)
    await slow.start()
    app = slow_tick_app(make_app)
    try:
        async with http_client(app, await new_api_key(app)) as client:
            await create_endpoint(client, slow.url)
            await create_endpoint(client, receiver.url)
            async with running(runtime_of(app).worker(), sql):
                await client.post("/v1/accounts", json={"email": "one@example.com"})
                await receiver.wait_for(1, within=2)
                await slow.wait_for(1, within=2)
                # While the slow receiver still holds its request, billing goes on and the
                # other endpoint gets the next event at once.
                started = time.monotonic()
                await client.post("/v1/accounts", json={"email": "two@example.com"})
                await receiver.wait_for(2, within=2)
                assert time.monotonic() - started < 2
                assert len(slow.requests) == 1
    finally:
        await slow.stop()


async def test_an_event_committed_while_no_worker_runs_is_delivered_later(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(hooks, receiver.url)
    await hooks.post("/v1/accounts", json={"email": "later@example.com"})
    # Committed with the event itself: nothing depends on a process being alive.
    [delivery] = await deliveries(hooks, endpoint["id"])
    assert (delivery["status"], delivery["attempts"]) == ("pending", 0)
    await hooks_worker.run_due()
    [request] = receiver.requests
    assert request.webhook_id == delivery["event_id"]


async def test_a_worker_killed_mid_delivery_loses_nothing(
    hooks: httpx.AsyncClient,
    hooks_worker: Worker,
    receiver: Receiver,
    database_url: str,
    sql: Sql,
    tmp_path: Path,
) -> None:
    endpoint = await create_endpoint(hooks, receiver.url)
    receiver.hold = asyncio.Event()  # the receiver takes the request and does not answer
    log_path = tmp_path / "worker.log"
    with worker_process(
        database_url,
        log_path,
        WEBHOOKS_ALLOW_PRIVATE="true",
        WEBHOOKS_ALLOW_HTTP="true",
        WEBHOOK_TIMEOUT_SECONDS="2",
    ) as proc:
        await hooks.post("/v1/accounts", json={"email": "killed@example.com"})
        deadline = time.monotonic() + 30
        while not receiver.requests:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # mid-delivery: sent, no answer recorded
        proc.wait(timeout=10)
    receiver.hold.set()
    receiver.hold = None
    [claimed] = await deliveries(hooks, endpoint["id"])
    assert (claimed["status"], claimed["attempts"]) == ("pending", 1)

    async def delivered() -> bool:
        rows = await sql("SELECT status FROM webhook_deliveries")
        return [r.status for r in rows] == ["succeeded"]

    # Once the claim's lease is over (the timeout and a margin), another worker sends it again.
    await until(hooks_worker, delivered, within=15)
    first, second = receiver.requests
    assert first.webhook_id == second.webhook_id  # the receiver can drop the duplicate
    second.verify(endpoint["secret"])
