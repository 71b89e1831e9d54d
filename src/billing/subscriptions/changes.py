"""Plan and quantity changes: immediately with proration, or scheduled for the period end."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Plan
from billing.catalog.service import monthly_amount, resolve_plan_for_subscription
from billing.clock import Clock
from billing.core.lifecycle import (
    IllegalTransition,
    SubscriptionAction,
    SubscriptionStatus,
    transition,
)
from billing.core.periods import local_date
from billing.credits.service import grant
from billing.http.errors import InvalidState, ValidationFailed
from billing.invoicing.rules import DraftInvoice
from billing.invoicing.writer import finalize
from billing.subscriptions.cycle import line_of
from billing.subscriptions.models import Subscription
from billing.subscriptions.rules import change_now
from billing.subscriptions.schemas import SubscriptionRead, SubscriptionUpdate
from billing.subscriptions.service import illegal, locked, record_change
from billing.subscriptions.state import schedule_columns, schedule_of, terms_of
from billing.usage.billing import bill_usage_so_far


def _is_downgrade(
    old: Plan, old_quantity: int, new: Plan, new_quantity: int, currency: str
) -> bool:
    """By the recurring amount per period normalized to a month (monthly ↔ annual compare)."""
    return (
        monthly_amount(new, currency) * new_quantity < monthly_amount(old, currency) * old_quantity
    )


async def change_subscription(
    session: AsyncSession,
    *,
    sub_id: uuid.UUID,
    data: SubscriptionUpdate,
    clock: Clock,
    actor: str,
    number_prefix: str,
) -> SubscriptionRead:
    sub, account, now = await locked(session, sub_id, clock)
    status = SubscriptionStatus(sub.status)
    try:
        transition(status, SubscriptionAction.CHANGE_PLAN)
    except IllegalTransition as exc:
        raise illegal(exc) from exc
    old_plan = await session.get_one(Plan, sub.plan_id)
    new_plan = old_plan
    if data.plan_id is not None or data.plan_code is not None:
        new_plan = await resolve_plan_for_subscription(
            session, plan_id=data.plan_id, plan_code=data.plan_code
        )
        if new_plan.price_for(sub.currency) is None:
            raise ValidationFailed(
                f"Plan {new_plan.code} v{new_plan.version} has no price in {sub.currency}.",
                param="plan_id" if data.plan_id is not None else "plan_code",
            )
    new_quantity = data.quantity if data.quantity is not None else sub.quantity
    if new_plan.id == old_plan.id and new_quantity == sub.quantity:
        raise ValidationFailed(
            "The subscription already has this plan and quantity.",
            param="plan_id"
            if data.plan_id is not None
            else "plan_code"
            if data.plan_code is not None
            else "quantity",
        )
    downgrade = _is_downgrade(old_plan, sub.quantity, new_plan, new_quantity, sub.currency)
    proration = data.proration or ("at_period_end" if downgrade else "immediate")
    old = {"plan_id": str(old_plan.id), "quantity": sub.quantity}
    new = {"plan_id": str(new_plan.id), "quantity": new_quantity, "proration": proration}

    if status is SubscriptionStatus.TRIALING:
        # Nothing was charged yet: the new plan simply applies when the trial ends.
        sub.plan_id, sub.quantity, sub.pending_change = new_plan.id, new_quantity, None
        kind = "plan_changed"
    elif proration == "at_period_end":
        assert sub.current_period_end is not None
        sub.pending_change = {
            "plan_id": str(new_plan.id),
            "plan_code": new_plan.code,
            "plan_version": new_plan.version,
            "quantity": new_quantity,
            "effective_date": sub.current_period_end.isoformat(),
            "requested_at": now.isoformat(),
        }
        kind = "change_scheduled"
    else:
        today = local_date(now, account.timezone)
        await _change_now(
            session,
            sub,
            old_plan=old_plan,
            new_plan=new_plan,
            new_quantity=new_quantity,
            today=today,
            now=now,
            timezone=account.timezone,
            number_prefix=number_prefix,
        )
        kind = "plan_changed"
    sub.updated_at = now
    read = await record_change(
        session,
        sub,
        at=now,
        actor=actor,
        kind=kind,
        old=old,
        new=new,
        event="subscription.updated",
    )
    await session.commit()
    return read


async def _change_now(
    session: AsyncSession,
    sub: Subscription,
    *,
    old_plan: Plan,
    new_plan: Plan,
    new_quantity: int,
    today: date,
    now: datetime,
    timezone: str,
    number_prefix: str,
) -> None:
    usage = await bill_usage_so_far(session, sub, old_plan, timezone, at=now)
    change = change_now(
        schedule_of(sub),
        old=terms_of(old_plan, sub.currency),
        old_quantity=sub.quantity,
        new=terms_of(new_plan, sub.currency),
        new_quantity=new_quantity,
        on=today,
    )
    columns: dict[str, Any] = schedule_columns(change.schedule, timezone)
    for name, value in columns.items():
        setattr(sub, name, value)
    sub.plan_id, sub.quantity, sub.pending_change = new_plan.id, new_quantity, None
    if change.credit:
        await grant(
            session,
            account_id=sub.account_id,
            currency=sub.currency,
            amount=change.credit,
            reason=f"Proration credit: {old_plan.code} to {new_plan.code} on {today}",
            expires_at=None,
            at=now,
        )
    period = change.schedule.current_period
    assert period is not None
    draft = DraftInvoice(
        account_id=sub.account_id,
        currency=sub.currency,
        billing_reason="subscription_update",
        created_at=now,
        lines=tuple(line_of(c) for c in change.charges) + tuple(usage),
        subscription_id=sub.id,
        cycle_key=None,
        period_start=today,
        period_end=period.end,
    )
    await session.flush()
    await finalize(session, [draft], number_prefix=number_prefix)


async def cancel_pending_change(
    session: AsyncSession, *, sub_id: uuid.UUID, clock: Clock, actor: str
) -> SubscriptionRead:
    sub, _, now = await locked(session, sub_id, clock)
    if sub.pending_change is None:
        raise InvalidState(
            "The subscription has no scheduled change.",
            extra={"current_status": sub.status},
        )
    old = sub.pending_change
    sub.pending_change = None
    sub.updated_at = now
    read = await record_change(
        session,
        sub,
        at=now,
        actor=actor,
        kind="change_canceled",
        old=old,
        new=None,
        event="subscription.updated",
    )
    await session.commit()
    return read
