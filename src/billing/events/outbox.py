"""The helpers services use to record events in their own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.events.models import Event


def record_event(
    session: AsyncSession,
    *,
    type: str,
    account_id: uuid.UUID | None,
    data: Mapping[str, Any],
    at: datetime,
) -> Event:
    """Add an event to the caller's transaction; it commits (or rolls back) with the change.

    `type` is one of billing.events.catalog.EVENT_TYPES (a test checks every recorded type).
    """
    event = Event(id=uuid.uuid4(), type=type, account_id=account_id, data=dict(data), created_at=at)
    session.add(event)
    return event


def event_row(
    type: str, account_id: uuid.UUID | None, data: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """An events row for a bulk insert (set-based writers; one event: `record_event`)."""
    return {
        "id": uuid.uuid4(),
        "type": type,
        "account_id": account_id,
        "data": data,
        "created_at": at,
    }
