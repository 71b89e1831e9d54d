"""The worker's usage sweeps: fold new events into the rollups; bill late usage."""

from __future__ import annotations

from billing.usage.aggregate import roll_up
from billing.usage.billing import bill_late_usage
from billing.worker.runner import SweepContext


async def usage_rollup(ctx: SweepContext) -> int:
    # Not tied to any clock: rollups are a cache of the event log. Advancing a test clock
    # leaves them to the regular worker (the sweep is registered `real_time_only`).
    async with ctx.sessions() as session:
        return await roll_up(ctx.engine, session)


async def usage_late(ctx: SweepContext) -> int:
    async with ctx.sessions() as session:
        return await bill_late_usage(
            ctx.engine,
            session,
            as_of=ctx.clock.now(),
            test_clock_id=ctx.test_clock_id,
            limit=ctx.batch_size,
            number_prefix=ctx.settings.invoice_number_prefix,
        )
