"""Pausing and resuming: no billing while paused; the worker resumes or ends long pauses."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Plan
from billing.clock import Clock
from billing.core.lifecycle import (
    IllegalTransition,
    SubscriptionAction,
    SubscriptionStatus,
    transition,
)
from billing.core.periods import local_date, local_midnight
from billing.http.errors import ValidationFailed
from billing.invoicing.rules import DraftLine
from billing.invoicing.writer import finalize
from billing.subscriptions.cycle import draft_for
from billing.subscriptions.models import Subscription
from billing.subscriptions.rules import resume as resume_rule
from billing.subscriptions.schemas import PauseRequest, SubscriptionRead
from billing.subscriptions.service import (
    credit_unused_time,
    illegal,
    invoice_usage,
    locked,
    record_change,
)
from billing.subscriptions.state import schedule_columns, terms_of
from billing.usage.billing import bill_usage_so_far


async def pause_subscription(
    session: AsyncSession,
    *,
    sub_id: uuid.UUID,
    data: PauseRequest,
    clock: Clock,
    actor: str,
    pause_max_days: int,
    number_prefix: str,
) -> SubscriptionRead:
    sub, account, now = await locked(session, sub_id, clock)
    try:
        transition(SubscriptionStatus(sub.status), SubscriptionAction.PAUSE)
    except IllegalTransition as exc:
        raise illegal(exc) from exc
    starts = _period_end_instant(sub, account.timezone) if data.at_period_end else now
    latest = starts + timedelta(days=pause_max_days)
    if data.resumes_at is not None and not starts < data.resumes_at <= latest:
        raise ValidationFailed(
            f"resumes_at must be after the pause starts ({starts.isoformat()}) and at most "
            f"{pause_max_days} days later ({latest.isoformat()}).",
            param="resumes_at",
        )
    old = {"status": sub.status}
    usage: list[DraftLine] = []
    sub.resumes_at = data.resumes_at
    if data.at_period_end:
        sub.pause_at_period_end = True
        kind, event = "pause_scheduled", "subscription.updated"
    else:
        plan = await session.get_one(Plan, sub.plan_id)
        usage = await bill_usage_so_far(session, sub, plan, account.timezone, at=now)
        await credit_unused_time(session, sub, account, now, "paused")
        sub.status = SubscriptionStatus.PAUSED.value
        sub.paused_at = now
        sub.pause_at_period_end = False
        sub.next_action_at = data.resumes_at or latest
        kind, event = "paused", "subscription.paused"
    sub.updated_at = now
    await session.flush()
    await invoice_usage(session, sub, usage, at=now, number_prefix=number_prefix)
    return await _commit(session, sub, actor=actor, kind=kind, event=event, old=old, at=now)


def _period_end_instant(sub: Subscription, timezone: str) -> datetime:
    assert sub.current_period_end is not None
    return local_midnight(sub.current_period_end, timezone)


async def resume_subscription(
    session: AsyncSession,
    *,
    sub_id: uuid.UUID,
    clock: Clock,
    actor: str,
    number_prefix: str,
) -> SubscriptionRead:
    """Resume now: a new period starts today and is invoiced at once. A pause scheduled for the
    period end is simply called off."""
    sub, account, now = await locked(session, sub_id, clock)
    old = {"status": sub.status}
    if sub.status != SubscriptionStatus.PAUSED.value and sub.pause_at_period_end:
        sub.pause_at_period_end = False
        sub.resumes_at = None
        sub.updated_at = now
        return await _commit(
            session,
            sub,
            actor=actor,
            kind="pause_canceled",
            event="subscription.updated",
            old=old,
            at=now,
        )
    try:
        transition(SubscriptionStatus(sub.status), SubscriptionAction.RESUME)
    except IllegalTransition as exc:
        raise illegal(exc) from exc
    plan = await session.get_one(Plan, sub.plan_id)
    step = resume_rule(
        local_date(now, account.timezone),
        terms=terms_of(plan, sub.currency),
        quantity=sub.quantity,
    )
    for name, value in schedule_columns(step.schedule, account.timezone).items():
        setattr(sub, name, value)
    sub.paused_at = None
    sub.resumes_at = None
    sub.updated_at = now
    draft = draft_for(sub, step, now)
    await session.flush()
    if draft is not None:
        await finalize(session, [draft], number_prefix=number_prefix)
    return await _commit(
        session, sub, actor=actor, kind="resumed", event="subscription.resumed", old=old, at=now
    )


async def _commit(
    session: AsyncSession,
    sub: Subscription,
    *,
    actor: str,
    kind: str,
    event: str,
    old: dict[str, Any],
    at: datetime,
) -> SubscriptionRead:
    read = await record_change(
        session,
        sub,
        at=at,
        actor=actor,
        kind=kind,
        old=old,
        new=lambda data: {"status": sub.status, "resumes_at": data["resumes_at"]},
        event=event,
    )
    await session.commit()
    return read
