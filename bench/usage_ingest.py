"""Usage ingestion through the real HTTP API, and the raw PostgreSQL ceiling for the same rows.

    python -m bench.usage_ingest [--database-url URL] [--events 400000] [--concurrency 4]

Starts `billing serve --workers 2 --no-worker` (loopback only; an embedded PostgreSQL in a
temporary directory unless --database-url is given), seeds 10,000 active subscriptions on a
metered plan, then posts pre-built batches of 1,000 events (random subscriptions, unique
idempotency keys) to POST /v1/usage/batch with a few requests in flight, and prints the
events accepted per second and the batch latency. In the same run it prints the ceiling:
the same rows written straight into a table with the same columns and indexes by
`INSERT … SELECT FROM unnest … ON CONFLICT DO NOTHING`, batches of 1,000 on 2 connections.
The two take turns on slices of the rows, so that both are measured under the same load.
Target on a 2-core machine: >= 100,000 events/s through the API, >= 0.6 x the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench.cpu import backends, children, cpu_seconds, spent
from bench.server import Server, running_server, server_database
from billing.core.periods import Interval, add_intervals
from billing.db.engine import libpq_url

PLAN = {
    "code": "metered",
    "name": "Metered",
    "interval": "month",
    "prices": [
        {
            "currency": "USD",
            "unit_amount": 1000,
            "metered": [{"metric": "api_calls", "model": "per_unit", "unit_amount_decimal": "0.1"}],
        }
    ],
}

SEED = [
    """
    INSERT INTO accounts (id, email, name, currency, timezone, locale, status, tax_exempt,
                          tax_ids, address, metadata, created_at, updated_at)
    SELECT gen_random_uuid(), 'usage' || g || '@example.com', NULL, 'USD', 'UTC', 'en_US',
           'active', 'none', '[]', NULL, '{}', $1, $1
    FROM generate_series(1, $2) AS g
    """,
    """
    INSERT INTO subscriptions (id, account_id, plan_id, currency, quantity, status, start_date,
        cycle_anchor, anchor_day, period_index, current_period_start, current_period_end,
        trial_start, trial_end, cancel_at_period_end, canceled_at, ended_at, next_action_at,
        metadata, created_at, updated_at)
    SELECT gen_random_uuid(), a.id, $1, 'USD', 1, 'active', $2, $2, NULL, 0, $2, $3,
           NULL, NULL, false, NULL, NULL, $4, '{}', $5, $5
    FROM accounts a WHERE a.email LIKE 'usage%'
    """,
    "ANALYZE",
]
COLUMNS = (
    "subscription_id, metric, quantity, occurred_at, idempotency_key, properties, "
    "unique_value, received_at"
)
CEILING_INSERT = f"""
    INSERT INTO usage_ceiling ({COLUMNS})
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::numeric[], $4::timestamptz[], $5::text[],
                         $6::jsonb[], $7::text[], $8::timestamptz[])
    ON CONFLICT (idempotency_key) DO NOTHING
"""


def build_batches(
    sub_ids: list[str], *, batches: int, size: int, at: datetime
) -> list[list[dict[str, Any]]]:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [
        [
            {
                "subscription_id": random.choice(sub_ids),
                "metric": "api_calls",
                "quantity": random.randint(1, 100),
                "timestamp": stamp,
                "idempotency_key": uuid.uuid4().hex,
            }
            for _ in range(size)
        ]
        for _ in range(batches)
    ]


async def seed(server: Server, url: str, subs: int) -> list[str]:
    headers = server.headers
    async with (
        aiohttp.ClientSession(base_url=server.base_url, headers=headers) as http,
        http.post("/v1/plans", json=PLAN) as response,
    ):
        assert response.status == 201, await response.text()
        plan_id = uuid.UUID((await response.json())["id"])
    now = datetime.now(UTC)
    today = now.date()
    start = today - timedelta(days=3)
    end = add_intervals(start, Interval.MONTH, 1, 1)
    ends_at = datetime(end.year, end.month, end.day, tzinfo=UTC)
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute(SEED[0], now, subs)
        await conn.execute(SEED[1], plan_id, start, end, ends_at, now)
        await conn.execute(SEED[2])
        rows = await conn.fetch("SELECT id::text FROM subscriptions WHERE plan_id = $1", plan_id)
    finally:
        await conn.close()
    return [row[0] for row in rows]


async def cpu_owners(url: str, server_pid: int) -> tuple[list[int], list[int]]:
    """The server's processes, and the PostgreSQL backends serving its database."""
    return [server_pid, *children(server_pid)], await backends(url)


async def drive(
    server: Server, bodies: list[bytes], concurrency: int
) -> tuple[int, int, float, list[float]]:
    headers = server.headers | {"Content-Type": "application/json"}
    queue = list(reversed(bodies))
    latencies: list[float] = []
    accepted = other = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        base_url=server.base_url, headers=headers, connector=connector
    ) as http:

        async def loop() -> None:
            nonlocal accepted, other
            while queue:
                body = queue.pop()
                started = time.perf_counter()
                async with http.post("/v1/usage/batch", data=body) as response:
                    payload = await response.read()
                latencies.append(time.perf_counter() - started)
                if response.status != 200:
                    raise SystemExit(f"batch failed: {response.status} {payload[:500]!r}")
                answer = orjson.loads(payload)
                accepted += answer["accepted"]
                other += answer["duplicates"] + answer["rejected"]

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return accepted, other, elapsed, latencies


def ceiling_rows(batches: list[list[dict[str, Any]]]) -> list[tuple[Any, ...]]:
    """The same rows as the API receives, as the columns of one INSERT per batch."""
    received = datetime.now(UTC)
    return [
        (
            [e["subscription_id"] for e in batch],
            [e["metric"] for e in batch],
            [Decimal(e["quantity"]) for e in batch],
            [datetime.fromisoformat(e["timestamp"]) for e in batch],
            [e["idempotency_key"] for e in batch],
            [None] * len(batch),
            [None] * len(batch),
            [received] * len(batch),
        )
        for batch in batches
    ]


async def ceiling(pool: list[asyncpg.Connection], rows: list[tuple[Any, ...]]) -> float:
    """Seconds to write `rows` straight into usage_ceiling, one batch per statement."""
    queue = list(reversed(rows))

    async def loop(conn: asyncpg.Connection) -> None:
        while queue:
            await conn.execute(CEILING_INSERT, *queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(loop(conn) for conn in pool))
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--events", type=int, default=400_000, help="events measured")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--subs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--rounds", type=int, default=4, help="API / ceiling turns")
    args = parser.parse_args()

    with (
        running_server(database_url=args.database_url, workers=args.workers) as server,
        server_database(server, args.database_url) as url,
    ):
        sub_ids = await seed(server, url, args.subs)
        count = max(1, args.events // args.batch)
        now = datetime.now(UTC) - timedelta(seconds=1)
        warmup = build_batches(sub_ids, batches=20, size=args.batch, at=now)
        measured = build_batches(sub_ids, batches=count, size=args.batch, at=now)
        await drive(server, [orjson.dumps({"events": b}) for b in warmup], args.concurrency)
        bodies = [orjson.dumps({"events": b}) for b in measured]
        rows = ceiling_rows(measured)

        # The API and the ceiling take turns on the same slices of rows, so that both see the
        # same machine (other work on it, the tables' sizes).
        admin = await asyncpg.connect(libpq_url(url))
        await admin.execute("DROP TABLE IF EXISTS usage_ceiling")
        await admin.execute("CREATE TABLE usage_ceiling (LIKE usage_events INCLUDING ALL)")
        pool = [await asyncpg.connect(libpq_url(url)) for _ in range(2)]
        accepted = other = 0
        elapsed = raw_elapsed = 0.0
        latencies: list[float] = []
        cpu = [0.0, 0.0, 0.0]
        size = -(-len(bodies) // args.rounds)
        try:
            for first in range(0, len(bodies), size):
                servers, backends = await cpu_owners(url, server.pid)
                before = (cpu_seconds(servers), cpu_seconds(backends), time.process_time())
                got, rest, took, slice_latencies = await drive(
                    server, bodies[first : first + size], args.concurrency
                )
                servers, backends = await cpu_owners(url, server.pid)  # new connections too
                after = (cpu_seconds(servers), cpu_seconds(backends), time.process_time())
                cpu[0] += spent(before[0], after[0])
                cpu[1] += spent(before[1], after[1])
                cpu[2] += after[2] - before[2]
                accepted, other, elapsed = accepted + got, other + rest, elapsed + took
                latencies += slice_latencies
                raw_elapsed += await ceiling(pool, rows[first : first + size])
            raw_rows = await admin.fetchval("SELECT count(*) FROM usage_ceiling")
        finally:
            for conn in pool:
                await conn.close()
            await admin.execute("DROP TABLE IF EXISTS usage_ceiling")
            await admin.close()

        rate = accepted / elapsed
        q = statistics.quantiles(latencies, n=100)
        print(
            f"API: {accepted:,} events accepted ({other} not) in {elapsed:.2f} s = "
            f"{rate:,.0f} events/s; batch of {args.batch}: p50 {q[49] * 1000:.1f} ms, "
            f"p95 {q[94] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms "
            f"({args.concurrency} in flight, {args.workers} server processes)"
        )
        per = 1000 * 1000 / max(accepted, 1)  # ms per 1,000 events
        print(
            f"CPU per 1,000 events: API processes {cpu[0] * per:.1f} ms, "
            f"PostgreSQL backends {cpu[1] * per:.1f} ms, this client {cpu[2] * per:.1f} ms"
        )
        raw = raw_rows / raw_elapsed
        print(
            f"raw ceiling: {raw:,.0f} rows/s (INSERT … SELECT FROM unnest … ON CONFLICT DO "
            f"NOTHING, same rows and indexes, 2 connections; {args.rounds} rounds taking turns "
            "with the API)"
        )
        print(f"API / ceiling: {rate / raw:.2f}")
        print("target: >= 100,000 events/s through the API and >= 0.6 x the ceiling")


if __name__ == "__main__":
    asyncio.run(main())
