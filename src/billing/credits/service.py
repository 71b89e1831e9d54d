"""Credit use cases: grant, read the ledger, give back on void, expire."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.accounts.queries import lock_account
from billing.clock import Clock
from billing.clock.service import clock_for_account
from billing.core.money import format_amount
from billing.credits.ledger import REMAINING_SQL, lock_accounts
from billing.credits.models import CreditEntry
from billing.credits.schemas import CreditBalances, CreditEntryRead, CreditGrant
from billing.events.models import Event
from billing.events.outbox import event_row, record_event
from billing.http.errors import NotFound, ValidationFailed


async def grant(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    currency: str,
    amount: int,
    reason: str | None,
    expires_at: datetime | None,
    at: datetime,
) -> CreditEntry:
    """Add a grant in the caller's transaction (the caller commits)."""
    entry = CreditEntry(
        id=uuid.uuid4(),
        account_id=account_id,
        currency=currency,
        kind="grant",
        amount=amount,
        grant_id=None,
        invoice_id=None,
        reason=reason,
        expires_at=expires_at,
        created_at=at,
    )
    session.add(entry)
    await session.flush()
    record_event(
        session,
        type="credit.granted",
        account_id=account_id,
        data=CreditEntryRead.model_validate(entry).model_dump(mode="json"),
        at=at,
    )
    return entry


async def grant_credit(session: AsyncSession, *, data: CreditGrant, clock: Clock) -> CreditEntry:
    account = await lock_account(session, data.account_id)
    now = (
        await clock_for_account(session, test_clock_id=account.test_clock_id, default=clock)
    ).now()
    if data.expires_at is not None and data.expires_at <= now:
        raise ValidationFailed("expires_at must be in the future.", param="expires_at")
    entry = await grant(
        session,
        account_id=account.id,
        currency=data.currency or account.currency,
        amount=data.amount,
        reason=data.reason,
        expires_at=data.expires_at,
        at=now,
    )
    await session.commit()
    return entry


async def balances(session: AsyncSession, *, account_id: uuid.UUID) -> CreditBalances:
    account = await session.get(Account, account_id)
    if account is None or account.deleted_at is not None:
        raise NotFound(f"No account {account_id}.", param="account_id")
    rows = await session.execute(
        select(CreditEntry.currency, func.sum(CreditEntry.amount))
        .where(CreditEntry.account_id == account_id)
        .group_by(CreditEntry.currency)
    )
    ledger = await session.scalars(
        select(CreditEntry)
        .where(CreditEntry.account_id == account_id)
        .order_by(CreditEntry.created_at, CreditEntry.seq)
    )
    totals = {currency: int(total) for currency, total in rows}
    return CreditBalances(
        account_id=account_id,
        balances=totals,
        balances_formatted={c: format_amount(t, c, account.locale) for c, t in totals.items()},
        ledger=[CreditEntryRead.model_validate(e) for e in ledger],
    )


async def give_back(session: AsyncSession, *, invoice_id: uuid.UUID, at: datetime) -> int:
    """Return to their grants the credit applied to an invoice being voided.

    Credit that comes back to a grant which has expired meanwhile expires again at once: an
    expired grant never becomes spendable through a void.
    """
    applied = list(
        await session.scalars(
            select(CreditEntry).where(
                CreditEntry.invoice_id == invoice_id, CreditEntry.kind == "application"
            )
        )
    )
    grant_ids = {e.grant_id for e in applied}
    expiries = {
        g.id: g.expires_at
        for g in await session.scalars(select(CreditEntry).where(CreditEntry.id.in_(grant_ids)))
    }
    for entry in applied:
        returned = _entry(
            entry,
            kind="void_return",
            amount=-entry.amount,
            at=at,
            invoice_id=invoice_id,
            reason="Invoice voided",
        )
        session.add(returned)
        await session.flush()
        record_event(
            session,
            type="credit.returned",
            account_id=entry.account_id,
            data=CreditEntryRead.model_validate(returned).model_dump(mode="json"),
            at=at,
        )
        expires_at = expiries.get(entry.grant_id) if entry.grant_id else None
        if expires_at is not None and expires_at <= at:
            session.add(
                _entry(
                    entry,
                    kind="expiry",
                    amount=entry.amount,
                    at=at,
                    invoice_id=invoice_id,
                    reason="Credit expired",
                )
            )
        await session.flush()  # keep the ledger's insertion order
    return -sum(e.amount for e in applied)


def _entry(
    source: CreditEntry,
    *,
    kind: str,
    amount: int,
    at: datetime,
    invoice_id: uuid.UUID,
    reason: str,
) -> CreditEntry:
    return CreditEntry(
        id=uuid.uuid4(),
        account_id=source.account_id,
        currency=source.currency,
        kind=kind,
        amount=amount,
        grant_id=source.grant_id,
        invoice_id=invoice_id,
        reason=reason,
        expires_at=None,
        created_at=at,
    )


# A format string: {clock_filter} is filled in per call.
_EXPIRING = f"""
    SELECT g.id, g.account_id, g.currency, g.expires_at, {REMAINING_SQL} AS remaining
    FROM credit_entries g
    JOIN accounts a ON a.id = g.account_id
    LEFT JOIN credit_entries e ON e.grant_id = g.id
    WHERE g.kind = 'grant' AND g.expires_at <= :as_of AND {{clock_filter}}
    GROUP BY g.id
    HAVING {REMAINING_SQL} > 0
    ORDER BY g.expires_at
    LIMIT :limit
"""  # noqa: S608 (constants only)


_REMAINING = text(
    f"""
    SELECT g.id, {REMAINING_SQL} AS remaining
    FROM credit_entries g LEFT JOIN credit_entries e ON e.grant_id = g.id
    WHERE g.id = ANY(:ids)
    GROUP BY g.id
    """  # noqa: S608 (constants only)
)


async def expire_credits(
    session: AsyncSession, *, as_of: datetime, test_clock_id: uuid.UUID | None, limit: int
) -> int:
    """Write an expiry entry for the unused part of every grant past its expires_at."""
    clock_filter = (
        "a.test_clock_id IS NULL" if test_clock_id is None else "a.test_clock_id = :clock"
    )
    stmt = text(_EXPIRING.format(clock_filter=clock_filter))
    params: dict[str, Any] = {"as_of": as_of, "limit": limit}
    if test_clock_id is not None:
        params["clock"] = test_clock_id
    rows = (await session.execute(stmt, params)).all()
    if not rows:
        await session.rollback()
        return 0
    await lock_accounts(session, {r.account_id for r in rows})
    # Recompute under the locks: an invoice may have drawn on a grant since the first read.
    remaining = {
        r.id: int(r.remaining)
        for r in await session.execute(_REMAINING, {"ids": [r.id for r in rows]})
    }
    entries = []
    events = []
    for row in rows:
        left = remaining.get(row.id, 0)
        if left <= 0:
            continue
        entry = {
            "id": uuid.uuid4(),
            "account_id": row.account_id,
            "currency": row.currency,
            "kind": "expiry",
            "amount": -left,
            "grant_id": row.id,
            "invoice_id": None,
            "reason": "Credit expired",
            "expires_at": None,
            "created_at": row.expires_at,
        }
        entries.append(entry)
        events.append(
            event_row(
                "credit.expired",
                row.account_id,
                CreditEntryRead.model_validate(entry).model_dump(mode="json"),
                row.expires_at,
            )
        )
    if entries:
        await session.execute(insert(CreditEntry), entries)
        await session.execute(insert(Event), events)
    await session.commit()
    return len(rows)
