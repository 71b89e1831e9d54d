"""Between rows and rules: a subscription row's schedule, and the API shape of a row."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from billing.catalog.models import Plan
from billing.core.lifecycle import SubscriptionStatus
from billing.core.periods import BillingPeriod, Interval, local_midnight
from billing.subscriptions.models import Subscription
from billing.subscriptions.rules import Schedule, Terms
from billing.subscriptions.schemas import SubscriptionRead


def _next_action_on(sub: Subscription) -> date | None:
    """When a row's schedule next needs the worker (a paused row is timed by resumes_at)."""
    if sub.status == SubscriptionStatus.PENDING.value:
        return sub.start_date
    if sub.status in (SubscriptionStatus.ACTIVE.value, SubscriptionStatus.TRIALING.value):
        return sub.current_period_end
    return None


def schedule_of(sub: Subscription) -> Schedule:
    period = (
        BillingPeriod(sub.current_period_start, sub.current_period_end)
        if sub.current_period_start is not None and sub.current_period_end is not None
        else None
    )
    trial = (
        BillingPeriod(sub.trial_start, sub.trial_end)
        if sub.trial_start is not None and sub.trial_end is not None
        else None
    )
    return Schedule(
        status=SubscriptionStatus(sub.status),
        cycle_anchor=sub.cycle_anchor,
        anchor_day=sub.anchor_day,
        period_index=sub.period_index,
        current_period=period,
        trial=trial,
        cancel_at_period_end=sub.cancel_at_period_end,
        next_action_on=_next_action_on(sub),
        pause_at_period_end=sub.pause_at_period_end,
    )


def schedule_columns(schedule: Schedule, timezone: str) -> dict[str, Any]:
    """The subscription columns a schedule sets (next_action_at in UTC from the local date)."""
    period = schedule.current_period
    trial = schedule.trial
    return {
        "status": schedule.status.value,
        "cycle_anchor": schedule.cycle_anchor,
        "anchor_day": schedule.anchor_day,
        "period_index": schedule.period_index,
        "current_period_start": period.start if period else None,
        "current_period_end": period.end if period else None,
        "trial_start": trial.start if trial else None,
        "trial_end": trial.end if trial else None,
        "cancel_at_period_end": schedule.cancel_at_period_end,
        "pause_at_period_end": schedule.pause_at_period_end,
        "next_action_at": (
            local_midnight(schedule.next_action_on, timezone)
            if schedule.next_action_on is not None
            else None
        ),
    }


def terms_of(plan: Plan, currency: str) -> Terms:
    price = plan.price_for(currency)
    if price is None:
        raise LookupError(f"plan {plan.id} has no price in {currency}")
    return Terms(
        plan_name=plan.name,
        interval=Interval(plan.interval),
        interval_count=plan.interval_count,
        unit_amount=price.unit_amount,
    )


def subscription_read(sub: Subscription, plan: Plan) -> SubscriptionRead:
    return SubscriptionRead(
        id=sub.id,
        account_id=sub.account_id,
        plan_id=sub.plan_id,
        plan_code=plan.code,
        plan_version=plan.version,
        currency=sub.currency,
        quantity=sub.quantity,
        status=SubscriptionStatus(sub.status),
        start_date=sub.start_date,
        billing_anchor="start" if sub.anchor_day is None else sub.anchor_day,
        current_period_start=sub.current_period_start,
        current_period_end=sub.current_period_end,
        trial_start=sub.trial_start,
        trial_end=sub.trial_end,
        cancel_at_period_end=sub.cancel_at_period_end,
        canceled_at=sub.canceled_at,
        ended_at=sub.ended_at,
        pending_change=sub.pending_change,
        pause_at_period_end=sub.pause_at_period_end,
        paused_at=sub.paused_at,
        resumes_at=sub.resumes_at,
        metadata=sub.metadata_,
        created_at=sub.created_at,
        updated_at=sub.updated_at,
    )


def history_row(
    subscription_id: uuid.UUID, *, at: datetime, kind: str, actor: str, old: Any, new: Any
) -> dict[str, Any]:
    """One subscription_history row, for a bulk or an executemany insert."""
    return {
        "id": uuid.uuid4(),
        "subscription_id": subscription_id,
        "at": at,
        "kind": kind,
        "actor": actor,
        "old": old,
        "new": new,
    }
