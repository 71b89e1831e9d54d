"""Sending deliveries: claim due ones per endpoint, send outside any transaction, record.

Deliveries are created with their event by the fan-out trigger (migration 0006), so a
committed event always has them. This sweep:

1. claims endpoints that have due deliveries and that no other worker is sending to
   (`lease_until`, rows taken FOR NO KEY UPDATE SKIP LOCKED), and up to
   PER_ENDPOINT_BATCH of each one's oldest due deliveries, in event order. Claiming counts the
   attempt and moves `next_attempt_at` past the time the sends may take, then commits: a
   worker that dies mid-send leaves deliveries that fall due again, and are sent again with
   the same `webhook-id` (at-least-once);
2. sends each endpoint's batch in order, in background work bounded in number, so a slow or
   dead receiver holds one slot and never the billing sweeps or other endpoints;
3. records each result in its own short transaction: success, a retry on the schedule (with
   jitter, and never sooner than a 429/503 `Retry-After`), `failed` after the last retry, or
   the endpoint disabled (410 Gone at once; failing for WEBHOOK_DISABLE_AFTER_DAYS).

When an endpoint cannot be reached (timeout, refused connection, DNS, SSRF refusal, or
Retry-After), the rest of its batch is not sent: each counts as a failed attempt with the same
reason, and every delivery keeps its own retry schedule.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from billing import __version__
from billing.events.schemas import EventRead
from billing.observability.logging import get_logger
from billing.observability.metrics import (
    OUTBOX_BACKLOG,
    WEBHOOK_DELIVERIES,
    WEBHOOK_DELIVERY_DURATION,
)
from billing.webhooks import ssrf
from billing.webhooks.models import WebhookEndpoint
from billing.webhooks.service import disable_endpoint
from billing.webhooks.signing import webhook_headers
from billing.worker.runner import SweepContext

log = get_logger("billing.webhooks")

PER_ENDPOINT_BATCH = 20
# Endpoints sent to at once when the sweep runs without background work (tests, one-offs).
INLINE_ENDPOINTS = 8
LEASE_MARGIN_SECONDS = 2.0
MAX_RETRY_AFTER_SECONDS = 86_400.0
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = f"billing-webhooks/{__version__}"
_random = random.SystemRandom()


@dataclass(frozen=True)
class Job:
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    attempts: int
    body: bytes


@dataclass(frozen=True)
class Batch:
    endpoint_id: uuid.UUID
    url: str
    secrets: tuple[str, ...]
    jobs: tuple[Job, ...]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    # The endpoint as a whole failed (unreachable, refused, throttled): skip the rest.
    endpoint_failed: bool = False
    retry_after: float | None = None
    gone: bool = False


_ENDPOINTS = text(
    """
    SELECT ep.id, ep.url FROM webhook_endpoints ep
    WHERE NOT ep.disabled
      AND (ep.lease_until IS NULL OR ep.lease_until <= :now)
      AND EXISTS (
          SELECT 1 FROM webhook_deliveries d
          WHERE d.endpoint_id = ep.id AND d.status = 'pending' AND d.next_attempt_at <= :now
      )
    ORDER BY ep.lease_until NULLS FIRST, ep.id
    LIMIT :limit
    FOR NO KEY UPDATE OF ep SKIP LOCKED
    """
)
_CLAIM = text(
    """
    WITH picked AS (
        SELECT p.id, p.position
        FROM unnest(CAST(:endpoints AS uuid[])) AS ep(id)
        CROSS JOIN LATERAL (
            SELECT x.id, row_number() OVER (ORDER BY x.event_seq, x.id) AS position
            FROM (
                SELECT d.id, d.event_seq FROM webhook_deliveries d
                WHERE d.endpoint_id = ep.id AND d.status = 'pending'
                  AND d.next_attempt_at <= :now
                ORDER BY d.event_seq, d.id
                LIMIT :per_endpoint
            ) x
        ) p
    )
    UPDATE webhook_deliveries d
    SET attempts = d.attempts + 1,
        last_attempt_at = :now,
        next_attempt_at = CAST(:now AS timestamptz) + make_interval(secs => picked.position * :slot)
    FROM picked WHERE d.id = picked.id
    RETURNING d.id, d.endpoint_id, d.event_id, d.attempts, picked.position
    """
)
_LEASE = text(
    """
    UPDATE webhook_endpoints
    SET lease_until = CAST(:now AS timestamptz) + make_interval(secs => :seconds)
    WHERE id = :id
    """
)
_EVENTS = text(
    "SELECT id, type, account_id, created_at, data FROM events WHERE id = ANY(CAST(:ids AS uuid[]))"
)
_SECRETS = text(
    """
    SELECT endpoint_id, secret FROM webhook_secrets
    WHERE endpoint_id = ANY(CAST(:endpoints AS uuid[]))
      AND (expires_at IS NULL OR expires_at > :now)
    ORDER BY created_at DESC, id
    """
)


async def claim(
    session: AsyncSession, *, now: datetime, endpoints: int, send_timeout: float
) -> list[Batch]:
    """Claim due deliveries of up to `endpoints` endpoints, in the caller's transaction."""
    rows = (await session.execute(_ENDPOINTS, {"now": now, "limit": endpoints})).all()
    if not rows:
        return []
    urls = {r.id: r.url for r in rows}
    slot = send_timeout + LEASE_MARGIN_SECONDS
    claimed = (
        await session.execute(
            _CLAIM,
            {"endpoints": list(urls), "now": now, "per_endpoint": PER_ENDPOINT_BATCH, "slot": slot},
        )
    ).all()
    bodies = {
        r.id: orjson.dumps(EventRead.model_validate(r._mapping).model_dump(mode="json"))
        for r in await session.execute(_EVENTS, {"ids": list({c.event_id for c in claimed})})
    }
    secrets: dict[uuid.UUID, list[str]] = {}
    for r in await session.execute(_SECRETS, {"endpoints": list(urls), "now": now}):
        secrets.setdefault(r.endpoint_id, []).append(r.secret)
    jobs: dict[uuid.UUID, list[tuple[int, Job]]] = {}
    for c in claimed:
        jobs.setdefault(c.endpoint_id, []).append(
            (c.position, Job(c.id, c.event_id, c.attempts, bodies[c.event_id]))
        )
    batches = []
    for endpoint_id, items in jobs.items():
        items.sort(key=lambda item: item[0])
        await session.execute(_LEASE, {"id": endpoint_id, "now": now, "seconds": slot * len(items)})
        batches.append(
            Batch(
                endpoint_id=endpoint_id,
                url=urls[endpoint_id],
                secrets=tuple(secrets.get(endpoint_id, ())),
                jobs=tuple(job for _, job in items),
            )
        )
    return batches


async def deliver_due(ctx: SweepContext) -> int:
    """The sweep: claim due deliveries and start sending them; returns how many were claimed."""
    room = ctx.background.free if ctx.background is not None else INLINE_ENDPOINTS
    if room == 0:
        return 0
    async with ctx.sessions() as session:
        batches = await claim(
            session,
            now=ctx.clock.now(),
            endpoints=room,
            send_timeout=ctx.settings.webhook_timeout_seconds,
        )
        await session.commit()
    if ctx.background is None:
        await asyncio.gather(*(send_batch(ctx, batch) for batch in batches))
    else:
        for batch in batches:
            ctx.background.spawn(send_batch(ctx, batch), name=f"webhooks:{batch.endpoint_id}")
    return sum(len(batch.jobs) for batch in batches)


async def send_batch(ctx: SweepContext, batch: Batch) -> None:
    """Send one endpoint's claimed deliveries in order and record each result."""
    timeout = ctx.settings.webhook_timeout_seconds
    skip: Outcome | None = None
    remaining = list(batch.jobs)
    async with httpx.AsyncClient(
        follow_redirects=False, timeout=httpx.Timeout(timeout), trust_env=False
    ) as client:
        while remaining:
            if ctx.background is not None and ctx.background.closing:
                await release(ctx, remaining)
                break
            job = remaining.pop(0)
            if skip is not None:
                outcome = Outcome(
                    ok=False,
                    error=f"not sent: {skip.error} (on an earlier delivery of this batch)"[:500],
                    endpoint_failed=True,
                    retry_after=skip.retry_after,
                )
            else:
                outcome = await attempt(ctx, client, batch, job)
            if await record(ctx, batch, job, outcome):
                break  # the endpoint was disabled: its pending deliveries are failed
            if outcome.endpoint_failed and skip is None:
                skip = outcome
    async with ctx.engine.begin() as conn:
        await conn.execute(
            text("UPDATE webhook_endpoints SET lease_until = :now WHERE id = :id"),
            {"now": ctx.clock.now(), "id": batch.endpoint_id},
        )


async def release(ctx: SweepContext, jobs: list[Job]) -> None:
    """Give back claimed deliveries that were not sent (shutdown): due now, attempt uncounted."""
    async with ctx.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE webhook_deliveries SET attempts = attempts - 1, next_attempt_at = :now "
                "WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'pending'"
            ),
            {"now": ctx.clock.now(), "ids": [j.delivery_id for j in jobs]},
        )


async def attempt(ctx: SweepContext, client: httpx.AsyncClient, batch: Batch, job: Job) -> Outcome:
    settings = ctx.settings
    try:
        addresses = await ssrf.resolve_checked(
            batch.url, allow_private=settings.webhooks_allow_private
        )
    except (ssrf.BlockedAddress, ssrf.Unresolvable) as exc:
        return Outcome(ok=False, error=f"refused: {exc}"[:500], endpoint_failed=True)
    now = ctx.clock.now()
    headers = webhook_headers(
        batch.secrets, msg_id=str(job.event_id), timestamp=int(now.timestamp()), body=job.body
    ) | {"content-type": "application/json", "user-agent": USER_AGENT}
    started = time.monotonic()
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            status, response_headers = await post_pinned(
                client, batch.url, addresses, headers, job.body
            )
    except TimeoutError:
        return Outcome(
            ok=False,
            latency_ms=_ms(started),
            error=f"timed out after {settings.webhook_timeout_seconds:g} s",
            endpoint_failed=True,
        )
    except httpx.HTTPError as exc:
        return Outcome(
            ok=False,
            latency_ms=_ms(started),
            error=f"{type(exc).__name__}: {exc}"[:500],
            endpoint_failed=True,
        )
    latency = _ms(started)
    WEBHOOK_DELIVERY_DURATION.observe(latency / 1000)
    if 200 <= status < 300:
        return Outcome(ok=True, status=status, latency_ms=latency)
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response_headers.get("retry-after"), now)
    return Outcome(
        ok=False,
        status=status,
        latency_ms=latency,
        error=f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else ""),
        endpoint_failed=retry_after is not None,
        retry_after=retry_after,
        gone=status == 410,
    )


async def post_pinned(
    client: httpx.AsyncClient,
    url: str,
    addresses: list[ssrf.IPAddress],
    headers: dict[str, str],
    body: bytes,
) -> tuple[int, httpx.Headers]:
    """POST to the checked addresses themselves (Host and TLS SNI stay the URL's name)."""
    target = httpx.URL(url)
    host = target.host
    headers = headers | {"host": target.netloc.decode("ascii")}
    last: httpx.ConnectError | None = None
    for address in addresses:
        request = client.build_request(
            "POST",
            target.copy_with(host=str(address)),
            content=body,
            headers=headers,
            extensions={"sni_hostname": host},
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            last = exc  # try the name's next address
            continue
        try:
            received = 0
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if received > MAX_RESPONSE_BYTES:
                    break
        finally:
            await response.aclose()
        return response.status_code, response.headers
    assert last is not None
    raise last


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from `Retry-After` (delta-seconds or an HTTP date), capped at one day."""
    if value is None:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = (email.utils.parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def retry_delay(attempts: int, schedule: tuple[float, ...], retry_after: float | None) -> float:
    """The wait before the next attempt after `attempts` failed ones (jitter of ±10 %)."""
    delay = schedule[attempts - 1] * _random.uniform(0.9, 1.1)
    return max(delay, retry_after) if retry_after is not None else delay


_SUCCEEDED = text(
    """
    UPDATE webhook_deliveries
    SET status = 'succeeded', next_attempt_at = NULL, delivered_at = :now,
        last_response_status = :status, last_latency_ms = :latency, last_error = NULL
    WHERE id = :id AND status = 'pending' AND attempts = :attempts
    """
)
_FAILED = text(
    """
    UPDATE webhook_deliveries
    SET status = :new_status, next_attempt_at = :next,
        last_response_status = :status, last_latency_ms = :latency, last_error = :error
    WHERE id = :id AND status = 'pending' AND attempts = :attempts
    """
)


async def record(ctx: SweepContext, batch: Batch, job: Job, outcome: Outcome) -> bool:
    """Write one attempt's result. Returns True when the endpoint got disabled."""
    settings = ctx.settings
    now = ctx.clock.now()
    params: dict[str, Any] = {
        "id": job.delivery_id,
        "attempts": job.attempts,
        "now": now,
        "status": outcome.status,
        "latency": outcome.latency_ms,
    }
    async with ctx.sessions() as session:
        endpoint = await session.get(
            WebhookEndpoint, batch.endpoint_id, with_for_update={"key_share": True}
        )
        if endpoint is None or endpoint.disabled:
            await session.commit()
            return True
        if outcome.ok:
            await session.execute(_SUCCEEDED, params)
            endpoint.failing_since = None
            WEBHOOK_DELIVERIES.labels("succeeded").inc()
            await session.commit()
            return False

        schedule = settings.webhook_retry_delays
        final = job.attempts > len(schedule)
        next_at = (
            None
            if final
            else now + timedelta(seconds=retry_delay(job.attempts, schedule, outcome.retry_after))
        )
        await session.execute(
            _FAILED,
            params
            | {
                "new_status": "failed" if final else "pending",
                "next": next_at,
                "error": outcome.error,
            },
        )
        WEBHOOK_DELIVERIES.labels("failed" if final else "retrying").inc()
        endpoint.failing_since = endpoint.failing_since or now
        disable: tuple[str, str] | None = None
        if outcome.gone:
            disable = ("gone", "the endpoint answered 410 Gone")
        elif endpoint.failing_since <= now - timedelta(days=settings.webhook_disable_after_days):
            disable = (
                "failing",
                f"every delivery failed since {endpoint.failing_since.isoformat()}",
            )
        if disable is not None:
            await disable_endpoint(
                session, endpoint=endpoint, reason=disable[0], detail=disable[1], at=now
            )
        await session.commit()
        return disable is not None


async def count_backlog(ctx: SweepContext) -> int:
    """Not a sweep of due rows: refreshes the outbox backlog gauge every tick."""
    async with ctx.engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
        )
    OUTBOX_BACKLOG.set(count or 0)
    return 0


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
