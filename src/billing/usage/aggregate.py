"""Reading usage back: rollups plus the raw tail, and the rollup that keeps the tail short.

A period's totals are the rollup buckets inside it plus the raw events the rollup has not
folded in yet (ids above `usage_rollup_state.rolled_through`). Both are read by one statement,
so they come from one snapshot; the statement also returns the watermark it saw, and the
read is retried if the rollup moved between reading the watermark and the statement.

The rollup may only advance the watermark over ids that can no longer appear: an ingestion
transaction that took an id but has not committed yet would otherwise be skipped for ever.
Ingestion therefore holds a shared advisory lock for its whole transaction, and the rollup
takes it exclusively for an instant before it reads the highest id (`ingestion_barrier`):
by then every earlier ingestion has ended, and every later one gets a higher id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from billing.usage.rules import ZERO, Totals

# Advisory lock key: ingestion transactions hold it shared, the barrier exclusive.
INGEST_LOCK = 7_246_300
# Events folded per rollup transaction (a few seconds of ingestion at full speed).
ROLLUP_CHUNK = 250_000
BUCKET = "date_bin('15 minutes', occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00')"


@dataclass(frozen=True, slots=True)
class MetricWindow:
    """One metric of one subscription over the instants [start_at, end_at)."""

    subscription_id: uuid.UUID
    metric: str
    start_at: datetime
    end_at: datetime
    distinct: bool = False  # also count the distinct unique_count values
    latest: bool = False  # also find the latest value


_WINDOWS = """
    WITH w AS (
        SELECT * FROM unnest(CAST(:subs AS uuid[]), CAST(:metrics AS text[]),
                             CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]),
                             CAST(:latest AS boolean[]))
            WITH ORDINALITY AS w(subscription_id, metric, start_at, end_at, latest, k)
    )
"""
_MARK = "(SELECT rolled_through FROM usage_rollup_state WHERE id = 1)"

# The latest event (by timestamp, then arrival) without sorting: max() over arrays compares
# them element by element, so max([epoch, id, quantity]) is the latest event's triple.
# It costs as much as the rest of a read, so it is only computed where asked for.
_LATEST = "max(ARRAY[extract(epoch FROM {t}), {i}::numeric, {q}]) FILTER (WHERE w.latest)"

_TOTALS = text(
    _WINDOWS  # noqa: S608 (constant SQL)
    + f"""
    SELECT w.k, {_MARK} AS mark, sum(r.events) AS events, sum(r.total) AS total,
           max(r.peak) AS peak,
           {_LATEST.format(t="r.latest_at", i="r.latest_id", q="r.latest_value")} AS latest
    FROM w JOIN usage_rollups r
        ON r.subscription_id = w.subscription_id AND r.metric = w.metric
       AND r.bucket >= w.start_at AND r.bucket < w.end_at
    GROUP BY w.k
    UNION ALL
    SELECT w.k, {_MARK}, count(*), sum(e.quantity), max(e.quantity),
           {_LATEST.format(t="e.occurred_at", i="e.id", q="e.quantity")}
    FROM usage_events e JOIN w
        ON e.subscription_id = w.subscription_id AND e.metric = w.metric
       AND e.occurred_at >= w.start_at AND e.occurred_at < w.end_at
    WHERE e.id > :mark AND e.subscription_id = ANY(CAST(:subs AS uuid[]))
    GROUP BY w.k
    """  # noqa: S608 (constant SQL)
)

_DISTINCT = text(
    _WINDOWS  # noqa: S608 (constant SQL)
    + f"""
    SELECT w.k, {_MARK} AS mark, count(DISTINCT v.value) AS distinct_values
    FROM w CROSS JOIN LATERAL (
        SELECT r.value FROM usage_rollup_values r
        WHERE r.subscription_id = w.subscription_id AND r.metric = w.metric
          AND r.bucket >= w.start_at AND r.bucket < w.end_at
        UNION ALL
        SELECT e.unique_value FROM usage_events e
        WHERE e.id > :mark AND e.subscription_id = w.subscription_id AND e.metric = w.metric
          AND e.occurred_at >= w.start_at AND e.occurred_at < w.end_at
          AND e.unique_value IS NOT NULL
    ) v
    GROUP BY w.k
    """  # noqa: S608 (constant SQL)
)


def _params(windows: Sequence[MetricWindow], mark: int) -> dict[str, Any]:
    return {
        "subs": [w.subscription_id for w in windows],
        "metrics": [w.metric for w in windows],
        "starts": [w.start_at for w in windows],
        "ends": [w.end_at for w in windows],
        "latest": [w.latest for w in windows],
        "mark": mark,
    }


async def totals(session: AsyncSession, windows: Sequence[MetricWindow]) -> list[Totals]:
    """The totals of each window, in order, in the caller's transaction."""
    if not windows:
        return []
    # The tail is found through the primary key (ids above the watermark); a generic plan
    # would not know how few those are. The caller's setting is put back afterwards.
    before = await session.scalar(
        text(
            "SELECT current_setting('plan_cache_mode'), "
            "set_config('plan_cache_mode', 'force_custom_plan', true)"
        )
    )
    try:
        for _ in range(10):
            mark = int(await session.scalar(text(f"SELECT coalesce({_MARK}, 0)")) or 0)
            found = await _read(session, windows, mark)
            if found is not None:
                return found
        raise RuntimeError("the usage rollup kept moving while reading totals")
    finally:
        await session.execute(
            text("SELECT set_config('plan_cache_mode', :value, true)"), {"value": before}
        )


async def _read(
    session: AsyncSession, windows: Sequence[MetricWindow], mark: int
) -> list[Totals] | None:
    params = _params(windows, mark)
    rows = (await session.execute(_TOTALS, params)).mappings().all()
    if any(row["mark"] != mark for row in rows):
        return None
    parts: dict[int, list[Any]] = {}
    for row in rows:
        parts.setdefault(int(row["k"]) - 1, []).append(row)
    distinct: dict[int, int] = {}
    wanted = [i for i, w in enumerate(windows) if w.distinct]
    if wanted:
        subset = [windows[i] for i in wanted]
        for row in (await session.execute(_DISTINCT, _params(subset, mark))).mappings():
            if row["mark"] != mark:
                return None
            distinct[wanted[int(row["k"]) - 1]] = int(row["distinct_values"])
    return [_combine(parts.get(i, []), distinct.get(i, 0)) for i in range(len(windows))]


def _combine(rows: Sequence[Any], distinct: int) -> Totals:
    if not rows:
        return Totals(distinct=distinct)
    latest = max((list(r["latest"]) for r in rows if r["latest"] is not None), default=None)
    return Totals(
        events=sum(int(r["events"]) for r in rows),
        total=sum((Decimal(r["total"]) for r in rows), ZERO),
        peak=max(Decimal(r["peak"]) for r in rows),
        latest=ZERO if latest is None else Decimal(latest[2]),  # [epoch, id, quantity]
        distinct=distinct,
    )


# --------------------------------------------------------------------------- rollup


async def ingestion_barrier(engine: AsyncEngine) -> int:
    """Wait until every ingestion transaction in flight has ended; return the highest id.

    New ingestions wait behind the exclusive lock for as long as the slowest one in flight
    takes (milliseconds), then carry on with higher ids.
    """
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INGEST_LOCK})
        top = await conn.scalar(text("SELECT coalesce(max(id), 0) FROM usage_events"))
    return int(top or 0)


_ROLLUP = text(
    f"""
    WITH folded AS (
        SELECT subscription_id, metric, {BUCKET} AS bucket, count(*) AS events,
               sum(quantity) AS total, max(quantity) AS peak, max(occurred_at) AS latest_at,
               max(ARRAY[extract(epoch FROM occurred_at), id::numeric, quantity]) AS latest
        FROM usage_events
        WHERE id > :start AND id <= :end
        GROUP BY 1, 2, 3
    )
    INSERT INTO usage_rollups AS r
        (subscription_id, metric, bucket, events, total, peak, latest_at, latest_id,
         latest_value)
    SELECT subscription_id, metric, bucket, events, total, peak, latest_at, latest[2], latest[3]
    FROM folded
    ON CONFLICT (subscription_id, metric, bucket) DO UPDATE SET
        events = r.events + EXCLUDED.events,
        total = r.total + EXCLUDED.total,
        peak = greatest(r.peak, EXCLUDED.peak),
        latest_at = CASE WHEN (EXCLUDED.latest_at, EXCLUDED.latest_id) > (r.latest_at, r.latest_id)
                         THEN EXCLUDED.latest_at ELSE r.latest_at END,
        latest_id = CASE WHEN (EXCLUDED.latest_at, EXCLUDED.latest_id) > (r.latest_at, r.latest_id)
                         THEN EXCLUDED.latest_id ELSE r.latest_id END,
        latest_value = CASE
            WHEN (EXCLUDED.latest_at, EXCLUDED.latest_id) > (r.latest_at, r.latest_id)
            THEN EXCLUDED.latest_value ELSE r.latest_value END
    """  # noqa: S608 (constant SQL)
)
_ROLLUP_VALUES = text(
    f"""
    INSERT INTO usage_rollup_values (subscription_id, metric, bucket, value)
    SELECT DISTINCT subscription_id, metric, {BUCKET}, unique_value
    FROM usage_events
    WHERE id > :start AND id <= :end AND unique_value IS NOT NULL
    ON CONFLICT DO NOTHING
    """  # noqa: S608 (constant SQL)
)


async def roll_up(engine: AsyncEngine, session: AsyncSession, *, chunk: int = ROLLUP_CHUNK) -> int:
    """Fold the next chunk of events into the rollups; returns the ids it moved past.

    One worker rolls up at a time (the state row is claimed with SKIP LOCKED).
    """
    state = text(
        "SELECT rolled_through, (SELECT max(id) FROM usage_events) AS top "
        "FROM usage_rollup_state WHERE id = 1"
    )
    row = (await session.execute(state)).one_or_none()
    await session.rollback()
    if row is None or row.top is None or row.top <= row.rolled_through:
        return 0
    horizon = await ingestion_barrier(engine)
    start = await session.scalar(
        text("SELECT rolled_through FROM usage_rollup_state WHERE id = 1 FOR UPDATE SKIP LOCKED")
    )
    if start is None:  # another worker is rolling up
        await session.rollback()
        return 0
    end = min(horizon, int(start) + chunk)
    if end <= start:
        await session.rollback()
        return 0
    bounds = {"start": start, "end": end}
    await session.execute(_ROLLUP, bounds)
    await session.execute(_ROLLUP_VALUES, bounds)
    await session.execute(
        text("UPDATE usage_rollup_state SET rolled_through = :end WHERE id = 1"), bounds
    )
    await session.commit()
    return end - int(start)
