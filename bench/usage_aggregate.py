"""The usage summary of one subscription with 10M events in its current period.

    python -m bench.usage_aggregate [--database-url URL] [--events 10000000] [--tail 100000]

Starts `billing serve --no-worker` (loopback; an embedded PostgreSQL in a temporary directory
unless --database-url is given), creates a subscription on a metered plan through the API,
moves its current period to have started 29 days ago, writes N events spread over those
29 days straight into `usage_events` (generate_series; this is the slow part),
folds them into the rollups with the worker's rollup code, then times
GET /v1/subscriptions/{id}/usage over HTTP: once with everything rolled up, once with a tail
of events the rollup has not reached yet (what the summary reads from the log). For
comparison it times the plain full scan of the same events.
Target: < 50 ms per summary at 10M events.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from bench.server import Server, running_server, server_database
from billing.core.periods import Interval, add_intervals
from billing.db.engine import create_engine, create_session_factory, libpq_url
from billing.usage.aggregate import roll_up

PLAN = {
    "code": "metered",
    "name": "Metered",
    "interval": "month",
    "prices": [
        {
            "currency": "USD",
            "unit_amount": 1000,
            "metered": [
                {
                    "metric": "api_calls",
                    "model": "graduated",
                    "tiers": [
                        {"up_to": "1000000", "unit_amount_decimal": "0"},
                        {"up_to": None, "unit_amount_decimal": "0.01"},
                    ],
                }
            ],
        }
    ],
}
FILL = """
    INSERT INTO usage_events (subscription_id, metric, quantity, occurred_at, idempotency_key,
                              received_at)
    SELECT $1::uuid, 'api_calls', g % 10 + 1,
           $2::timestamptz + ($3::timestamptz - $2::timestamptz) * (g::float8 / $5::bigint),
           'bench-' || g, $3::timestamptz
    FROM generate_series($4::bigint, $4::bigint + $6::bigint - 1) AS g
"""


async def subscribe(server: Server) -> str:
    headers = server.headers
    async with aiohttp.ClientSession(base_url=server.base_url, headers=headers) as http:
        async with http.post("/v1/plans", json=PLAN) as response:
            assert response.status == 201, await response.text()
        async with http.post("/v1/accounts", json={"email": "agg@example.com"}) as response:
            account = await response.json()
        body = {"account_id": account["id"], "plan_code": "metered"}
        async with http.post("/v1/subscriptions", json=body) as response:
            sub = await response.json()
            assert response.status == 201, sub
    sub_id: str = sub["id"]
    return sub_id


async def backdate(url: str, sub_id: str) -> datetime:
    """Start the subscription's current period 29 days ago: a month of quarter-hour buckets."""
    today = datetime.now(UTC).date()
    start = today - timedelta(days=29)
    end = add_intervals(start, Interval.MONTH, 1, 1)
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute(
            "UPDATE subscriptions SET start_date = $2, cycle_anchor = $2, "
            "current_period_start = $2, current_period_end = $3, next_action_at = $4 "
            "WHERE id = $1",
            uuid.UUID(sub_id),
            start,
            end,
            datetime(end.year, end.month, end.day, tzinfo=UTC),
        )
    finally:
        await conn.close()
    return datetime(start.year, start.month, start.day, tzinfo=UTC)


async def fill(
    url: str, sub_id: str, start: datetime, end: datetime, first: int, count: int
) -> None:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        chunk = 1_000_000
        for offset in range(0, count, chunk):
            size = min(chunk, count - offset)
            await conn.execute(FILL, sub_id, start, end, first + offset, first + count, size)
        await conn.execute("VACUUM ANALYZE usage_events")
    finally:
        await conn.close()


async def roll_all(url: str) -> tuple[int, float]:
    engine = create_engine(url, pool_size=2, max_overflow=0)
    sessions = create_session_factory(engine)
    moved = 0
    started = time.perf_counter()
    try:
        while True:
            async with sessions() as session:
                step = await roll_up(engine, session)
            if not step:
                break
            moved += step
    finally:
        await engine.dispose()
    return moved, time.perf_counter() - started


async def time_summary(
    server: Server, sub_id: str, runs: int
) -> tuple[list[float], dict[str, Any]]:
    headers = server.headers
    latencies = []
    body: dict[str, Any] = {}
    async with aiohttp.ClientSession(base_url=server.base_url, headers=headers) as http:
        for _ in range(runs + 3):
            started = time.perf_counter()
            async with http.get(f"/v1/subscriptions/{sub_id}/usage") as response:
                body = await response.json()
                assert response.status == 200, body
            latencies.append(time.perf_counter() - started)
    return latencies[3:], body


def report(name: str, latencies: list[float], body: dict[str, Any]) -> None:
    metric = body["metrics"][0]
    print(
        f"{name}: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} requests "
        f"(value {metric['value']}, {metric['events']:,} events, amount {metric['amount']})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--tail", type=int, default=100_000, help="events left un-rolled")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    with (
        running_server(database_url=args.database_url, workers=1) as server,
        server_database(server, args.database_url) as url,
    ):
        sub_id = await subscribe(server)
        start = await backdate(url, sub_id)
        now = datetime.now(UTC)

        began = time.perf_counter()
        await fill(url, sub_id, start, now, 1, args.events)
        print(f"wrote {args.events:,} events in {time.perf_counter() - began:.0f} s")
        moved, took = await roll_all(url)
        print(f"rollup: {moved:,} events folded in {took:.1f} s ({moved / took:,.0f} events/s)")

        latencies, body = await time_summary(server, sub_id, args.runs)
        report("summary, all rolled up", latencies, body)

        await fill(url, sub_id, start, now, args.events + 1, args.tail)
        latencies, body = await time_summary(server, sub_id, args.runs)
        report(f"summary, {args.tail:,} events not rolled up yet", latencies, body)

        conn = await asyncpg.connect(libpq_url(url))
        try:
            began = time.perf_counter()
            total = await conn.fetchval(
                "SELECT sum(quantity) FROM usage_events WHERE subscription_id = $1 "
                "AND metric = 'api_calls'",
                sub_id,
            )
            scan = time.perf_counter() - began
        finally:
            await conn.close()
        print(f"for comparison, a full scan of the log: {scan * 1000:.0f} ms (sum {total})")
        print("target: < 50 ms per summary at 10M events")


if __name__ == "__main__":
    asyncio.run(main())
