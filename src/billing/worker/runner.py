"""The worker loop: a registry of sweeps, each claiming due rows with FOR UPDATE SKIP LOCKED.

A sweep processes one batch per call, commits it, and returns how many rows it handled. The
loop calls each sweep until it comes back short, so a backlog drains quickly; any number of
workers can run at once because every claim skips rows another worker holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from billing.clock import Clock
from billing.observability.logging import get_logger
from billing.observability.metrics import (
    WORKER_HEARTBEAT,
    WORKER_SWEEP_FAILURES,
    WORKER_SWEEP_ITEMS,
)
from billing.payments.gateways import PaymentGateway
from billing.settings import Settings

log = get_logger("billing.worker")


class BackgroundWork:
    """Work a sweep hands off to run beside the loop (webhook sends), bounded in number.

    A sweep that would wait on slow I/O (a receiver taking its full timeout) starts it here
    instead, so the billing sweeps never wait for it. `run_due` joins it; shutdown asks it
    to stop at the next step and waits for what is in flight.
    """

    def __init__(self, limit: int, on_done: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.on_done = on_done
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def free(self) -> int:
        return 0 if self.closing else max(0, self.limit - len(self._tasks))

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background_work_failed", task=task.get_name(), exc_info=task.exception())
        if self.on_done is not None:
            self.on_done()

    async def join(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        self.closing = True
        await self.join()


@dataclass(frozen=True)
class SweepContext:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    batch_size: int
    settings: Settings
    # Set while a test clock is advanced: only that clock's accounts are processed.
    test_clock_id: uuid.UUID | None = None
    # The payment gateway the collection sweeps charge through (None: they do nothing).
    gateway: PaymentGateway | None = None
    # Where a sweep starts slow I/O; None: the sweep does the work itself before returning.
    background: BackgroundWork | None = None


@dataclass(frozen=True)
class Sweep:
    name: str
    run: Callable[[SweepContext], Awaitable[int]]
    # Runs on real time only, by the regular tick: skipped (0) while a test clock advances.
    real_time_only: bool = False


@dataclass
class Worker:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    sweeps: Sequence[Sweep]
    settings: Settings
    batch_size: int = 500
    tick_seconds: float = 5.0
    gateway: PaymentGateway | None = None
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Set on shutdown: the current batch finishes and commits, no new batch starts.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    background: BackgroundWork = field(default_factory=lambda: BackgroundWork(16))
    # A dedicated connection LISTENing for new deliveries: they wake the loop at once.
    listen: Callable[[Worker], Coroutine[Any, Any, None]] | None = None

    def __post_init__(self) -> None:
        # Finished background work may leave more due (a backlog): look again at once.
        self.background.on_done = self.wake.set

    @property
    def context(self) -> SweepContext:
        return SweepContext(
            self.engine,
            self.sessions,
            self.clock,
            self.batch_size,
            self.settings,
            gateway=self.gateway,
            background=self.background,
        )

    async def run_sweep(self, sweep: Sweep, ctx: SweepContext | None = None) -> int:
        """Run one sweep until it finds less than a full batch. Failures are logged, not raised."""
        total = 0
        context = ctx or self.context
        if sweep.real_time_only and context.test_clock_id is not None:
            return total
        while True:
            try:
                done = await sweep.run(context)
            except Exception:
                WORKER_SWEEP_FAILURES.labels(sweep.name).inc()
                log.exception("sweep_failed", sweep=sweep.name, worker_id=self.worker_id)
                return total
            total += done
            if done:
                WORKER_SWEEP_ITEMS.labels(sweep.name).inc(done)
            # A short batch can still leave work: each call takes one step per row, and a row
            # far behind (a long outage, an advanced test clock) has several steps due.
            if done == 0 or self.stopping.is_set():
                return total

    async def tick(self, ctx: SweepContext | None = None) -> dict[str, int]:
        counts = {sweep.name: await self.run_sweep(sweep, ctx) for sweep in self.sweeps}
        done = {name: n for name, n in counts.items() if n}
        if done:
            log.info("worker_tick", worker_id=self.worker_id, processed=done)
        return counts

    async def run_due(
        self, ctx: SweepContext | None = None, max_rounds: int = 100
    ) -> dict[str, int]:
        """Run every sweep until nothing is due (tests and test clocks use this)."""
        totals: dict[str, int] = {}
        for _ in range(max_rounds):
            counts = await self.tick(ctx)
            await self.background.join()
            for name, n in counts.items():
                totals[name] = totals.get(name, 0) + n
            if not any(counts.values()):
                return totals
        raise RuntimeError(f"work still due after {max_rounds} rounds: {totals}")

    async def heartbeat(self, started_at: datetime, last_tick: dict[str, int]) -> None:
        now = self.clock.now()
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO worker_heartbeats "
                    "(worker_id, hostname, pid, started_at, last_seen_at, last_tick) "
                    "VALUES (:id, :host, :pid, :started, :now, CAST(:tick AS jsonb)) "
                    "ON CONFLICT (worker_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at, "
                    "last_tick = EXCLUDED.last_tick"
                ),
                {
                    "id": self.worker_id,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "started": started_at,
                    "now": now,
                    "tick": orjson.dumps(last_tick).decode(),
                },
            )
        WORKER_HEARTBEAT.set(now.timestamp())

    async def run_forever(self, stop: asyncio.Event) -> None:
        self.stopping = stop
        started_at = self.clock.now()
        log.info("worker_started", worker_id=self.worker_id, sweeps=[s.name for s in self.sweeps])
        listener = asyncio.create_task(self.listen(self)) if self.listen is not None else None
        while not stop.is_set():
            # Cleared before the tick, not after: a wake-up that comes during the tick (a
            # commit's NOTIFY) must start another one, not be lost until the next timeout.
            self.wake.clear()
            counts: dict[str, int] = {}
            try:
                counts = await self.tick()
                await self.heartbeat(started_at, counts)
            except Exception:
                # The database may be briefly unreachable; keep the loop alive and retry.
                log.exception("worker_tick_failed", worker_id=self.worker_id)
            stop_wait = asyncio.ensure_future(stop.wait())
            wake_wait = asyncio.ensure_future(self.wake.wait())
            _, pending = await asyncio.wait(
                {stop_wait, wake_wait},
                timeout=self.tick_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        await self.background.close()
        log.info("worker_stopped", worker_id=self.worker_id)
