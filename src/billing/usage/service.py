"""Usage use cases for the API: record events (one, or a batch), and a period's summary."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.catalog.models import Plan
from billing.clock import Clock
from billing.core.periods import BillingPeriod, Interval, period_bounds_utc, period_for_index
from billing.http.errors import DomainError, InvalidState, NotFound, ValidationFailed
from billing.subscriptions.models import Subscription
from billing.usage.aggregate import totals
from billing.usage.billing import metric_windows, price, tier_details
from billing.usage.components import metered_components
from billing.usage.ingest import record_events
from billing.usage.models import UsageBilledPeriod, UsageEvent
from billing.usage.rules import PeriodError, parse_period
from billing.usage.schemas import (
    EventIn,
    EventStatus,
    Invalid,
    MetricUsageRead,
    Reason,
    TierRead,
    UsageEventRead,
    UsageSummaryRead,
)


async def record_batch(
    session: AsyncSession,
    events: Sequence[EventIn | Invalid],
    *,
    clock: Clock,
    future_tolerance: timedelta,
    late_days: int,
) -> dict[str, Any]:
    """The batch answer as plain JSON-ready data (a 10,000-event answer skips the models)."""
    results = await record_events(
        session, events, clock=clock, future_tolerance=future_tolerance, late_days=late_days
    )
    counts = {status.value: 0 for status in EventStatus}
    for result in results:
        counts[result["status"]] += 1
    return {
        "object": "usage_batch",
        "accepted": counts[EventStatus.ACCEPTED.value],
        "duplicates": counts[EventStatus.DUPLICATE.value],
        "rejected": counts[EventStatus.REJECTED.value],
        "results": results,
    }


class KeyReused(DomainError):
    code = "idempotency_key_reused"


_STATES = {
    Reason.SUBSCRIPTION_NOT_STARTED,
    Reason.SUBSCRIPTION_PAUSED,
    Reason.SUBSCRIPTION_CANCELED,
}


async def record_one(
    session: AsyncSession,
    event: EventIn,
    *,
    clock: Clock,
    future_tolerance: timedelta,
    late_days: int,
) -> UsageEventRead:
    """One event; a rejection is raised as the matching API error (with its `reason`)."""
    [result] = await record_events(
        session, [event], clock=clock, future_tolerance=future_tolerance, late_days=late_days
    )
    if result["status"] == EventStatus.REJECTED.value:
        reason = Reason(result["reason"])
        message: str = result["message"]
        param = result.get("field") or "body"
        extra = {"reason": reason.value}
        if reason is Reason.SUBSCRIPTION_NOT_FOUND:
            raise NotFound(message, param=param, extra=extra)
        if reason in _STATES:
            raise InvalidState(message, param=param, extra=extra)
        if reason is Reason.IDEMPOTENCY_KEY_REUSED:
            raise KeyReused(message, param=param, extra=extra)
        raise ValidationFailed(message, param=param, extra=extra)
    stored = await session.scalar(
        select(UsageEvent.occurred_at).where(UsageEvent.idempotency_key == event["idempotency_key"])
    )
    await session.rollback()
    return UsageEventRead(
        status=EventStatus(result["status"]),
        subscription_id=uuid.UUID(event["subscription_id"]),
        metric=event["metric"],
        quantity=event["quantity"],
        timestamp=stored or event.get("timestamp"),
        idempotency_key=event["idempotency_key"],
        properties=event.get("properties"),
    )


# --------------------------------------------------------------------------- summary


async def usage_summary(
    session: AsyncSession, *, sub_id: uuid.UUID, period: str
) -> UsageSummaryRead:
    try:
        wanted = parse_period(period)
    except PeriodError as exc:
        raise ValidationFailed(str(exc), param="period") from exc
    sub = await session.get(Subscription, sub_id)
    if sub is None:
        raise NotFound(f"No subscription {sub_id}.", param="id")
    account = await session.get_one(Account, sub.account_id)
    plan = await session.get_one(Plan, sub.plan_id)
    if isinstance(wanted, BillingPeriod):
        chosen = wanted
    elif wanted == "current":
        if sub.current_period_start is None or sub.current_period_end is None:
            raise InvalidState(
                f"The subscription is {sub.status} and has no current period yet.",
                param="period",
            )
        chosen = BillingPeriod(sub.current_period_start, sub.current_period_end)
    else:
        chosen, plan = await _previous(session, sub, plan)
    trial = (
        BillingPeriod(sub.trial_start, sub.trial_end)
        if sub.trial_start is not None and sub.trial_end is not None
        else None
    )
    billable = not (trial and trial.start <= chosen.start and chosen.end <= trial.end)
    start_at, end_at = period_bounds_utc(chosen, account.timezone)
    components = metered_components(plan, sub.currency)
    try:
        windows = metric_windows(sub.id, components, start_at, end_at)
    except PeriodError as exc:
        raise ValidationFailed(str(exc), param="period") from exc
    found = await totals(session, windows)
    metrics = []
    for component, metric_totals in zip(components.values(), found, strict=True):
        priced = price(component, metric_totals)
        metrics.append(
            MetricUsageRead(
                metric=component.metric,
                aggregation=component.aggregation,
                property=component.property,
                model=component.price.model,
                value=priced.quantity,
                events=priced.events,
                amount=priced.amount if billable else 0,
                tiers=[
                    TierRead.model_validate(tier)
                    for tier in (tier_details(priced.tiers) if billable else [])
                ],
            )
        )
    return UsageSummaryRead(
        subscription_id=sub.id,
        period_start=chosen.start,
        period_end=chosen.end,
        currency=sub.currency,
        billable=billable,
        amount=sum(m.amount for m in metrics),
        metrics=metrics,
    )


async def _previous(
    session: AsyncSession, sub: Subscription, plan: Plan
) -> tuple[BillingPeriod, Plan]:
    """The period before the current one, with the plan version that priced it."""
    start = sub.current_period_start
    if start is not None:
        billed = await session.scalar(
            select(UsageBilledPeriod).where(
                UsageBilledPeriod.subscription_id == sub.id, UsageBilledPeriod.period_end == start
            )
        )
        if billed is not None:
            billed_plan = await session.get_one(Plan, billed.plan_id)
            return BillingPeriod(billed.period_start, billed.period_end), billed_plan
        if sub.trial_start is not None and sub.trial_end == start:
            return BillingPeriod(sub.trial_start, sub.trial_end), plan
        if sub.cycle_anchor is not None and sub.period_index >= 1:
            period = period_for_index(
                sub.cycle_anchor,
                Interval(plan.interval),
                plan.interval_count,
                sub.period_index - 1,
                day_of_month=sub.anchor_day,
            )
            return period, plan
        first_day = sub.trial_end or sub.start_date
        if sub.cycle_anchor is not None and sub.period_index == 0 and first_day < start:
            return BillingPeriod(first_day, start), plan  # a calendar-billed short period
    raise InvalidState("The subscription has no previous period.", param="period")
