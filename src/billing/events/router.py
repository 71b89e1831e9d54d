from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query, status

from billing.deps import ClockDep, EventsRead, SessionDep, WebhooksWrite
from billing.events import service
from billing.events.schemas import EventRead, RedeliverRequest
from billing.http.pagination import ListResponse, PageDep
from billing.webhooks import service as webhooks
from billing.webhooks.schemas import DeliveryRead

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get("", summary="List events, newest first")
async def list_events(
    session: SessionDep,
    page: PageDep,
    _: EventsRead,
    type: Annotated[
        str | None,
        Query(description="An exact type (`invoice.paid`) or a category (`invoice.*`)."),
    ] = None,
    account_id: uuid.UUID | None = None,
    created_gte: datetime | None = None,
    created_lt: datetime | None = None,
) -> ListResponse[EventRead]:
    events, has_more = await service.list_events(
        session,
        page=page,
        type=type,
        account_id=account_id,
        created_gte=created_gte,
        created_lt=created_lt,
    )
    return ListResponse(data=events, has_more=has_more)


@router.get("/{event_id}", summary="Get an event")
async def get_event(event_id: uuid.UUID, session: SessionDep, _: EventsRead) -> EventRead:
    return await service.get_event(session, event_id=event_id)


@router.post(
    "/{event_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send an event again (same webhook-id), to one endpoint or every subscribed one",
)
async def redeliver(
    event_id: uuid.UUID,
    session: SessionDep,
    clock: ClockDep,
    _: WebhooksWrite,
    body: Annotated[RedeliverRequest | None, Body()] = None,
) -> ListResponse[DeliveryRead]:
    deliveries = await webhooks.redeliver(
        session,
        event_id=event_id,
        endpoint_id=body.endpoint_id if body else None,
        clock=clock,
    )
    return ListResponse(data=deliveries, has_more=False)
