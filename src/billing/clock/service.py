"""Test clocks: a frozen "now" per group of accounts, advanced through the API.

Advancing runs every due step for the clock's accounts in time order, so a year of billing
takes seconds and happens exactly as it would have in real time.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.clock import Clock, FrozenClock
from billing.clock.models import TestClock
from billing.http.errors import NotFound, ValidationFailed
from billing.subscriptions.trial_notice import NOTICE_AT_SQL, PENDING_NOTICE_SQL


async def clock_for_account(
    session: AsyncSession, *, test_clock_id: uuid.UUID | None, default: Clock
) -> Clock:
    """The clock an account lives by: its test clock's frozen time, or the system clock."""
    if test_clock_id is None:
        return default
    frozen = await session.scalar(
        select(TestClock.frozen_time).where(TestClock.id == test_clock_id)
    )
    if frozen is None:
        raise NotFound(f"No test clock {test_clock_id}.", param="test_clock_id")
    return FrozenClock(frozen)


async def account_now(
    session: AsyncSession, account_id: uuid.UUID, clock: Clock, *, lock_account: bool = False
) -> datetime:
    """The current time by an account's clock: its test clock's frozen time, or `clock`'s now
    (also for an unknown account). `lock_account` also row-locks the account (only it) in the
    same statement; callers holding other locks take them first (e.g. invoice, then account)."""
    stmt = (
        select(Account.test_clock_id, TestClock.frozen_time)
        .outerjoin(TestClock, TestClock.id == Account.test_clock_id)
        .where(Account.id == account_id)
    )
    if lock_account:
        stmt = stmt.with_for_update(of=Account)
    row = (await session.execute(stmt)).first()
    if row is None or row.test_clock_id is None:
        return clock.now()
    if row.frozen_time is None:
        raise NotFound(f"No test clock {row.test_clock_id}.", param="test_clock_id")
    return FrozenClock(row.frozen_time).now()


async def create_clock(
    session: AsyncSession, *, frozen_time: datetime, name: str | None, clock: Clock
) -> TestClock:
    test_clock = TestClock(
        id=uuid.uuid4(), name=name, frozen_time=frozen_time, created_at=clock.now()
    )
    session.add(test_clock)
    await session.commit()
    return test_clock


async def get_clock(session: AsyncSession, *, clock_id: uuid.UUID) -> TestClock:
    found = await session.get(TestClock, clock_id)
    if found is None:
        raise NotFound(f"No test clock {clock_id}.", param="id")
    return found


# Everything timed for a clock's accounts: subscription steps, trials' "will end" notices
# (not before the subscription existed), first charges of finalized invoices, payment
# retries, reconciliation of in-flight payments, dunning steps.
_NEXT_DUE = text(
    f"""
    SELECT min(due) FROM (
        SELECT s.next_action_at AS due
        FROM subscriptions s JOIN accounts a ON a.id = s.account_id
        WHERE a.test_clock_id = :clock AND s.next_action_at IS NOT NULL
        UNION ALL
        SELECT GREATEST({NOTICE_AT_SQL}, s.created_at)
        FROM subscriptions s JOIN accounts a ON a.id = s.account_id
        WHERE a.test_clock_id = :clock AND {PENDING_NOTICE_SQL}
        UNION ALL
        SELECT i.finalized_at
        FROM invoices i JOIN accounts a ON a.id = i.account_id
        JOIN payment_methods pm ON pm.account_id = i.account_id
            AND pm.is_default AND pm.detached_at IS NULL
        WHERE a.test_clock_id = :clock AND i.status = 'open' AND i.amount_remaining > 0
            AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.invoice_id = i.id)
        UNION ALL
        SELECT p.next_retry_at
        FROM payments p JOIN accounts a ON a.id = p.account_id
        WHERE a.test_clock_id = :clock AND p.next_retry_at IS NOT NULL
        UNION ALL
        SELECT p.updated_at + make_interval(secs => :reconcile_after)
        FROM payments p JOIN accounts a ON a.id = p.account_id
        WHERE a.test_clock_id = :clock AND p.status IN ('pending', 'unknown')
        UNION ALL
        SELECT c.next_step_at
        FROM dunning_cases c JOIN accounts a ON a.id = c.account_id
        WHERE a.test_clock_id = :clock AND c.closed_at IS NULL AND c.next_step_at IS NOT NULL
    ) AS timed
    WHERE due <= :until
    """  # noqa: S608 (constants only)
)


async def next_due(
    session: AsyncSession,
    *,
    clock_id: uuid.UUID,
    until: datetime,
    reconcile_after_seconds: int,
) -> datetime | None:
    value: datetime | None = await session.scalar(
        _NEXT_DUE,
        {"clock": clock_id, "until": until, "reconcile_after": float(reconcile_after_seconds)},
    )
    return value


def check_advance(current: datetime, target: datetime) -> None:
    if target <= current:
        raise ValidationFailed(
            f"frozen_time must be later than the clock's current time {current.isoformat()}.",
            param="frozen_time",
        )
