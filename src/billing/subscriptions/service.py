"""Subscription use cases for the API: create, read, list, history, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.accounts.queries import lock_account
from billing.catalog.models import Plan
from billing.catalog.service import resolve_plan_for_subscription
from billing.clock import Clock
from billing.clock.service import clock_for_account
from billing.core.lifecycle import (
    IllegalTransition,
    SubscriptionAction,
    SubscriptionStatus,
    transition,
)
from billing.core.periods import CALENDAR_INTERVALS, Interval, local_date
from billing.core.proration import cancel_credit
from billing.credits.service import grant
from billing.events.outbox import record_event
from billing.http.errors import InvalidState, NotFound, ValidationFailed
from billing.http.pagination import PageParams, paginate
from billing.invoicing.models import Invoice, InvoiceLine
from billing.invoicing.rules import DraftInvoice, DraftLine
from billing.invoicing.writer import finalize
from billing.subscriptions.cycle import draft_for
from billing.subscriptions.models import Subscription, SubscriptionHistory
from billing.subscriptions.rules import pending, start
from billing.subscriptions.schemas import SubscriptionCreate, SubscriptionRead
from billing.subscriptions.state import (
    history_row,
    schedule_columns,
    subscription_read,
    terms_of,
)
from billing.usage.billing import bill_usage_so_far


def illegal(exc: IllegalTransition) -> InvalidState:
    return InvalidState(
        f"Cannot {exc.action.value.replace('_', ' ')} a {exc.current.value} subscription.",
        extra={"current_status": exc.current.value},
    )


async def record_change(
    session: AsyncSession,
    sub: Subscription,
    *,
    plan: Plan | None = None,
    at: datetime,
    actor: str,
    kind: str,
    old: Any,
    new: Any | Callable[[dict[str, Any]], Any],
    event: str,
) -> SubscriptionRead:
    """Close a change to `sub`: flush it, then write its history row and its event (the API
    shape of the row, serialized once). `new` may be a function of that serialized shape.
    The plan is loaded after the flush unless given. The caller commits, after finalizing
    any invoice (which must come last)."""
    await session.flush()
    if plan is None:
        plan = await session.get_one(Plan, sub.plan_id)
    read = subscription_read(sub, plan)
    data = read.model_dump(mode="json")
    await session.execute(
        insert(SubscriptionHistory),
        [
            history_row(
                sub.id,
                at=at,
                kind=kind,
                actor=actor,
                old=old,
                new=new(data) if callable(new) else new,
            )
        ],
    )
    record_event(session, type=event, account_id=sub.account_id, data=data, at=at)
    return read


async def create_subscription(
    session: AsyncSession,
    *,
    data: SubscriptionCreate,
    clock: Clock,
    actor: str,
    number_prefix: str,
) -> SubscriptionRead:
    account = await lock_account(session, data.account_id)
    if account.status == "blocked":
        raise InvalidState(
            "The account is blocked for non-payment; settle its overdue invoices first.",
            param="account_id",
        )
    plan = await resolve_plan_for_subscription(
        session, plan_id=data.plan_id, plan_code=data.plan_code
    )
    plan_param = "plan_id" if data.plan_id is not None else "plan_code"
    if plan.price_for(account.currency) is None:
        raise ValidationFailed(
            f"Plan {plan.code} v{plan.version} has no price in {account.currency}, the "
            "account's currency. Add one in a new plan version.",
            param=plan_param,
        )
    anchor_day = None if data.billing_anchor == "start" else int(data.billing_anchor)
    if anchor_day is not None and Interval(plan.interval) not in CALENDAR_INTERVALS:
        raise ValidationFailed(
            "A day-of-month billing anchor needs a monthly or yearly plan.",
            param="billing_anchor",
        )
    account_clock = await clock_for_account(
        session, test_clock_id=account.test_clock_id, default=clock
    )
    now = account_clock.now()
    today = local_date(now, account.timezone)
    start_date = data.start_date or today
    if start_date < today:
        raise ValidationFailed(
            f"start_date {start_date} is in the past (today is {today} in {account.timezone}).",
            param="start_date",
        )
    trial_days = plan.trial_days if data.trial_days is None else data.trial_days
    terms = terms_of(plan, account.currency)

    sub = Subscription(
        id=uuid.uuid4(),
        account_id=account.id,
        plan_id=plan.id,
        currency=account.currency,
        quantity=data.quantity,
        start_date=start_date,
        canceled_at=None,
        ended_at=None,
        metadata_=data.metadata,
        created_at=now,
        updated_at=now,
    )
    step = None
    if start_date > today:
        columns = schedule_columns(pending(start_date, anchor_day), account.timezone)
    else:
        step = start(
            start_date,
            terms=terms,
            quantity=data.quantity,
            trial_days=trial_days,
            anchor_day=anchor_day,
        )
        columns = schedule_columns(step.schedule, account.timezone)
    for name, value in columns.items():
        setattr(sub, name, value)
    session.add(sub)
    read = await record_change(
        session,
        sub,
        plan=plan,
        at=now,
        actor=actor,
        kind="created",
        old=None,
        new={"status": sub.status, "plan_id": str(plan.id), "quantity": sub.quantity},
        event="subscription.created",
    )
    if step is not None:
        draft = draft_for(sub, step, now)
        if draft is not None:
            await finalize(session, [draft], number_prefix=number_prefix)
    await session.commit()
    return read


async def _load(session: AsyncSession, sub_id: uuid.UUID, *, lock: bool = False) -> Subscription:
    stmt = select(Subscription).where(Subscription.id == sub_id)
    if lock:
        stmt = stmt.with_for_update()
    sub = await session.scalar(stmt)
    if sub is None:
        raise NotFound(f"No subscription {sub_id}.", param="id")
    return sub


async def locked(
    session: AsyncSession, sub_id: uuid.UUID, clock: Clock
) -> tuple[Subscription, Account, datetime]:
    """A subscription and its account, both row-locked, and "now" by the account's clock."""
    sub = await _load(session, sub_id, lock=True)
    account = await lock_account(session, sub.account_id)
    now = (
        await clock_for_account(session, test_clock_id=account.test_clock_id, default=clock)
    ).now()
    return sub, account, now


async def credit_unused_time(
    session: AsyncSession, sub: Subscription, account: Account, now: datetime, why: str
) -> int:
    """Grant the unused part of the paid current period as account credit; returns it."""
    credit = await _unused_amount(session, sub, local_date(now, account.timezone))
    if credit > 0:
        await grant(
            session,
            account_id=sub.account_id,
            currency=sub.currency,
            amount=credit,
            reason=f"Unused time on subscription {sub.id} ({why})",
            expires_at=None,
            at=now,
        )
    return credit


async def get_subscription(session: AsyncSession, *, sub_id: uuid.UUID) -> SubscriptionRead:
    sub = await _load(session, sub_id)
    plan = await session.get_one(Plan, sub.plan_id)
    blocked = await _blocked_accounts(session, {sub.account_id})
    return subscription_read(sub, plan).model_copy(
        update={"service_blocked": sub.account_id in blocked}
    )


async def _blocked_accounts(session: AsyncSession, account_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """The accounts among `account_ids` that dunning has blocked for non-payment."""
    if not account_ids:
        return set()
    rows = await session.scalars(
        select(Account.id).where(Account.id.in_(account_ids), Account.status == "blocked")
    )
    return set(rows)


async def list_subscriptions(
    session: AsyncSession,
    *,
    page: PageParams,
    account_id: uuid.UUID | None,
    status: SubscriptionStatus | None,
    plan_id: uuid.UUID | None,
) -> tuple[list[SubscriptionRead], bool]:
    stmt = select(Subscription)
    if account_id is not None:
        stmt = stmt.where(Subscription.account_id == account_id)
    if status is not None:
        stmt = stmt.where(Subscription.status == status.value)
    if plan_id is not None:
        stmt = stmt.where(Subscription.plan_id == plan_id)
    subs, has_more = await paginate(session, stmt, Subscription, page)
    plans = {
        p.id: p
        for p in await session.scalars(select(Plan).where(Plan.id.in_({s.plan_id for s in subs})))
    }
    blocked = await _blocked_accounts(session, {s.account_id for s in subs})
    return [
        subscription_read(s, plans[s.plan_id]).model_copy(
            update={"service_blocked": s.account_id in blocked}
        )
        for s in subs
    ], has_more


async def history(session: AsyncSession, *, sub_id: uuid.UUID) -> list[SubscriptionHistory]:
    await _load(session, sub_id)
    rows = await session.scalars(
        select(SubscriptionHistory)
        .where(SubscriptionHistory.subscription_id == sub_id)
        .order_by(SubscriptionHistory.at, SubscriptionHistory.seq)
    )
    return list(rows)


async def cancel_subscription(
    session: AsyncSession,
    *,
    sub_id: uuid.UUID,
    immediately: bool,
    prorate: bool,
    clock: Clock,
    actor: str,
    number_prefix: str,
) -> SubscriptionRead:
    sub, account, now = await locked(session, sub_id, clock)
    plan = await session.get_one(Plan, sub.plan_id)
    status = SubscriptionStatus(sub.status)
    try:
        canceled = transition(status, SubscriptionAction.CANCEL)
    except IllegalTransition as exc:
        raise illegal(exc) from exc
    old = {"status": sub.status, "cancel_at_period_end": sub.cancel_at_period_end}

    if not immediately and status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
        sub.cancel_at_period_end = True
        sub.canceled_at = now
        event = "subscription.updated"
    else:
        usage = await bill_usage_so_far(session, sub, plan, account.timezone, at=now)
        if prorate and status is SubscriptionStatus.ACTIVE:
            await credit_unused_time(session, sub, account, now, "canceled")
        sub.status = canceled.value
        sub.canceled_at = now
        sub.ended_at = now
        sub.next_action_at = None
        event = "subscription.canceled"
    sub.updated_at = now
    read = await record_change(
        session,
        sub,
        plan=plan,
        at=now,
        actor=actor,
        kind="canceled" if sub.status == canceled.value else "cancel_scheduled",
        old=old,
        new={"status": sub.status, "cancel_at_period_end": sub.cancel_at_period_end},
        event=event,
    )
    if immediately:
        await invoice_usage(session, sub, usage, at=now, number_prefix=number_prefix)
    await session.commit()
    return read


async def invoice_usage(
    session: AsyncSession,
    sub: Subscription,
    usage: list[DraftLine],
    *,
    at: datetime,
    number_prefix: str,
) -> None:
    """Invoice usage billed before the period's end (a pause or an immediate cancellation),
    when it comes to anything. Takes the invoice-number lock: call it last."""
    if not any(line.amount for line in usage):
        return
    await finalize(
        session,
        [
            DraftInvoice(
                account_id=sub.account_id,
                currency=sub.currency,
                billing_reason="subscription_usage",
                created_at=at,
                lines=tuple(usage),
                subscription_id=sub.id,
                period_start=sub.current_period_start,
                period_end=sub.current_period_end,
            )
        ],
        number_prefix=number_prefix,
    )


async def _unused_amount(session: AsyncSession, sub: Subscription, today: Any) -> int:
    """The unused part of what was charged in advance for the current period."""
    if sub.current_period_start is None or sub.current_period_end is None:
        return 0
    charged = await session.scalar(
        select(InvoiceLine.amount)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(
            Invoice.subscription_id == sub.id,
            Invoice.cycle_key == sub.current_period_start.isoformat(),
            Invoice.status != "void",
            InvoiceLine.kind == "subscription",
        )
    )
    if not charged:
        return 0
    from billing.core.periods import BillingPeriod

    period = BillingPeriod(sub.current_period_start, sub.current_period_end)
    return cancel_credit(period, today, int(charged))
