"""The billing clock's main sweep: starts, trial ends, renewals and cancellations that are due.

One call claims a batch of due subscriptions (FOR UPDATE SKIP LOCKED), works out each one's
next step with the pure rules, and writes every result with a few bulk statements in one
transaction: the renewal invoices (numbered, credit applied, events written), the advanced
subscription rows, their history and events. A crash rolls the whole batch back; the next run
does it again, and the unique (subscription, cycle) key makes double billing impossible.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Plan
from billing.core.lifecycle import SubscriptionStatus
from billing.core.periods import local_date
from billing.db.bulk import bulk_insert, bulk_update, driver_connection
from billing.events.models import Event
from billing.events.outbox import event_row
from billing.invoicing.rules import DraftInvoice, DraftLine
from billing.invoicing.writer import finalize
from billing.subscriptions.models import Subscription, SubscriptionHistory
from billing.subscriptions.rules import Charge, Step, StepKind, Terms, next_step, resume
from billing.subscriptions.state import (
    history_row,
    schedule_columns,
    schedule_of,
    subscription_read,
    terms_of,
)
from billing.usage.billing import UsageWindow, closing_window, usage_lines, with_usage_lines

WORKER_ACTOR = "worker"


_REASONS = {StepKind.START: "subscription_create", StepKind.RESUME: "subscription_resume"}


def draft_for(sub: Subscription, step: Step, at: datetime) -> DraftInvoice | None:
    if step.cycle_key is None or not step.charges:
        return None
    first = step.charges[0].period
    return DraftInvoice(
        account_id=sub.account_id,
        currency=sub.currency,
        billing_reason=_REASONS.get(step.kind, "subscription_cycle"),
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


_COLUMNS = ", ".join(f's."{c.name}"' for c in Subscription.__table__.c)
# Straight on the driver: a batch of rows is read many times a minute, and SQLAlchemy's row
# processing cost more than the query. Column names come from our own table metadata.
_CLAIM = f"""
    SELECT {_COLUMNS}, a.timezone AS account_timezone
    FROM subscriptions s JOIN accounts a ON a.id = s.account_id
    WHERE s.next_action_at <= $1 AND {{clock}}
    ORDER BY s.next_action_at
    LIMIT $2
    FOR UPDATE OF s SKIP LOCKED
"""  # noqa: S608
_CLAIM_REAL = _CLAIM.format(clock="a.test_clock_id IS NULL")
_CLAIM_TEST_CLOCK = _CLAIM.format(clock="a.test_clock_id = $3")


async def claim_due(
    session: AsyncSession, *, as_of: datetime, test_clock_id: uuid.UUID | None, limit: int
) -> list[Claimed]:
    db = await driver_connection(session)
    claimed = []
    rows = await (
        db.fetch(_CLAIM_REAL, as_of, limit)
        if test_clock_id is None
        else db.fetch(_CLAIM_TEST_CLOCK, as_of, limit, test_clock_id)
    )
    for row in rows:
        values = dict(row.items())
        timezone = values.pop("account_timezone")
        values["metadata_"] = values.pop("metadata")
        claimed.append(Claimed(sub=SimpleNamespace(**values), timezone=timezone))
    return claimed


_EVENT_TYPES = {
    StepKind.CANCEL: "subscription.canceled",
    StepKind.PAUSE: "subscription.paused",
    StepKind.RESUME: "subscription.resumed",
}


async def run_due_steps(
    session: AsyncSession,
    *,
    as_of: datetime,
    test_clock_id: uuid.UUID | None,
    limit: int,
    number_prefix: str,
    pause_max_days: int,
) -> int:
    """Process one batch of due subscriptions in the caller's session, then commit."""
    claimed = await claim_due(session, as_of=as_of, test_clock_id=test_clock_id, limit=limit)
    if not claimed:
        await session.rollback()
        return 0
    plan_ids = {c.sub.plan_id for c in claimed} | {
        uuid.UUID(c.sub.pending_change["plan_id"]) for c in claimed if c.sub.pending_change
    }
    plans = {p.id: p for p in await session.scalars(select(Plan).where(Plan.id.in_(plan_ids)))}
    terms: dict[tuple[uuid.UUID, str], Terms] = {}

    def terms_for(plan: Plan, currency: str) -> Terms:
        if (plan.id, currency) not in terms:
            terms[(plan.id, currency)] = terms_of(plan, currency)
        return terms[(plan.id, currency)]

    drafts: list[DraftInvoice] = []
    windows: list[UsageWindow] = []  # closing periods whose usage is billed (in arrears)
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # rows by the columns they set
    history: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for item in claimed:
        sub = item.sub
        plan = plans[sub.plan_id]
        at = sub.next_action_at
        old = {"status": sub.status, "plan_id": str(sub.plan_id), "quantity": sub.quantity}
        # Every step starts a new period (or ends the subscription): no usage billed in it yet.
        columns: dict[str, Any] = {"updated_at": at, "usage_from": None}
        if sub.status == SubscriptionStatus.PAUSED.value:
            if sub.resumes_at is not None and sub.resumes_at <= at:
                step = resume(
                    local_date(sub.resumes_at, item.timezone),
                    terms=terms_for(plan, sub.currency),
                    quantity=sub.quantity,
                )
                columns |= {"paused_at": None, "resumes_at": None}
            else:  # paused for PAUSE_MAX_DAYS: canceled
                ended = replace(schedule_of(sub), status=SubscriptionStatus.CANCELED)  # type: ignore[arg-type]
                step = Step(StepKind.CANCEL, replace(ended, next_action_on=None), None, ())
        else:
            pending = None
            if sub.pending_change:
                pending_plan = plans[uuid.UUID(sub.pending_change["plan_id"])]
                pending = (
                    terms_for(pending_plan, sub.currency),
                    int(sub.pending_change["quantity"]),
                )
            step = next_step(
                schedule_of(sub),  # type: ignore[arg-type]
                terms=terms_for(plan, sub.currency),
                quantity=sub.quantity,
                start_date=sub.start_date,
                trial_days=(sub.trial_end - sub.trial_start).days
                if sub.trial_start and sub.trial_end
                else plan.trial_days,
                pending=pending if sub.status == SubscriptionStatus.ACTIVE.value else None,
            )
            if pending is not None and step.kind is StepKind.RENEW:
                plan = plans[uuid.UUID(sub.pending_change["plan_id"])]
                columns |= {"plan_id": plan.id, "quantity": pending[1], "pending_change": None}
        columns = schedule_columns(step.schedule, item.timezone) | columns
        if step.kind is StepKind.CANCEL:
            columns["canceled_at"] = sub.canceled_at or at
            columns["ended_at"] = at
        # Bill the closing period's usage, read before the row moves on.
        if step.kind in (StepKind.RENEW, StepKind.CANCEL, StepKind.PAUSE):
            ending = step.kind is StepKind.CANCEL
            window = closing_window(sub, plans[sub.plan_id], item.timezone, ending=ending, at=at)
            if window is not None:
                windows.append(window)
        if step.kind is StepKind.PAUSE:
            columns["paused_at"] = at
            limit_at = at + timedelta(days=pause_max_days)
            columns["next_action_at"] = min(sub.resumes_at or limit_at, limit_at)
        # Only what changed is written: a renewal moves six columns of the twenty.
        changed = {name: value for name, value in columns.items() if getattr(sub, name) != value}
        for name, value in changed.items():
            setattr(sub, name, value)
        if changed:
            updates.setdefault(tuple(changed), []).append({"id": sub.id} | changed)
        draft = draft_for(sub, step, at)  # type: ignore[arg-type]
        if draft is not None:
            drafts.append(draft)
        history.append(
            history_row(
                sub.id,
                at=at,
                kind=step.kind.value,
                actor=WORKER_ACTOR,
                old=old,
                new={
                    "status": sub.status,
                    "plan_id": str(sub.plan_id),
                    "quantity": sub.quantity,
                    "current_period_start": _iso(sub.current_period_start),
                    "current_period_end": _iso(sub.current_period_end),
                },
            )
        )
        events.append(
            event_row(
                _EVENT_TYPES.get(step.kind, "subscription.updated"),
                sub.account_id,
                subscription_read(sub, plan).model_dump(mode="json"),  # type: ignore[arg-type]
                at,
            )
        )

    drafts = with_usage_lines(drafts, windows, await usage_lines(session, windows))
    for rows in updates.values():
        await bulk_update(session, Subscription, rows)
    await bulk_insert(session, SubscriptionHistory, history)
    await bulk_insert(session, Event, events)
    await finalize(session, drafts, number_prefix=number_prefix)  # last: it takes the number lock
    await session.commit()
    return len(claimed)


def _iso(value: Any) -> str | None:
    return None if value is None else str(value)
