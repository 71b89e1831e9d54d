"""Advancing a test clock: every due step for its accounts, in time order, then the new time."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from billing.clock.models import TestClock
from billing.clock.service import check_advance, next_due
from billing.http.errors import NotFound
from billing.runtime import Runtime
from billing.worker.sweeps import for_test_clock


async def advance_clock(runtime: Runtime, *, clock_id: uuid.UUID, target: datetime) -> TestClock:
    worker = runtime.worker()
    async with runtime.sessions() as lock_session:
        # Held until the end: a second advance of the same clock waits for this one.
        test_clock = await lock_session.scalar(
            select(TestClock).where(TestClock.id == clock_id).with_for_update()
        )
        if test_clock is None:
            raise NotFound(f"No test clock {clock_id}.", param="id")
        check_advance(test_clock.frozen_time, target)
        previous: datetime | None = None
        while True:
            async with runtime.sessions() as session:
                due = await next_due(
                    session,
                    clock_id=clock_id,
                    until=target,
                    reconcile_after_seconds=runtime.settings.payment_reconcile_after_seconds,
                )
            if due is None:
                break
            ctx = for_test_clock(worker.context, test_clock_id=clock_id, as_of=due)
            done = await worker.run_due(ctx)
            if due == previous and not any(done.values()):
                raise RuntimeError(f"test clock {clock_id}: work due at {due} did not complete")
            previous = due
        await worker.run_due(for_test_clock(worker.context, test_clock_id=clock_id, as_of=target))
        test_clock.frozen_time = target
        await lock_session.commit()
        return test_clock
