"""Account look-ups other domains share (no dependencies on other services)."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.http.errors import NotFound


def clock_filter(test_clock_id: uuid.UUID | None) -> ColumnElement[bool]:
    """Accounts on the given test clock, or on real time when `test_clock_id` is None."""
    return (
        Account.test_clock_id.is_(None)
        if test_clock_id is None
        else Account.test_clock_id == test_clock_id
    )


async def get_live_account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """The live (not deleted) account, without a lock; NotFound otherwise."""
    account = await session.get(Account, account_id)
    if account is None or account.deleted_at is not None:
        raise NotFound(f"No account {account_id}.", param="account_id")
    return account


async def lock_account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """The live (not deleted) account, row-locked for the rest of the transaction.

    Everything that changes an account's money (credit, invoices, payment methods) takes this
    lock first, so those changes happen one at a time per account.
    """
    account = await session.scalar(
        select(Account)
        .where(Account.id == account_id, Account.deleted_at.is_(None))
        .with_for_update()
    )
    if account is None:
        raise NotFound(f"No account {account_id}.", param="account_id")
    return account
