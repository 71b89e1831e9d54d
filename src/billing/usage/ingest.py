"""Recording usage events: a whole batch with a handful of statements.

One transaction per batch: the shared ingestion lock (see `aggregate`), one query for the
batch's subscriptions (their accounts only where needed, see `_facts`), one `INSERT … SELECT
FROM unnest …` for the accepted events, and only when needed a look at the periods late
events belong to and at the stored events whose keys came back as taken. The lock comes
first, in a statement of its own, so that the subscriptions are read with a snapshot taken
after it: a renewal's barrier either waits for this batch or is seen by it. The hot path
talks to asyncpg directly: no ORM object and no per-row statement.

Idempotency rests on the unique index on `idempotency_key`. The insert skips keys already
stored with a look-up (cheaper than ON CONFLICT's speculative insertion); when another
request is inserting one of the batch's keys at the same moment, the look-up cannot see it
and the insert fails on the index, so the batch, nothing of it written, is recorded again
with ON CONFLICT DO NOTHING, which makes it wait for the other request. Either way the event
is stored once and every other copy is compared with it: the same payload is a `duplicate`,
a different one is rejected as `idempotency_key_reused`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Aggregation
from billing.clock import Clock
from billing.core.periods import local_midnight
from billing.db.bulk import driver_of
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

# Subscription ids (canonical text) go as a binary uuid[]: the driver parses each in C,
# where PostgreSQL's parsing of a text literal cost twice the CPU. Subscriptions come
# grouped by what the checks read of them (plan and period, usually shared by many): a few
# rows with the ids in arrays decode in a fifth of the time a row per subscription takes.
_SUBSCRIPTIONS = """
    SELECT s.status, s.plan_id, s.currency, s.current_period_start, s.current_period_end,
           s.cancel_at_period_end, array_agg(s.id::text) AS ids,
           array_agg(s.account_id) AS account_ids,
           (SELECT EXISTS (SELECT 1 FROM test_clocks)) AS clocks
    FROM unnest($1::uuid[]) AS wanted(id)
    JOIN subscriptions s ON s.id = wanted.id
    GROUP BY 1, 2, 3, 4, 5, 6
"""
_ACCOUNTS = """
    SELECT a.id, a.timezone, c.frozen_time
    FROM accounts a LEFT JOIN test_clocks c ON c.id = a.test_clock_id
    WHERE a.id = ANY($1::uuid[])
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
# Text columns travel as array literals in one text parameter each: asyncpg's binary arrays
# cost a Python-level type check per element, the literals a join. (Not so the ids and
# instants: parsing them from text costs PostgreSQL more than the checks cost here.)
# Properties and unique values, usually absent, come as JSON arrays (or NULL).
_INSERT_TEMPLATE = """
    WITH inserted AS (
        INSERT INTO usage_events (subscription_id, metric, quantity, occurred_at,
                                  idempotency_key, properties, unique_value, received_at)
        SELECT e.subscription_id, e.metric, e.quantity, e.occurred_at, e.idempotency_key,
               nullif($6::jsonb -> (e.n - 1)::int, 'null'::jsonb),
               $7::jsonb ->> (e.n - 1)::int, $8
        FROM unnest($1::uuid[], $2::text::text[], $3::text::numeric[],
                    $4::timestamptz[], $5::text::text[])
            WITH ORDINALITY AS e(subscription_id, metric, quantity, occurred_at,
                                 idempotency_key, n)
        {new_keys}
        ORDER BY e.n  -- ids in the batch's order (the latest of equal timestamps wins)
        {on_conflict}
        RETURNING idempotency_key
    )
    SELECT count(*) AS stored,
           CASE WHEN count(*) < $9 THEN array_agg(idempotency_key) END AS keys
    FROM inserted
"""
# Keys already stored are skipped by a look-up: about 8 % less work per row for PostgreSQL
# than ON CONFLICT's speculative insertion. A key that another request is inserting at the
# same moment makes it fail (see `record_events`).
_INSERT_NEW = _INSERT_TEMPLATE.format(
    new_keys="WHERE NOT EXISTS (SELECT 1 FROM usage_events u "
    "WHERE u.idempotency_key = e.idempotency_key)",
    on_conflict="",
)
_INSERT = _INSERT_TEMPLATE.format(
    new_keys="", on_conflict="ON CONFLICT (idempotency_key) DO NOTHING"
)
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


ACCEPTED = EventStatus.ACCEPTED.value
DUPLICATE = EventStatus.DUPLICATE.value
REJECTED = EventStatus.REJECTED.value


def _accepted(index: int) -> Result:
    return {"index": index, "status": ACCEPTED}


def _duplicate(index: int) -> Result:
    return {"index": index, "status": DUPLICATE}


def _rejected(index: int, reason: Reason, message: str, field: str | None = None) -> Result:
    """A rejection; the field in question is the reason's own unless given."""
    field = field if field is not None else _FIELDS.get(reason)
    result: Result = {
        "index": index,
        "status": REJECTED,
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
    return _rejected(index, rejection.reason, rejection.message, rejection.field)


def _reused(index: int) -> Result:
    return _rejected(
        index,
        Reason.IDEMPOTENCY_KEY_REUSED,
        "idempotency_key: an event with this key and a different payload is already recorded.",
    )


@lru_cache(maxsize=4096)
def _midnight(day: Any, timezone: str) -> datetime:
    return local_midnight(day, timezone)


def _array(values: Sequence[str]) -> str:
    """An array literal of values that need no quoting (numbers)."""
    return "{" + ",".join(values) + "}"


def _quoted(values: Sequence[str]) -> str:
    """An array literal of arbitrary strings (NUL excluded), each one quoted."""
    everything = "".join(values)
    if '"' in everything or "\\" in everything:
        values = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
    return '{"' + '","'.join(values) + '"}'


def _json_array(values: list[str | None], *, raw: bool) -> str | None:
    """A JSON array of the values (JSON texts when `raw`, else strings); None if all are."""
    if values.count(None) == len(values):
        return None
    if raw:
        return orjson.dumps([None if v is None else orjson.Fragment(v) for v in values]).decode()
    return orjson.dumps(values).decode()


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under `session`, outside any transaction: ingestion runs its
    own transaction on it and issues nothing through SQLAlchemy, whose stays empty."""
    raw = await driver_of(session)
    if raw.is_in_transaction():
        raise RuntimeError("usage ingestion needs a session that has not run a statement yet")
    return raw


# One round trip: the transaction and the shared ingestion lock, held until commit (the
# rollup's barrier waits for this transaction, see `aggregate`). The statements that follow
# read with snapshots taken after the lock.
_BEGIN = f"BEGIN; SELECT pg_advisory_xact_lock_shared({INGEST_LOCK})"


@contextlib.asynccontextmanager
async def _ingesting(db: Any) -> AsyncIterator[None]:
    await db.execute(_BEGIN)
    try:
        yield
    except BaseException:
        try:
            if not db.is_closed():
                await db.execute("ROLLBACK")
        except BaseException:
            db.terminate()  # in an unknown state: the pool replaces it
            raise
        raise
    await db.execute("COMMIT")


async def record_events(
    session: AsyncSession,
    events: Sequence[EventIn | Invalid],
    *,
    clock: Clock,
    future_tolerance: timedelta,
    late_days: int,
) -> list[Result]:
    """Check and store a batch; one result per event, in order. Commits what it writes."""
    results: list[Result | None] = [None] * len(events)
    sub_ids: list[str | None] = [None] * len(events)
    for index, event in enumerate(events):
        if isinstance(event, Invalid):
            results[index] = _rejected(index, Reason.INVALID, event.message, event.field)
        else:
            sub_ids[index] = event["subscription_id"]

    db = await _driver(session)
    now = clock.now()
    checked = list(results)
    limits = (future_tolerance, late_days)
    try:
        async with _ingesting(db):
            await _record(db, events, results, sub_ids, now, *limits, _INSERT_NEW)
    except asyncpg.UniqueViolationError:
        # A key of the batch is being inserted by another request; nothing was written.
        results[:] = checked
        async with _ingesting(db):
            await _record(db, events, results, sub_ids, now, *limits, _INSERT)
    assert None not in results
    return results  # type: ignore[return-value]


async def _record(
    db: Any,
    events: Sequence[EventIn | Invalid],
    results: list[Result | None],
    sub_ids: Sequence[str | None],
    system_now: datetime,
    future_tolerance: timedelta,
    late_days: int,
    insert: str,
) -> None:
    facts = await _facts(db, events, sub_ids, system_now)

    rows: list[_Row] = []  # events that pass the checks
    late: list[_Row] = []
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
        unique = None
        component = found.components[event["metric"]]
        if component.aggregation is Aggregation.UNIQUE_COUNT:
            assert properties is not None
            assert component.property is not None
            unique = unique_text(properties[component.property])
        row = _Row(index, event, sub_id, occurred_at, encoded, unique)
        (late if verdict is Placement.EARLIER else rows).append(row)

    marks: dict[int, uuid.UUID] = {}
    if late:
        marks = await _late(db, late, facts, results, late_days)
        rows.extend(row for row in late if row.position in marks)
        rows.sort(key=lambda row: row.position)
    if not_priced:
        await _unknown_metrics(db, not_priced, results)

    # The first event with a key is stored; later ones in the batch are compared to it.
    candidates = rows
    copies: list[tuple[_Row, _Row]] = []
    if len({row.event["idempotency_key"] for row in rows}) != len(rows):
        first: dict[str, _Row] = {}
        candidates = []
        for row in rows:
            original = first.setdefault(row.event["idempotency_key"], row)
            if original is row:
                candidates.append(row)
            else:
                copies.append((row, original))

    taken = await _insert(db, insert, candidates, results, system_now)
    if taken:
        await _compare_stored(db, taken, results)
    for row, original in copies:
        same = same_event(
            _incoming(original),
            incoming=_incoming(row),
            compare_timestamp=_timed(row) and _timed(original),
        )
        was_rejected = (results[original.position] or {}).get("status") == REJECTED
        results[row.position] = (
            _duplicate(row.position) if same and not was_rejected else _reused(row.position)
        )

    pending = {
        marks[row.position]
        for row in rows
        if row.position in marks and (results[row.position] or {}).get("status") == ACCEPTED
    }
    if pending:
        await db.execute(_MARK_PENDING, sorted(pending), system_now)


async def _insert(
    db: Any, insert: str, candidates: Sequence[_Row], results: list[Result | None], now: datetime
) -> list[_Row]:
    """Store the candidates with `insert` (one statement); mark the stored ones accepted, and
    return those whose key was taken."""
    if not candidates:
        return []
    arguments = (
        [row.sub_id for row in candidates],
        _quoted([row.event["metric"] for row in candidates]),
        _array([str(row.event["quantity"]) for row in candidates]),
        [row.occurred_at for row in candidates],
        _quoted([row.event["idempotency_key"] for row in candidates]),
        _json_array([row.properties for row in candidates], raw=True),
        _json_array([row.unique for row in candidates], raw=False),
        now,
        len(candidates),
    )
    stored, keys = await db.fetchrow(insert, *arguments)
    if stored == len(candidates):
        for row in candidates:
            results[row.position] = _accepted(row.position)
        return []
    inserted = set(keys or ())
    taken = []
    for row in candidates:
        if row.event["idempotency_key"] in inserted:
            results[row.position] = _accepted(row.position)
        else:
            taken.append(row)
    return taken


class _Row(NamedTuple):
    """An event that passed the checks, with what is stored besides its own fields."""

    position: int  # in the batch
    event: EventIn
    sub_id: str
    occurred_at: datetime
    properties: str | None  # the JSON text
    unique: str | None  # the unique_count value


def _timed(row: _Row) -> bool:
    return row.event.get("timestamp") is not None


def _incoming(row: _Row) -> dict[str, Any]:
    return {
        "subscription_id": row.sub_id,
        "metric": row.event["metric"],
        "quantity": row.event["quantity"],
        "occurred_at": row.occurred_at,
        "properties": row.event.get("properties"),
    }


# A local midnight is within this much of midnight UTC of the same date (offsets in use run
# from -12:00 to +14:00; an hour more either way).
_BEFORE_UTC = timedelta(hours=15)
_AFTER_UTC = timedelta(hours=13)


@lru_cache(maxsize=4096)
def _utc_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@lru_cache(maxsize=4096)
def _near(day: date) -> tuple[datetime, datetime]:
    """The instants between which the local midnight of `day` lies, whatever the zone."""
    at = _utc_midnight(day)
    return at - _BEFORE_UTC, at + _AFTER_UTC


def _bound(day: date | None, timezone: str | None) -> datetime | None:
    """A period bound's instant: exact with the time zone, else its stand-in (see _facts)."""
    if day is None:
        return None
    return _utc_midnight(day) if timezone is None else _midnight(day, timezone)


async def _facts(
    db: Any,
    events: Sequence[EventIn | Invalid],
    sub_ids: Sequence[str | None],
    system_now: datetime,
) -> dict[str, Facts]:
    """What the checks need per subscription, in one query (two when some need more).

    The account is read only where it matters: when test clocks exist (its clock's "now"),
    and for subscriptions with an event within a day of a period bound (the exact instant
    of a local midnight needs the time zone). Elsewhere midnight UTC of the bound's date
    stands in for it: no event lies between the two, so every comparison comes out the same.
    """
    wanted = {sub_id for sub_id in sub_ids if sub_id is not None}
    if not wanted:
        return {}
    groups = await db.fetch(_SUBSCRIPTIONS, list(wanted))
    if not groups:
        return {}
    components = await components_for(db, {(group[1], group[2]) for group in groups})
    if groups[0]["clocks"]:
        need = {account_id for group in groups for account_id in group["account_ids"]}
    else:
        need = _accounts_near_bounds(groups, events, sub_ids, system_now)
    accounts = (
        {row[0]: (row[1], row[2]) for row in await db.fetch(_ACCOUNTS, list(need))} if need else {}
    )

    facts: dict[str, Facts] = {}
    for group in groups:
        shared = None  # the group's facts where the account needs no look
        for sub_id, account_id in zip(group["ids"], group["account_ids"], strict=True):
            account = accounts.get(account_id)
            if account is None:
                if shared is None:
                    shared = _facts_of(group, components, None, system_now)
                facts[sub_id] = shared
            else:
                facts[sub_id] = _facts_of(group, components, account, system_now)
    return facts


def _facts_of(
    group: Any,
    components: Mapping[tuple[Any, str], Mapping[str, Any]],
    account: tuple[str, datetime | None] | None,
    system_now: datetime,
) -> Facts:
    status, plan_id, currency, start, end, cancels = group[:6]
    timezone, frozen = (None, None) if account is None else account
    return Facts(
        status,
        components[(plan_id, currency)],
        frozen or system_now,
        _bound(start, timezone),
        _bound(end, timezone),
        cancels,
    )


def _accounts_near_bounds(
    groups: Sequence[Any],
    events: Sequence[EventIn | Invalid],
    sub_ids: Sequence[str | None],
    system_now: datetime,
) -> set[Any]:
    """Accounts of subscriptions with an event within a day of one of their period bounds."""
    bounds: dict[str, tuple[Any, tuple[datetime, datetime], tuple[datetime, datetime] | None]] = {}
    for _, _, _, start, end, cancels, ids, account_ids, _ in groups:
        if start is not None:
            near = _near(start)
            ending = _near(end) if cancels and end is not None else None
            for sub_id, account_id in zip(ids, account_ids, strict=True):
                bounds[sub_id] = (account_id, near, ending)
    need = set()
    for index, event in enumerate(events):
        found = bounds.get(sub_ids[index] or "")
        if found is None:
            continue
        assert not isinstance(event, Invalid)
        at = event.get("timestamp") or system_now
        account_id, (low, high), ending = found
        if low <= at < high or (ending is not None and ending[0] <= at < ending[1]):
            need.add(account_id)
    return need


async def _late(
    db: Any,
    late: Sequence[_Row],
    facts: Mapping[str, Facts],
    results: list[Result | None],
    late_days: int,
) -> dict[int, uuid.UUID]:
    """Events before their subscription's current period: accepted within a late window."""
    rows = await db.fetch(
        _BILLED_PERIODS,
        [row.position for row in late],
        [row.sub_id for row in late],
        [row.occurred_at for row in late],
    )
    billed = {found["i"]: found for found in rows}
    marks: dict[int, uuid.UUID] = {}
    for row in late:
        period = billed.get(row.position)
        rejection = check_late(
            occurred_at=row.occurred_at,
            billed=None if period is None else (period["start_at"], period["end_at"]),
            now=facts[row.sub_id].now,
            late_days=late_days,
        )
        if rejection is not None:
            results[row.position] = _rejection(row.position, rejection)
        else:
            assert period is not None
            marks[row.position] = period["id"]
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
            )


async def _compare_stored(db: Any, taken: Sequence[_Row], results: list[Result | None]) -> None:
    """Events whose key was already stored: a duplicate if the payload is the same."""
    keys = [row.event["idempotency_key"] for row in taken]
    stored = {found["idempotency_key"]: found for found in await db.fetch(_STORED, keys)}
    for row in taken:
        found = stored.get(row.event["idempotency_key"])
        same = found is not None and same_event(
            dict(found), incoming=_incoming(row), compare_timestamp=_timed(row)
        )
        results[row.position] = _duplicate(row.position) if same else _reused(row.position)
