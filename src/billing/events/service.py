"""Reading events, and the retention purge."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from billing.events.catalog import WILDCARD
from billing.events.models import Event
from billing.events.schemas import EventRead
from billing.http.errors import NotFound
from billing.http.pagination import PageParams, paginate


async def load_event(session: AsyncSession, event_id: uuid.UUID) -> Event:
    """The stored event; NotFound once it is gone (events are purged after the retention)."""
    event = await session.get(Event, event_id)
    if event is None:
        raise NotFound(f"No event {event_id} (events are kept for a limited time).", param="id")
    return event


async def get_event(session: AsyncSession, *, event_id: uuid.UUID) -> EventRead:
    return EventRead.model_validate(await load_event(session, event_id))


async def list_events(
    session: AsyncSession,
    *,
    page: PageParams,
    type: str | None,
    account_id: uuid.UUID | None,
    created_gte: datetime | None,
    created_lt: datetime | None,
) -> tuple[list[EventRead], bool]:
    stmt = select(Event)
    if type is not None and type != WILDCARD:
        if type.endswith(".*"):
            stmt = stmt.where(Event.type.startswith(type[:-1], autoescape=True))
        else:
            stmt = stmt.where(Event.type == type)
    if account_id is not None:
        stmt = stmt.where(Event.account_id == account_id)
    if created_gte is not None:
        stmt = stmt.where(Event.created_at >= created_gte)
    if created_lt is not None:
        stmt = stmt.where(Event.created_at < created_lt)
    events, has_more = await paginate(session, stmt, Event, page)
    return [EventRead.model_validate(e) for e in events], has_more


_PURGE = text(
    """
    DELETE FROM events WHERE id IN (
        SELECT id FROM events WHERE recorded_at < :cutoff
        ORDER BY recorded_at LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    """
)


async def purge_old_events(
    engine: AsyncEngine, *, now: datetime, retention_days: int, limit: int
) -> int:
    """Delete one batch of events older than the retention (their deliveries go with them)."""
    async with engine.begin() as conn:
        result = await conn.execute(
            _PURGE, {"cutoff": now - timedelta(days=retention_days), "limit": limit}
        )
    return int(result.rowcount)
