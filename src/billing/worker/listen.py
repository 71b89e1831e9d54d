"""Wake the worker when deliveries are committed: LISTEN on a dedicated connection.

The fan-out trigger NOTIFYs `billing_events` in the transaction that creates deliveries, so
a worker hears of them at commit instead of at its next tick. The connection is checked every
few seconds and opened again when it drops; the tick catches up on anything missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import asyncpg

from billing.db.engine import libpq_url
from billing.observability.logging import get_logger

if TYPE_CHECKING:
    from billing.worker.runner import Worker

log = get_logger("billing.worker")

CHANNEL = "billing_events"
APPLICATION_NAME = "billing-listen"
PING_SECONDS = 10.0
RECONNECT_MAX_SECONDS = 30.0


async def listen_for_deliveries(worker: Worker, database_url: str) -> None:
    """Run until cancelled: every notification sets `worker.wake`."""
    delay = 0.5
    while True:
        try:
            await _listen_until_lost(worker, database_url)
            log.warning("worker_listen_lost", worker_id=worker.worker_id)
            delay = 0.5
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("worker_listen_failed", worker_id=worker.worker_id, error=repr(exc))
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_MAX_SECONDS)


async def _listen_until_lost(worker: Worker, database_url: str) -> None:
    conn = await asyncpg.connect(
        libpq_url(database_url), server_settings={"application_name": APPLICATION_NAME}
    )
    lost = asyncio.Event()
    try:
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(CHANNEL, lambda *_args: worker.wake.set())
        worker.wake.set()  # anything committed while nobody listened
        log.info("worker_listening", worker_id=worker.worker_id, channel=CHANNEL)
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), timeout=PING_SECONDS)
            if not lost.is_set():
                await asyncio.wait_for(conn.execute("SELECT 1"), timeout=PING_SECONDS)
    finally:
        if not conn.is_closed():
            conn.terminate()
