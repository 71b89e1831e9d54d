"""The worker loop: a registry of sweeps, each claiming due rows with FOR UPDATE SKIP LOCKED.

A sweep processes one batch per call, commits it, and returns how many rows it handled. The
loop calls each sweep until it comes back short, so a backlog drains quickly; any number of
workers can run at once because every claim skips rows another worker holds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

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


@dataclass(frozen=True)
class Sweep:
    name: str
    run: Callable[[SweepContext], Awaitable[int]]


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

    @property
    def context(self) -> SweepContext:
        return SweepContext(
            self.engine,
            self.sessions,
            self.clock,
            self.batch_size,
            self.settings,
            gateway=self.gateway,
        )

    async def run_sweep(self, sweep: Sweep, ctx: SweepContext | None = None) -> int:
        """Run one sweep until it finds less than a full batch. Failures are logged, not raised."""
        total = 0
        context = ctx or self.context
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
        while not stop.is_set():
            counts: dict[str, int] = {}
            try:
                counts = await self.tick()
                await self.heartbeat(started_at, counts)
            except Exception:
                # The database may be briefly unreachable; keep the loop alive and retry.
                log.exception("worker_tick_failed", worker_id=self.worker_id)
            self.wake.clear()
            stop_wait = asyncio.ensure_future(stop.wait())
            wake_wait = asyncio.ensure_future(self.wake.wait())
            _, pending = await asyncio.wait(
                {stop_wait, wake_wait},
                timeout=self.tick_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
        log.info("worker_stopped", worker_id=self.worker_id)
