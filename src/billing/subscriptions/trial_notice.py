"""`subscription.trial_will_end`: three days before a trial ends (Stripe's rule), once.

A trial shorter than that gets its notice at once. The notice is an event with a dedup key
(subscription and trial end), so several workers, or a trial extended to a new end, emit
exactly one per trial end. Test clocks stop at each notice time (see clock.service.next_due).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from billing.accounts.models import Account
from billing.catalog.models import Plan
from billing.events.models import Event
from billing.events.outbox import event_row
from billing.subscriptions.models import Subscription
from billing.subscriptions.state import subscription_read

NOTICE_DAYS = 3
EVENT_TYPE = "subscription.trial_will_end"

# The instant a trialing subscription's notice is due (its trial end is a local date).
NOTICE_AT_SQL = (
    f"((s.trial_end::timestamp AT TIME ZONE a.timezone) - make_interval(days => {NOTICE_DAYS}))"
)
# Trialing subscriptions whose notice for the current trial end is not out yet.
_KEY_SQL = f"'{EVENT_TYPE}:' || s.id::text || ':' || s.trial_end::text"
PENDING_NOTICE_SQL = (
    "s.status = 'trialing' AND s.trial_end IS NOT NULL AND NOT EXISTS ("  # noqa: S608
    "SELECT 1 FROM events e WHERE e.dedup_key = " + _KEY_SQL + ")"
)


def dedup_key(sub: Subscription) -> str:
    return f"{EVENT_TYPE}:{sub.id}:{sub.trial_end}"


async def send_trial_notices(
    session: AsyncSession, *, as_of: datetime, test_clock_id: uuid.UUID | None, limit: int
) -> int:
    """Emit one batch of due notices, commit, and return how many subscriptions were due."""
    clock_filter = "a.test_clock_id IS NULL" if test_clock_id is None else "a.test_clock_id = :c"
    sub, account = aliased(Subscription, name="s"), aliased(Account, name="a")
    due = (
        select(sub)
        .join(account, account.id == sub.account_id)
        .where(text(PENDING_NOTICE_SQL), text(f"{NOTICE_AT_SQL} <= :as_of"), text(clock_filter))
        .order_by(sub.trial_end, sub.id)
        .limit(limit)
    )
    subs = list(await session.scalars(due, {"as_of": as_of, "c": test_clock_id}))
    if not subs:
        await session.rollback()
        return 0
    plans = {
        p.id: p
        for p in await session.scalars(select(Plan).where(Plan.id.in_({s.plan_id for s in subs})))
    }
    rows = [
        event_row(
            EVENT_TYPE,
            sub.account_id,
            subscription_read(sub, plans[sub.plan_id]).model_dump(mode="json"),
            as_of,
        )
        | {"dedup_key": dedup_key(sub)}
        for sub in subs
    ]
    # Another worker may have sent some of them meanwhile: the key keeps one of each.
    await session.execute(insert(Event).values(rows).on_conflict_do_nothing())
    await session.commit()
    return len(subs)
