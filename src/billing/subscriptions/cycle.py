"""The billing clock's main sweep: starts, trial ends, renewals and cancellations that are due.

One call claims a batch of due subscriptions (FOR UPDATE SKIP LOCKED), works out each one's
next step with the pure rules, and writes every result with a few bulk statements in one
transaction: the renewal invoices (numbered, credit applied, events written), the advanced
subscription rows, their history and events. A crash rolls the whole batch back; the next run
does it again, and the unique (subscription, cycle) key makes double billing impossible.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.catalog.models import Plan
from billing.core.lifecycle import SubscriptionStatus
from billing.db.bulk import bulk_insert, bulk_update
from billing.events.models import Event
from billing.invoicing.rules import DraftInvoice, DraftLine
from billing.invoicing.writer import finalize
from billing.subscriptions.models import Subscription, SubscriptionHistory
from billing.subscriptions.rules import Charge, Step, StepKind, next_step
from billing.subscriptions.state import (
    schedule_columns,
    schedule_of,
    subscription_read,
    terms_of,
)
from billing.usage.billing import UsageWindow, closing_window, usage_lines, with_usage_lines

WORKER_ACTOR = "worker"


def draft_for(
    sub: Subscription, step: Step, at: datetime, reason: str | None = None
) -> DraftInvoice | None:
    if step.cycle_key is None or not step.charges:
        return None
    first = step.charges[0].period
    return DraftInvoice(
        account_id=sub.account_id,
        currency=sub.currency,
        billing_reason=reason
        or ("subscription_create" if step.kind is StepKind.START else "subscription_cycle"),
        created_at=at,
        lines=tuple(line_of(c) for c in step.charges),
        subscription_id=sub.id,
        cycle_key=step.cycle_key,
        period_start=first.start,
        period_end=first.end,
    )


def line_of(charge: Charge) -> DraftLine:
    return DraftLine(
        kind=charge.kind,
        description=charge.description,
        amount=charge.amount,
        quantity=Decimal(charge.quantity),
        unit_amount=charge.unit_amount,
        period_start=charge.period.start,
        period_end=charge.period.end,
    )


@dataclass(frozen=True, slots=True)
class Claimed:
    # A plain view of the row (attribute access like the ORM object, without its cost).
    sub: SimpleNamespace
    timezone: str


_COLUMNS = [c for c in Subscription.__table__.c]


async def claim_due(
    session: AsyncSession, *, as_of: datetime, test_clock_id: uuid.UUID | None, limit: int
) -> list[Claimed]:
    table = Subscription.__table__
    stmt = (
        select(*_COLUMNS, Account.timezone.label("account_timezone"))
        .join(Account, Account.id == table.c.account_id)
        .where(table.c.next_action_at <= as_of)
        .order_by(table.c.next_action_at)
        .limit(limit)
        .with_for_update(of=table, skip_locked=True)
    )
    stmt = stmt.where(
        Account.test_clock_id.is_(None)
        if test_clock_id is None
        else Account.test_clock_id == test_clock_id
    )
    claimed = []
    for row in (await session.execute(stmt)).mappings():
        values = dict(row)
        timezone = values.pop("account_timezone")
        values["metadata_"] = values.pop("metadata")
        claimed.append(Claimed(sub=SimpleNamespace(**values), timezone=timezone))
    return claimed


# The columns a step may change, written back with one bulk UPDATE.
_UPDATED = (
    "status",
    "cycle_anchor",
    "anchor_day",
    "period_index",
    "current_period_start",
    "current_period_end",
    "trial_start",
    "trial_end",
    "cancel_at_period_end",
    "next_action_at",
    "canceled_at",
    "ended_at",
    "updated_at",
)


async def run_due_steps(
    session: AsyncSession,
    *,
    as_of: datetime,
    test_clock_id: uuid.UUID | None,
    limit: int,
    number_prefix: str,
) -> int:
    """Process one batch of due subscriptions in the caller's session, then commit."""
    claimed = await claim_due(session, as_of=as_of, test_clock_id=test_clock_id, limit=limit)
    if not claimed:
        await session.rollback()
        return 0
    plan_ids = {c.sub.plan_id for c in claimed}
    plans = {p.id: p for p in await session.scalars(select(Plan).where(Plan.id.in_(plan_ids)))}
    terms = {}

    drafts: list[DraftInvoice] = []
    windows: list[UsageWindow] = []  # closing periods whose usage is billed (in arrears)
    updates: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for item in claimed:
        sub = item.sub
        plan = plans[sub.plan_id]
        key = (plan.id, sub.currency)
        if key not in terms:
            terms[key] = terms_of(plan, sub.currency)
        at = sub.next_action_at
        step = next_step(
            schedule_of(sub),  # type: ignore[arg-type]
            terms=terms[key],
            quantity=sub.quantity,
            start_date=sub.start_date,
            trial_days=(sub.trial_end - sub.trial_start).days
            if sub.trial_start and sub.trial_end
            else plan.trial_days,
        )
        old_status = sub.status
        columns = schedule_columns(step.schedule, item.timezone)
        columns["updated_at"] = at
        if step.kind is StepKind.CANCEL:
            columns["canceled_at"] = sub.canceled_at or at
            columns["ended_at"] = at
        if step.kind in (StepKind.RENEW, StepKind.CANCEL):  # before the row moves on
            ending = step.kind is StepKind.CANCEL
            window = closing_window(sub, plans[sub.plan_id], item.timezone, ending=ending, at=at)
            if window is not None:
                windows.append(window)
        for name, value in columns.items():
            setattr(sub, name, value)
        updates.append({"id": sub.id} | {name: getattr(sub, name) for name in _UPDATED})
        draft = draft_for(sub, step, at)  # type: ignore[arg-type]
        if draft is not None:
            drafts.append(draft)
        history.append(
            {
                "id": uuid.uuid4(),
                "subscription_id": sub.id,
                "at": at,
                "kind": step.kind.value,
                "actor": WORKER_ACTOR,
                "old": {"status": old_status},
                "new": {
                    "status": sub.status,
                    "current_period_start": _iso(sub.current_period_start),
                    "current_period_end": _iso(sub.current_period_end),
                },
            }
        )
        event_type = (
            "subscription.canceled"
            if step.schedule.status is SubscriptionStatus.CANCELED
            else "subscription.updated"
        )
        events.append(
            {
                "id": uuid.uuid4(),
                "type": event_type,
                "account_id": sub.account_id,
                "data": subscription_read(sub, plan).model_dump(mode="json"),  # type: ignore[arg-type]
                "created_at": at,
            }
        )

    drafts = with_usage_lines(drafts, windows, await usage_lines(session, windows))
    await bulk_update(session, Subscription, updates)
    await bulk_insert(session, SubscriptionHistory, history)
    await bulk_insert(session, Event, events)
    await finalize(session, drafts, number_prefix=number_prefix)  # last: it takes the number lock
    await session.commit()
    return len(claimed)


def _iso(value: Any) -> str | None:
    return None if value is None else str(value)
