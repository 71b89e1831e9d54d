"""The registry of sweeps the worker runs, in order. Each domain adds its own here."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import FrozenClock
from billing.credits.service import expire_credits
from billing.dunning.service import run_due_steps as run_dunning_steps
from billing.events.service import purge_old_events
from billing.http.idempotency import purge_expired
from billing.notifications.service import fan_out_events, send_due_emails
from billing.notifications.smtp import parse_smtp_url
from billing.observability.metrics import SUBSCRIPTIONS_ACTIVE
from billing.payments import charges
from billing.payments.gateways import ChargeResult, PaymentGateway
from billing.payments.service import policy_of
from billing.subscriptions.cycle import run_due_steps
from billing.subscriptions.models import Subscription
from billing.subscriptions.trial_notice import send_trial_notices
from billing.usage.sweeps import usage_late, usage_rollup
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
            pause_max_days=ctx.settings.pause_max_days,
        )


class _Claim(Protocol):
    async def __call__(
        self, session: AsyncSession, *, as_of: datetime, test_clock_id: uuid.UUID | None, limit: int
    ) -> Sequence[charges.Attempt]: ...


class _Payment(Protocol):
    @property
    def payment_id(self) -> uuid.UUID: ...


_P = TypeVar("_P", bound=_Payment)


async def _record_all(
    ctx: SweepContext,
    items: Sequence[_P],
    ask: Callable[[PaymentGateway, _P], Awaitable[ChargeResult | None]],
    *,
    at: datetime,
) -> int:
    """Ask the gateway about each committed payment (no transaction open), then record."""
    assert ctx.gateway is not None
    policy = policy_of(ctx.settings)
    for item in items:
        result = await ask(ctx.gateway, item)
        async with ctx.sessions() as session:
            await charges.record_outcome(
                session, payment_id=item.payment_id, result=result, at=at, policy=policy
            )
    return len(items)


async def _charge_claimed(ctx: SweepContext, claim: _Claim) -> int:
    if ctx.gateway is None:
        return 0
    async with ctx.sessions() as session:
        attempts = await claim(
            session, as_of=ctx.clock.now(), test_clock_id=ctx.test_clock_id, limit=ctx.batch_size
        )
    return await _record_all(ctx, attempts, charges.charge, at=ctx.clock.now())


async def payments_first_attempt(ctx: SweepContext) -> int:
    """Charge freshly finalized invoices of accounts with a default payment method."""
    return await _charge_claimed(ctx, charges.claim_first_attempts)


async def payments_retry(ctx: SweepContext) -> int:
    return await _charge_claimed(ctx, charges.claim_retries)


async def payments_reconcile(ctx: SweepContext) -> int:
    """Pending (a crash) or unknown (a timeout) payments: ask the gateway what happened."""
    if ctx.gateway is None:
        return 0
    as_of = ctx.clock.now()
    async with ctx.sessions() as session:
        stale = await charges.claim_stale(
            session,
            as_of=as_of,
            test_clock_id=ctx.test_clock_id,
            limit=ctx.batch_size,
            older_than=timedelta(seconds=ctx.settings.payment_reconcile_after_seconds),
        )
    return await _record_all(ctx, stale, charges.reconcile, at=as_of)


async def dunning_steps_due(ctx: SweepContext) -> int:
    async with ctx.sessions() as session:
        return await run_dunning_steps(
            session,
            as_of=ctx.clock.now(),
            test_clock_id=ctx.test_clock_id,
            limit=ctx.batch_size,
            schedule=policy_of(ctx.settings).dunning_schedule,
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
    return await purge_expired(ctx.engine, ctx.batch_size)


async def emails_fan_out(ctx: SweepContext) -> int:
    async with ctx.sessions() as session:
        return await fan_out_events(
            session,
            now=ctx.clock.now(),
            limit=ctx.batch_size,
            operator_email=ctx.settings.operator_email,
        )


async def emails_send(ctx: SweepContext) -> int:
    settings = ctx.settings
    smtp = parse_smtp_url(settings.smtp_url) if settings.smtp_url else None
    async with ctx.sessions() as session:
        return await send_due_emails(
            session,
            now=ctx.clock.now(),
            limit=settings.email_batch_size,
            smtp=smtp,
            sender=settings.email_from,
            smtp_timeout=settings.smtp_timeout_seconds,
        )


async def purge_events(ctx: SweepContext) -> int:
    return await purge_old_events(
        ctx.engine,
        now=ctx.clock.now(),
        retention_days=ctx.settings.event_retention_days,
        limit=ctx.batch_size,
    )


async def count_active_subscriptions(ctx: SweepContext) -> int:
    """Not a sweep of due rows: refreshes the subscriptions_active gauge every tick."""
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
        Sweep("usage_late", usage_late),
        Sweep("payments_first_attempt", payments_first_attempt),
        Sweep("payments_retry", payments_retry),
        Sweep("payments_reconcile", payments_reconcile),
        Sweep("dunning_steps", dunning_steps_due),
        # Rollups are a cache of the event log, not tied to any clock.
        Sweep("usage_rollup", usage_rollup, real_time_only=True),
        Sweep("credits_expired", credits_expired),
        # Last of the due work, so the events written above go out in this tick.
        Sweep("webhook_deliveries", deliver_due, real_time_only=True),
        Sweep("idempotency_keys_expired", purge_idempotency_keys, real_time_only=True),
        # Emails are not time-critical and not tied to a test clock: the regular tick handles
        # every account's events, test-clock accounts included (logged unless SMTP_URL is set).
        Sweep("emails_fan_out", emails_fan_out, real_time_only=True),
        Sweep("emails_send", emails_send, real_time_only=True),
        Sweep("events_expired", purge_events, real_time_only=True),
        Sweep("subscriptions_active_gauge", count_active_subscriptions, real_time_only=True),
        Sweep("outbox_backlog_gauge", count_backlog, real_time_only=True),
    ]


def for_test_clock(ctx: SweepContext, *, test_clock_id: uuid.UUID, as_of: datetime) -> SweepContext:
    # background=None: under a test clock a sweep does its work itself before returning.
    return dataclasses.replace(
        ctx, clock=FrozenClock(as_of), test_clock_id=test_clock_id, background=None
    )
