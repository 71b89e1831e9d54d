"""The registry of sweeps the worker runs, in order. Each domain adds its own here."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select

from billing.clock import FrozenClock
from billing.credits.service import expire_credits
from billing.events.service import purge_old_events
from billing.http.idempotency import purge_expired
from billing.observability.metrics import SUBSCRIPTIONS_ACTIVE
from billing.subscriptions.cycle import run_due_steps
from billing.subscriptions.models import Subscription
from billing.subscriptions.trial_notice import send_trial_notices
from billing.webhooks.delivery import count_backlog, deliver_due
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


async def trial_notices(ctx: SweepContext) -> int:
    async with ctx.sessions() as session:
        return await send_trial_notices(
            session, as_of=ctx.clock.now(), test_clock_id=ctx.test_clock_id, limit=ctx.batch_size
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


async def purge_events(ctx: SweepContext) -> int:
    if ctx.test_clock_id is not None:
        return 0
    return await purge_old_events(
        ctx.engine,
        now=ctx.clock.now(),
        retention_days=ctx.settings.event_retention_days,
        limit=ctx.batch_size,
    )


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
        # Before the steps: a trial that ends in this batch still gets its notice first.
        Sweep("trial_notices", trial_notices),
        Sweep("subscriptions_due", subscriptions_due),
        Sweep("credits_expired", credits_expired),
        # Last of the due work, so the events written above go out in this tick.
        Sweep("webhook_deliveries", deliver_due),
        Sweep("idempotency_keys_expired", purge_idempotency_keys),
        Sweep("events_expired", purge_events),
        Sweep("subscriptions_active_gauge", count_active_subscriptions),
        Sweep("outbox_backlog_gauge", count_backlog),
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
