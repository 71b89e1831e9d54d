from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from billing.deps import ClockDep, EventsRead, RuntimeDep, SessionDep, WebhooksWrite
from billing.http.pagination import ListResponse, PageDep
from billing.webhooks import service
from billing.webhooks.schemas import (
    DeliveryRead,
    DeliveryStatus,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointDeleted,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookSecretRotated,
)

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a webhook endpoint (its signing secret is shown once)",
)
async def create_endpoint(
    body: WebhookEndpointCreate,
    response: Response,
    session: SessionDep,
    clock: ClockDep,
    runtime: RuntimeDep,
    _: WebhooksWrite,
) -> WebhookEndpointCreated:
    # A secret is in the body: never stored by the idempotency layer, nor cached.
    response.headers["Cache-Control"] = "no-store"
    return await service.create_endpoint(session, data=body, clock=clock, settings=runtime.settings)


@router.get("", summary="List webhook endpoints, newest first")
async def list_endpoints(
    session: SessionDep, page: PageDep, _: EventsRead
) -> ListResponse[WebhookEndpointRead]:
    endpoints, has_more = await service.list_endpoints(session, page=page)
    return ListResponse(data=endpoints, has_more=has_more)


@router.get("/{endpoint_id}", summary="Get a webhook endpoint")
async def get_endpoint(
    endpoint_id: uuid.UUID, session: SessionDep, _: EventsRead
) -> WebhookEndpointRead:
    return await service.get_endpoint(session, endpoint_id=endpoint_id)


@router.patch("/{endpoint_id}", summary="Update a webhook endpoint, or disable or enable it")
async def update_endpoint(
    endpoint_id: uuid.UUID,
    body: WebhookEndpointUpdate,
    session: SessionDep,
    clock: ClockDep,
    runtime: RuntimeDep,
    _: WebhooksWrite,
) -> WebhookEndpointRead:
    return await service.update_endpoint(
        session, endpoint_id=endpoint_id, data=body, clock=clock, settings=runtime.settings
    )


@router.delete("/{endpoint_id}", summary="Delete a webhook endpoint and its deliveries")
async def delete_endpoint(
    endpoint_id: uuid.UUID, session: SessionDep, _: WebhooksWrite
) -> WebhookEndpointDeleted:
    await service.delete_endpoint(session, endpoint_id=endpoint_id)
    return WebhookEndpointDeleted(id=endpoint_id)


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="Rotate the signing secret (the old one keeps signing for 24 hours)",
)
async def rotate_secret(
    endpoint_id: uuid.UUID,
    response: Response,
    session: SessionDep,
    clock: ClockDep,
    _: WebhooksWrite,
) -> WebhookSecretRotated:
    response.headers["Cache-Control"] = "no-store"
    return await service.rotate_secret(session, endpoint_id=endpoint_id, clock=clock)


@router.get(
    "/{endpoint_id}/deliveries",
    summary="An endpoint's deliveries, newest first: status, attempts, last response, latency",
)
async def list_deliveries(
    endpoint_id: uuid.UUID,
    session: SessionDep,
    page: PageDep,
    _: EventsRead,
    status: DeliveryStatus | None = None,
    event_id: uuid.UUID | None = None,
) -> ListResponse[DeliveryRead]:
    deliveries, has_more = await service.list_deliveries(
        session, endpoint_id=endpoint_id, page=page, status=status, event_id=event_id
    )
    return ListResponse(data=deliveries, has_more=has_more)
