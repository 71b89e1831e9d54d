"""The one helper every service uses to record an event in its own transaction."""

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
