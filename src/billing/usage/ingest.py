"""Recording usage events: a whole batch with a handful of statements.

One transaction per batch: the shared ingestion lock (see `aggregate`), one query for the
batch's subscriptions (with their account's clock), one `INSERT … SELECT FROM unnest …
ON CONFLICT DO NOTHING RETURNING` for the accepted events, and only when needed a look at
the periods late events belong to and at the stored events whose keys came back as taken.
The hot path talks to asyncpg directly: no ORM object and no per-row statement.

Idempotency rests on the unique index on `idempotency_key`: when the same key arrives in
concurrent requests, PostgreSQL lets one insert win and makes the others wait for it, so the
event is stored once and every other copy is compared with it: the same payload is a
`duplicate`, a different one is rejected as `idempotency_key_reused`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Aggregation
from billing.clock import Clock
from billing.core.periods import local_midnight
from billing.usage.aggregate import INGEST_LOCK
from billing.usage.components import components_for
from billing.usage.rules import (
    Facts,
    Placement,
    Rejection,
    check_event,
    check_late,
    same_event,
    unique_text,
)
from billing.usage.schemas import EventIn, EventStatus, Invalid, Reason, properties_json

Result = dict[str, Any]

_FACTS = """
    SELECT s.id::text AS id, s.status, s.plan_id, s.currency, s.current_period_start,
           s.current_period_end, s.cancel_at_period_end, a.timezone, c.frozen_time
    FROM subscriptions s
    JOIN accounts a ON a.id = s.account_id
    LEFT JOIN test_clocks c ON c.id = a.test_clock_id
    WHERE s.id = ANY($1::uuid[])
"""
_BILLED_PERIODS = """
    SELECT l.i, p.id, p.start_at, p.end_at
    FROM unnest($1::int[], $2::uuid[], $3::timestamptz[]) AS l(i, subscription_id, at)
    JOIN usage_billed_periods p
      ON p.subscription_id = l.subscription_id AND p.start_at <= l.at AND l.at < p.end_at
"""
_KNOWN_METRICS = """
    SELECT DISTINCT c->>'metric'
    FROM plans p, jsonb_array_elements(p.prices) AS price,
         jsonb_array_elements(coalesce(price->'metered', '[]'::jsonb)) AS c
    WHERE c->>'metric' = ANY($1::text[])
"""
_INSERT = """
    INSERT INTO usage_events (subscription_id, metric, quantity, occurred_at, idempotency_key,
                              properties, unique_value, received_at)
    SELECT e.*, $8 FROM unnest($1::uuid[], $2::text[], $3::numeric[], $4::timestamptz[],
                               $5::text[], $6::jsonb[], $7::text[]) AS e
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING idempotency_key
"""
_STORED = """
    SELECT idempotency_key, subscription_id::text AS subscription_id, metric, quantity,
           occurred_at, properties
    FROM usage_events WHERE idempotency_key = ANY($1::text[])
"""
# Row-locked in id order, so two batches marking the same periods cannot deadlock.
_MARK_PENDING = """
    UPDATE usage_billed_periods SET pending_since = coalesce(pending_since, $2)
    WHERE id IN (SELECT id FROM usage_billed_periods WHERE id = ANY($1::uuid[])
                 ORDER BY id FOR UPDATE)
"""


def _accepted(index: int) -> Result:
    return {"index": index, "status": EventStatus.ACCEPTED.value}


def _duplicate(index: int) -> Result:
    return {"index": index, "status": EventStatus.DUPLICATE.value}


def _rejected(index: int, reason: Reason, message: str, field: str | None = None) -> Result:
    result: Result = {
        "index": index,
        "status": EventStatus.REJECTED.value,
        "reason": reason.value,
        "message": message,
    }
    if field is not None:
        result["field"] = field
    return result


_FIELDS = {
    Reason.SUBSCRIPTION_NOT_FOUND: "subscription_id",
    Reason.METRIC_NOT_PRICED: "metric",
    Reason.UNKNOWN_METRIC: "metric",
    Reason.MISSING_PROPERTY: "properties",
    Reason.TIMESTAMP_IN_FUTURE: "timestamp",
    Reason.PERIOD_NOT_BILLABLE: "timestamp",
    Reason.LATE_WINDOW_CLOSED: "timestamp",
    Reason.IDEMPOTENCY_KEY_REUSED: "idempotency_key",
}


def _rejection(index: int, rejection: Rejection) -> Result:
    field = _FIELDS.get(rejection.reason)
    if rejection.reason is Reason.INVALID:
        field = rejection.message.partition(":")[0]
    return _rejected(index, rejection.reason, rejection.message, field)


def _reused(index: int) -> Result:
    return _rejected(
        index,
        Reason.IDEMPOTENCY_KEY_REUSED,
        "idempotency_key: an event with this key and a different payload is already recorded.",
        "idempotency_key",
    )


@lru_cache(maxsize=4096)
def _midnight(day: Any, timezone: str) -> datetime:
    return local_midnight(day, timezone)


def _canonical_id(value: str) -> str:
    if len(value) == 36 and value == value.lower():
        return value
    return str(uuid.UUID(value))


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under `session`, inside the session's transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def record_events(
    session: AsyncSession,
    events: Sequence[EventIn | Invalid],
    *,
    clock: Clock,
    future_tolerance: timedelta,
    late_days: int,
) -> list[Result]:
    """Check and store a batch; one result per event, in order. Commits."""
    results: list[Result | None] = [None] * len(events)
    sub_ids: list[str | None] = [None] * len(events)
    for index, event in enumerate(events):
        if isinstance(event, Invalid):
            results[index] = _rejected(index, Reason.INVALID, event.message, event.field)
        else:
            sub_ids[index] = _canonical_id(event["subscription_id"])

    # Held until commit: the rollup's barrier waits for this transaction (see `aggregate`).
    # Taken through SQLAlchemy so that its transaction is open on the connection.
    await session.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": INGEST_LOCK})
    db = await _driver(session)
    system_now = clock.now()
    facts = await _facts(session, db, {s for s in sub_ids if s is not None}, system_now)

    rows: list[tuple[int, Any]] = []  # (index, occurred_at) of events that pass the checks
    late: list[tuple[int, Any]] = []
    payload: dict[int, tuple[str | None, str | None]] = {}  # properties JSON, unique value
    not_priced: dict[int, str] = {}
    for index, event in enumerate(events):
        sub_id = sub_ids[index]
        if sub_id is None:
            continue
        assert not isinstance(event, Invalid)
        found = facts.get(sub_id)
        if found is None:
            results[index] = _rejected(
                index,
                Reason.SUBSCRIPTION_NOT_FOUND,
                f"subscription_id: no subscription {sub_id}.",
                "subscription_id",
            )
            continue
        occurred_at = event.get("timestamp") or found.now
        properties = event.get("properties")
        verdict = check_event(
            metric=event["metric"],
            quantity=event["quantity"],
            occurred_at=occurred_at,
            properties=properties,
            facts=found,
            future_tolerance=future_tolerance,
        )
        if isinstance(verdict, Rejection):
            results[index] = _rejection(index, verdict)
            if verdict.reason is Reason.METRIC_NOT_PRICED:
                not_priced[index] = event["metric"]
            continue
        try:
            encoded = properties_json(properties)
        except ValueError as exc:
            results[index] = _rejected(index, Reason.INVALID, str(exc), "properties")
            continue
        component = found.components[event["metric"]]
        unique = None
        if component.aggregation is Aggregation.UNIQUE_COUNT:
            assert properties is not None
            assert component.property is not None
            unique = unique_text(properties[component.property])
        payload[index] = (encoded, unique)
        (late if verdict is Placement.EARLIER else rows).append((index, occurred_at))

    marks: dict[int, uuid.UUID] = {}
    if late:
        marks = await _late(db, late, sub_ids, facts, results, late_days)
        rows.extend((index, at) for index, at in late if index in marks)
    if not_priced:
        await _unknown_metrics(db, not_priced, results)

    # The first event with a key is the candidate; later ones in the batch are compared to it.
    rows.sort()
    first: dict[str, int] = {}
    candidates: list[tuple[int, Any]] = []
    copies: list[tuple[int, int]] = []
    for index, at in rows:
        key = _event(events, index)["idempotency_key"]
        if key in first:
            copies.append((index, first[key]))
        else:
            first[key] = index
            candidates.append((index, at))
    when = {index: at for index, at in rows}

    inserted: set[str] = set()
    if candidates:
        records = await db.fetch(
            _INSERT,
            [sub_ids[i] for i, _ in candidates],
            [_event(events, i)["metric"] for i, _ in candidates],
            [_event(events, i)["quantity"] for i, _ in candidates],
            [at for _, at in candidates],
            [_event(events, i)["idempotency_key"] for i, _ in candidates],
            [payload[i][0] for i, _ in candidates],
            [payload[i][1] for i, _ in candidates],
            system_now,
        )
        inserted = {record[0] for record in records}
    taken = [i for i, _ in candidates if _event(events, i)["idempotency_key"] not in inserted]
    for index, _ in candidates:
        if index not in taken:
            results[index] = _accepted(index)
    if taken:
        await _compare_stored(db, events, taken, sub_ids, when, results)
    for index, original in copies:
        incoming = _incoming(events, index, sub_ids, when)
        same = same_event(
            _incoming(events, original, sub_ids, when),
            incoming=incoming,
            compare_timestamp=_event(events, index).get("timestamp") is not None
            and _event(events, original).get("timestamp") is not None,
        )
        was_rejected = (results[original] or {}).get("status") == EventStatus.REJECTED.value
        results[index] = _duplicate(index) if same and not was_rejected else _reused(index)

    pending = {marks[i] for i, _ in rows if i in marks and results[i] == _accepted(i)}
    if pending:
        await db.execute(_MARK_PENDING, sorted(pending), system_now)
    await session.commit()
    assert all(result is not None for result in results)
    return results  # type: ignore[return-value]


def _event(events: Sequence[EventIn | Invalid], index: int) -> EventIn:
    event = events[index]
    assert not isinstance(event, Invalid)
    return event


def _incoming(
    events: Sequence[EventIn | Invalid],
    index: int,
    sub_ids: Sequence[str | None],
    when: Mapping[int, Any],
) -> dict[str, Any]:
    event = _event(events, index)
    return {
        "subscription_id": sub_ids[index],
        "metric": event["metric"],
        "quantity": event["quantity"],
        "occurred_at": when[index],
        "properties": event.get("properties"),
    }


async def _facts(
    session: AsyncSession, db: Any, sub_ids: set[str], system_now: datetime
) -> dict[str, Facts]:
    if not sub_ids:
        return {}
    rows = await db.fetch(_FACTS, list(sub_ids))
    components = await components_for(session, {(row["plan_id"], row["currency"]) for row in rows})
    facts: dict[str, Facts] = {}
    for row in rows:
        timezone = row["timezone"]
        start, end = row["current_period_start"], row["current_period_end"]
        facts[row["id"]] = Facts(
            status=row["status"],
            components=components[(row["plan_id"], row["currency"])],
            now=row["frozen_time"] or system_now,
            period_start_at=None if start is None else _midnight(start, timezone),
            period_end_at=None if end is None else _midnight(end, timezone),
            cancel_at_period_end=row["cancel_at_period_end"],
        )
    return facts


async def _late(
    db: Any,
    late: Sequence[tuple[int, Any]],
    sub_ids: Sequence[str | None],
    facts: Mapping[str, Facts],
    results: list[Result | None],
    late_days: int,
) -> dict[int, uuid.UUID]:
    """Events before their subscription's current period: accepted within a late window."""
    rows = await db.fetch(
        _BILLED_PERIODS,
        [index for index, _ in late],
        [sub_ids[index] for index, _ in late],
        [at for _, at in late],
    )
    billed = {row["i"]: row for row in rows}
    marks: dict[int, uuid.UUID] = {}
    for index, at in late:
        sub_id = sub_ids[index]
        assert sub_id is not None
        row = billed.get(index)
        rejection = check_late(
            occurred_at=at,
            billed=None if row is None else (row["start_at"], row["end_at"]),
            now=facts[sub_id].now,
            late_days=late_days,
        )
        if rejection is not None:
            results[index] = _rejection(index, rejection)
        else:
            assert row is not None
            marks[index] = row["id"]
    return marks


async def _unknown_metrics(
    db: Any, not_priced: Mapping[int, str], results: list[Result | None]
) -> None:
    """Tell a metric no plan meters (a typo, likely) from one this plan does not price."""
    known = {row[0] for row in await db.fetch(_KNOWN_METRICS, sorted(set(not_priced.values())))}
    for index, metric in not_priced.items():
        if metric not in known:
            results[index] = _rejected(
                index,
                Reason.UNKNOWN_METRIC,
                f"metric: no plan meters {metric!r}.",
                "metric",
            )


async def _compare_stored(
    db: Any,
    events: Sequence[EventIn | Invalid],
    taken: Sequence[int],
    sub_ids: Sequence[str | None],
    when: Mapping[int, Any],
    results: list[Result | None],
) -> None:
    """Events whose key was already stored: a duplicate if the payload is the same."""
    keys = [_event(events, index)["idempotency_key"] for index in taken]
    stored = {row["idempotency_key"]: row for row in await db.fetch(_STORED, keys)}
    for index in taken:
        event = _event(events, index)
        row = stored.get(event["idempotency_key"])
        same = row is not None and same_event(
            dict(row),
            incoming=_incoming(events, index, sub_ids, when),
            compare_timestamp=event.get("timestamp") is not None,
        )
        results[index] = _duplicate(index) if same else _reused(index)
