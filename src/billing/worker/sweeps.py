"""The registry of sweeps the worker runs, in order. Each domain adds its own here."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select

from billing.clock import FrozenClock
from billing.credits.service import expire_credits
from billing.http.idempotency import purge_expired
from billing.observability.metrics import SUBSCRIPTIONS_ACTIVE
from billing.subscriptions.cycle import run_due_steps
from billing.subscriptions.models import Subscription
from billing.usage.sweeps import usage_late, usage_rollup
from billing.worker.runner import Sweep, SweepContext


async def subscriptions_due(ctx: SweepContext) -> int:
    async with ctx.sessions() as session:
        return await run_due_steps(
            session,
            as_of=ctx.clock.now(),
            test_clock_id=ctx.test_clock_id,
            limit=ctx.batch_size,
            number_prefix=ctx.settings.invoice_number_prefix,
        )


async def credits_expired(ctx: SweepContext) -> int:
    async with ctx.sessions() as session:
        return await expire_credits(
            session, as_of=ctx.clock.now(), test_clock_id=ctx.test_clock_id, limit=ctx.batch_size
        )


async def purge_idempotency_keys(ctx: SweepContext) -> int:
    if ctx.test_clock_id is not None:
        return 0
    return await purge_expired(ctx.engine, ctx.batch_size)


async def count_active_subscriptions(ctx: SweepContext) -> int:
    """Not a sweep of due rows: refreshes the subscriptions_active gauge every tick."""
    if ctx.test_clock_id is None:
        async with ctx.sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(Subscription)
                .where(Subscription.status.in_(("active", "trialing")))
            )
        SUBSCRIPTIONS_ACTIVE.set(count or 0)
    return 0


def default_sweeps() -> list[Sweep]:
    return [
        Sweep("subscriptions_due", subscriptions_due),
        Sweep("usage_late", usage_late),
        Sweep("usage_rollup", usage_rollup),
        Sweep("credits_expired", credits_expired),
        Sweep("idempotency_keys_expired", purge_idempotency_keys),
        Sweep("subscriptions_active_gauge", count_active_subscriptions),
    ]


def for_test_clock(ctx: SweepContext, *, test_clock_id: uuid.UUID, as_of: datetime) -> SweepContext:
    return SweepContext(
        engine=ctx.engine,
        sessions=ctx.sessions,
        clock=FrozenClock(as_of),
        batch_size=ctx.batch_size,
        settings=ctx.settings,
        test_clock_id=test_clock_id,
    )
