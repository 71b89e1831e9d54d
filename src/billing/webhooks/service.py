"""Webhook endpoint use cases: create, read, update, delete, rotate the secret, deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.events.catalog import matches
from billing.events.outbox import record_event
from billing.events.service import load_event
from billing.http.errors import InvalidState, NotFound, ValidationFailed
from billing.http.pagination import PageParams, paginate
from billing.observability.logging import get_logger
from billing.settings import Settings
from billing.webhooks import ssrf
from billing.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookSecret
from billing.webhooks.schemas import (
    DeliveryRead,
    DeliveryStatus,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookSecretRotated,
)
from billing.webhooks.signing import new_secret

log = get_logger("billing.webhooks")

ROTATION_OVERLAP = timedelta(hours=24)
NOTIFY = text("SELECT pg_notify('billing_events', '')")


def endpoint_read(endpoint: WebhookEndpoint) -> WebhookEndpointRead:
    return WebhookEndpointRead(
        id=endpoint.id,
        url=endpoint.url,
        enabled_events=list(endpoint.enabled_events),
        description=endpoint.description,
        disabled=endpoint.disabled,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        failing_since=endpoint.failing_since,
        metadata=endpoint.metadata_,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )


async def check_url(url: str, settings: Settings) -> None:
    """https (http only when allowed), a host, no credentials, and no private address."""
    parts = urlsplit(url)
    allowed = ("https", "http") if settings.webhooks_http_allowed else ("https",)
    if parts.scheme not in allowed:
        if parts.scheme == "http":
            detail = "The URL must use https (set WEBHOOKS_ALLOW_HTTP=true to allow http)."
        else:
            detail = f"The URL must be an absolute {' or '.join(allowed)} URL."
        raise ValidationFailed(detail, param="url")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 (raises on an invalid port)
    except ValueError as exc:
        raise ValidationFailed(f"The URL is invalid: {exc}.", param="url") from exc
    if not host:
        raise ValidationFailed("The URL has no host.", param="url")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed(
            "The URL must not carry credentials; authenticate deliveries with the signature.",
            param="url",
        )
    try:
        await ssrf.resolve_checked(url, allow_private=settings.webhooks_allow_private)
    except ssrf.BlockedAddress as exc:
        raise ValidationFailed(f"The URL is refused: {exc}.", param="url") from exc
    except ssrf.Unresolvable:
        pass  # It may resolve later; every delivery checks again.


async def create_endpoint(
    session: AsyncSession, *, data: WebhookEndpointCreate, clock: Clock, settings: Settings
) -> WebhookEndpointCreated:
    await check_url(data.url, settings)
    now = clock.now()
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        url=data.url,
        description=data.description,
        enabled_events=data.enabled_events,
        metadata_=data.metadata,
        disabled=data.disabled,
        disabled_reason="manual" if data.disabled else None,
        disabled_at=now if data.disabled else None,
        failing_since=None,
        lease_until=None,
        created_at=now,
        updated_at=now,
    )
    secret = WebhookSecret(
        id=uuid.uuid4(),
        endpoint_id=endpoint.id,
        secret=new_secret(),
        created_at=now,
        expires_at=None,
    )
    session.add(endpoint)
    await session.flush()
    session.add(secret)
    await session.commit()
    return WebhookEndpointCreated(**endpoint_read(endpoint).model_dump(), secret=secret.secret)


async def _endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, *, lock: bool = False, delete: bool = False
) -> WebhookEndpoint:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if lock or delete:
        # FOR NO KEY UPDATE unless deleting: it does not wait for transactions that are
        # inserting deliveries for the endpoint (they hold FOR KEY SHARE through the FK).
        stmt = stmt.with_for_update(key_share=not delete)
    endpoint = await session.scalar(stmt)
    if endpoint is None:
        raise NotFound(f"No webhook endpoint {endpoint_id}.", param="id")
    return endpoint


async def get_endpoint(session: AsyncSession, *, endpoint_id: uuid.UUID) -> WebhookEndpointRead:
    return endpoint_read(await _endpoint(session, endpoint_id))


async def list_endpoints(
    session: AsyncSession, *, page: PageParams
) -> tuple[list[WebhookEndpointRead], bool]:
    endpoints, has_more = await paginate(session, select(WebhookEndpoint), WebhookEndpoint, page)
    return [endpoint_read(e) for e in endpoints], has_more


async def fail_pending(session: AsyncSession, *, endpoint_id: uuid.UUID, reason: str) -> None:
    """A disabled endpoint's pending deliveries become `failed` (they can be redelivered)."""
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
        )
        .values(
            status=DeliveryStatus.FAILED.value,
            next_attempt_at=None,
            last_error=reason[:500],
        )
    )


async def update_endpoint(
    session: AsyncSession,
    *,
    endpoint_id: uuid.UUID,
    data: WebhookEndpointUpdate,
    clock: Clock,
    settings: Settings,
) -> WebhookEndpointRead:
    changes = data.model_dump(exclude_unset=True)
    for name in ("url", "enabled_events", "disabled", "metadata"):
        if name in changes and changes[name] is None:
            raise ValidationFailed(f"{name} cannot be null.", param=name)
    if "url" in changes:
        await check_url(changes["url"], settings)
    endpoint = await _endpoint(session, endpoint_id, lock=True)
    now = clock.now()
    if "url" in changes:
        endpoint.url = changes["url"]
    if "enabled_events" in changes:
        endpoint.enabled_events = changes["enabled_events"]
    if "description" in changes:
        endpoint.description = changes["description"]
    if "metadata" in changes:
        endpoint.metadata_ = changes["metadata"]
    if "disabled" in changes and changes["disabled"] != endpoint.disabled:
        endpoint.disabled = changes["disabled"]
        if endpoint.disabled:
            endpoint.disabled_reason = "manual"
            endpoint.disabled_at = now
            await fail_pending(session, endpoint_id=endpoint.id, reason="endpoint disabled")
        else:
            endpoint.disabled_reason = None
            endpoint.disabled_at = None
            endpoint.failing_since = None
    endpoint.updated_at = now
    await session.commit()
    return endpoint_read(endpoint)


async def delete_endpoint(session: AsyncSession, *, endpoint_id: uuid.UUID) -> None:
    endpoint = await _endpoint(session, endpoint_id, delete=True)
    await session.delete(endpoint)
    await session.commit()


async def rotate_secret(
    session: AsyncSession, *, endpoint_id: uuid.UUID, clock: Clock
) -> WebhookSecretRotated:
    """A new secret signs from now on; the current ones keep signing for 24 hours."""
    await _endpoint(session, endpoint_id, lock=True)
    now = clock.now()
    expires = now + ROTATION_OVERLAP
    await session.execute(
        update(WebhookSecret)
        .where(
            WebhookSecret.endpoint_id == endpoint_id,
            (WebhookSecret.expires_at.is_(None)) | (WebhookSecret.expires_at > expires),
        )
        .values(expires_at=expires)
    )
    secret = WebhookSecret(
        id=uuid.uuid4(),
        endpoint_id=endpoint_id,
        secret=new_secret(),
        created_at=now,
        expires_at=None,
    )
    session.add(secret)
    await session.commit()
    return WebhookSecretRotated(
        endpoint_id=endpoint_id, secret=secret.secret, previous_secret_expires_at=expires
    )


async def list_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: uuid.UUID,
    page: PageParams,
    status: DeliveryStatus | None,
    event_id: uuid.UUID | None,
) -> tuple[list[DeliveryRead], bool]:
    await _endpoint(session, endpoint_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status.value)
    if event_id is not None:
        stmt = stmt.where(WebhookDelivery.event_id == event_id)
    deliveries, has_more = await paginate(session, stmt, WebhookDelivery, page)
    return [DeliveryRead.model_validate(d) for d in deliveries], has_more


_REDELIVER = text(
    """
    INSERT INTO webhook_deliveries
        (id, event_id, endpoint_id, event_seq, event_type, status, attempts, next_attempt_at,
         created_at)
    VALUES (:id, :event_id, :endpoint_id, :seq, :type, 'pending', 0, :now, :now)
    ON CONFLICT (endpoint_id, event_id) DO UPDATE
    SET status = 'pending', attempts = 0, next_attempt_at = :now, delivered_at = NULL
    RETURNING id
    """
)


async def redeliver(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    endpoint_id: uuid.UUID | None,
    clock: Clock,
) -> list[DeliveryRead]:
    """Queue the event again for an endpoint (or every enabled endpoint subscribed to it).

    A delivery that succeeded or failed becomes pending with a fresh retry schedule; it keeps
    its webhook-id (the event id), so receivers that already have it can drop it.
    """
    event = await load_event(session, event_id)
    if endpoint_id is not None:
        endpoint = await _endpoint(session, endpoint_id)
        if endpoint.disabled:
            raise InvalidState(
                "The endpoint is disabled; enable it first (PATCH disabled=false).",
                param="endpoint_id",
            )
        targets = [endpoint]
    else:
        enabled = await session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.disabled.is_(False))
        )
        targets = [e for e in enabled if matches(e.enabled_events, event.type)]
    now = clock.now()
    ids = []
    for target in targets:
        ids.append(
            await session.scalar(
                _REDELIVER,
                {
                    "id": uuid.uuid4(),
                    "event_id": event.id,
                    "endpoint_id": target.id,
                    "seq": event.seq,
                    "type": event.type,
                    "now": now,
                },
            )
        )
    if ids:
        await session.execute(NOTIFY)
    await session.commit()
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        .execution_options(populate_existing=True)
    )
    return [DeliveryRead.model_validate(d) for d in rows]


async def disable_endpoint(
    session: AsyncSession, *, endpoint: WebhookEndpoint, reason: str, detail: str, at: datetime
) -> None:
    """Disable an endpoint the worker gave up on, with its event, in the caller's transaction.

    The `webhook_endpoint.disabled` event is emailed to OPERATOR_EMAIL (the notifications
    sweep) and a warning is logged.
    """
    endpoint.disabled = True
    endpoint.disabled_reason = reason
    endpoint.disabled_at = at
    endpoint.updated_at = at
    endpoint.lease_until = at
    await session.flush()
    await fail_pending(session, endpoint_id=endpoint.id, reason=f"endpoint disabled: {detail}")
    record_event(
        session,
        type="webhook_endpoint.disabled",
        account_id=None,
        data=endpoint_read(endpoint).model_dump(mode="json") | {"reason_detail": detail},
        at=at,
    )
    log.warning(
        "webhook_endpoint_disabled",
        endpoint_id=str(endpoint.id),
        url=endpoint.url,
        reason=reason,
        detail=detail,
    )
