"""Reading and drawing on the credit ledger (used by invoicing, inside its transaction)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoicing.rules import Grant

AccountCurrency = tuple[uuid.UUID, str]

# What is left of grant g: its amount plus its (negative) entries e, grouped by g.id.
REMAINING_SQL = "g.amount + COALESCE(SUM(e.amount), 0)"

_AVAILABLE = text(
    f"""
    SELECT g.id, g.account_id, g.currency, {REMAINING_SQL} AS remaining
    FROM credit_entries g
    LEFT JOIN credit_entries e ON e.grant_id = g.id
    WHERE g.kind = 'grant'
      AND g.account_id = ANY(:accounts)
      AND (g.expires_at IS NULL OR g.expires_at > :at)
    GROUP BY g.id
    HAVING {REMAINING_SQL} > 0
    ORDER BY g.created_at, g.seq
    """  # noqa: S608 (constants only)
)


async def available_grants(
    session: AsyncSession, pairs: Iterable[AccountCurrency], at: datetime
) -> dict[AccountCurrency, list[Grant]]:
    """Grants with credit left, oldest first, per (account, currency). Callers hold the
    accounts' row locks, so nobody else draws on them meanwhile."""
    wanted = set(pairs)
    found: dict[AccountCurrency, list[Grant]] = defaultdict(list)
    if not wanted:
        return found
    rows = await session.execute(_AVAILABLE, {"accounts": list({a for a, _ in wanted}), "at": at})
    for row in rows:
        key = (row.account_id, row.currency)
        if key in wanted:
            found[key].append(Grant(id=row.id, remaining=int(row.remaining)))
    return found


async def lock_accounts(session: AsyncSession, account_ids: Iterable[uuid.UUID]) -> None:
    """Row-lock accounts in id order (a fixed order, so concurrent lockers cannot deadlock)."""
    ids = sorted(set(account_ids))
    if ids:
        await session.execute(
            text("SELECT id FROM accounts WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
            {"ids": ids},
        )
