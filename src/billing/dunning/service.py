"""Dunning: what happens to an account whose invoices stay unpaid after failed payments.

A case opens (in the payment's transaction) when an invoice's payment fails, anchored at the
due date of that invoice. The worker takes the steps of DUNNING_SCHEDULE as their day comes
(reminder, warning: account `warning`, blocked: account `blocked`), each once per case. When no
invoice with a failed payment is left unpaid, the case closes and a warned or blocked account
is active again (`dunning.unblocked`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.accounts.queries import clock_filter
from billing.dunning.models import DunningCase, DunningStep
from billing.events.outbox import record_event
from billing.invoicing.models import Invoice
from billing.observability.metrics import DUNNING_TRANSITIONS
from billing.payments.models import Payment

# The account status each step leaves behind (a reminder changes nothing).
_ACCOUNT_STATUS = {"warning": "warning", "blocked": "blocked"}
_SEVERITY = {"active": 0, "warning": 1, "blocked": 2}

Schedule = tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class Overdue:
    invoice_ids: list[uuid.UUID]
    amount_due: int


def _has_failed_payment() -> Any:
    return exists().where(Payment.invoice_id == Invoice.id, Payment.status == "failed")


async def overdue_invoices_of(
    session: AsyncSession, account_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Overdue]:
    """Each account's open invoices whose collection has failed, oldest first (one query).

    Every account asked for has an entry, empty when nothing is overdue.
    """
    rows = (
        await session.execute(
            select(Invoice.account_id, Invoice.id, Invoice.amount_remaining)
            .where(
                Invoice.account_id.in_(account_ids),
                Invoice.status == "open",
                Invoice.amount_remaining > 0,
                _has_failed_payment(),
            )
            .order_by(Invoice.due_at, Invoice.id)
        )
    ).all()
    grouped: dict[uuid.UUID, list[Any]] = {account_id: [] for account_id in account_ids}
    for r in rows:
        grouped[r.account_id].append(r)
    return {
        account_id: Overdue(
            invoice_ids=[r.id for r in items],
            amount_due=sum(int(r.amount_remaining) for r in items),
        )
        for account_id, items in grouped.items()
    }


async def overdue_invoices(session: AsyncSession, *, account_id: uuid.UUID) -> Overdue:
    """The account's open invoices whose collection has failed, oldest first."""
    return (await overdue_invoices_of(session, [account_id]))[account_id]


def _first_step_at(anchor: datetime, schedule: Schedule) -> datetime | None:
    return anchor + timedelta(days=schedule[0][0]) if schedule else None


async def open_case(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    anchor_at: datetime,
    at: datetime,
    schedule: Schedule,
) -> None:
    """Open the account's dunning case unless one is open (in the caller's transaction)."""
    stmt = (
        insert(DunningCase)
        .values(
            id=uuid.uuid4(),
            account_id=account_id,
            anchor_at=anchor_at,
            next_step_at=_first_step_at(anchor_at, schedule),
            last_step=None,
            opened_at=at,
            closed_at=None,
        )
        .on_conflict_do_nothing(
            index_elements=["account_id"], index_where=text("closed_at IS NULL")
        )
    )
    await session.execute(stmt)


def _step_data(
    *, account_id: uuid.UUID, step: str, days: int, overdue: Overdue, currency: str
) -> dict[str, Any]:
    return {
        "object": "dunning_step",
        "account_id": str(account_id),
        "step": step,
        "days_overdue": days,
        "invoice_ids": [str(i) for i in overdue.invoice_ids],
        "amount_due": overdue.amount_due,
        "currency": currency,
    }


async def _take_step(
    session: AsyncSession,
    *,
    case: DunningCase,
    account: Account,
    step: str,
    at: datetime,
    overdue: Overdue,
) -> None:
    days = (at - case.anchor_at).days
    data = _step_data(
        account_id=account.id, step=step, days=days, overdue=overdue, currency=account.currency
    )
    session.add(
        DunningStep(
            id=uuid.uuid4(),
            case_id=case.id,
            account_id=account.id,
            step=step,
            days_overdue=days,
            invoice_ids=data["invoice_ids"],
            amount_due=overdue.amount_due,
            currency=account.currency,
            created_at=at,
        )
    )
    new_status = _ACCOUNT_STATUS.get(step)
    if new_status is not None and _SEVERITY.get(account.status, 0) < _SEVERITY[new_status]:
        account.status = new_status
        account.updated_at = at
    if step == "unblocked":
        account.status = "active"
        account.updated_at = at
    record_event(session, type=f"dunning.{step}", account_id=account.id, data=data, at=at)
    DUNNING_TRANSITIONS.labels(step).inc()


async def _close(
    session: AsyncSession, *, case: DunningCase, account: Account, at: datetime
) -> None:
    """Close a case with nothing left overdue; a warned or blocked account is active again."""
    case.closed_at = at
    case.next_step_at = None
    if account.status in ("warning", "blocked"):
        settled = await session.scalars(
            select(DunningStep.invoice_ids)
            .where(DunningStep.case_id == case.id)
            .order_by(DunningStep.created_at.desc())
            .limit(1)
        )
        last = settled.first() or []
        await _take_step(
            session,
            case=case,
            account=account,
            step="unblocked",
            at=at,
            overdue=Overdue(invoice_ids=[uuid.UUID(i) for i in last], amount_due=0),
        )


async def settle(session: AsyncSession, *, account_id: uuid.UUID, at: datetime) -> None:
    """After a payment succeeded: close the account's case if nothing is overdue any more."""
    case = await session.scalar(
        select(DunningCase)
        .where(DunningCase.account_id == account_id, DunningCase.closed_at.is_(None))
        .with_for_update()
    )
    if case is None:
        return
    account = await session.get_one(Account, account_id, with_for_update=True)
    overdue = await overdue_invoices(session, account_id=account_id)
    if not overdue.invoice_ids:
        await _close(session, case=case, account=account, at=at)


async def run_due_steps(
    session: AsyncSession,
    *,
    as_of: datetime,
    test_clock_id: uuid.UUID | None,
    limit: int,
    schedule: Schedule,
) -> int:
    """Take the next due step of a batch of open cases (one step per case per call); commit."""
    cases = list(
        await session.scalars(
            select(DunningCase)
            .join(Account, Account.id == DunningCase.account_id)
            .where(
                DunningCase.closed_at.is_(None),
                DunningCase.next_step_at <= as_of,
                clock_filter(test_clock_id),
            )
            .order_by(DunningCase.next_step_at)
            .limit(limit)
            .with_for_update(of=DunningCase, skip_locked=True)
        )
    )
    if not cases:
        await session.rollback()
        return 0
    accounts = {
        a.id: a
        for a in await session.scalars(
            select(Account)
            .where(Account.id.in_({c.account_id for c in cases}))
            .order_by(Account.id)
            .with_for_update()
        )
    }
    # Open cases are one per account, and taking a step changes no invoice: one query for all.
    overdue_by_account = await overdue_invoices_of(session, list(accounts))
    for case in cases:
        account = accounts[case.account_id]
        at = case.next_step_at
        assert at is not None  # selected by next_step_at <= as_of
        overdue = overdue_by_account[account.id]
        if not overdue.invoice_ids:
            await _close(session, case=case, account=account, at=at)
            continue
        done = [s for s in schedule if s[1] == case.last_step]
        index = schedule.index(done[0]) + 1 if done else 0
        if index >= len(schedule):  # the schedule was shortened since the last step
            case.next_step_at = None
            continue
        _, step = schedule[index]
        await _take_step(session, case=case, account=account, step=step, at=at, overdue=overdue)
        case.last_step = step
        case.next_step_at = (
            case.anchor_at + timedelta(days=schedule[index + 1][0])
            if index + 1 < len(schedule)
            else None
        )
    await session.commit()
    return len(cases)


async def list_steps(session: AsyncSession, *, account_id: uuid.UUID) -> list[DunningStep]:
    rows = await session.scalars(
        select(DunningStep)
        .where(DunningStep.account_id == account_id)
        .order_by(DunningStep.created_at, DunningStep.id)
    )
    return list(rows)
