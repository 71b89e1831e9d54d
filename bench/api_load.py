"""Mixed API load over loopback, and the same server's /health ceiling.

    python -m bench.api_load [--database-url URL] [--seconds 15] [--concurrency 32]

Starts `billing serve --workers 2` (auth, rate limiting with a raised limit, idempotency and
JSON logging all on), seeds accounts and plans, then drives 60 % GET /v1/accounts/{id},
20 % GET /v1/plans, 20 % POST /v1/accounts with an Idempotency-Key for a bounded time and
prints req/s and p50/p95/p99 latency. Target: >= 2,000 req/s at p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp

from bench.server import Server, running_server

Request = Callable[[aiohttp.ClientSession], Awaitable[int]]


async def drive(
    server: Server, pick: Callable[[], Request], *, seconds: float, concurrency: int
) -> tuple[int, int, list[float]]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = server.headers
    async with aiohttp.ClientSession(
        base_url=server.base_url, connector=connector, headers=headers
    ) as session:

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                request = pick()
                started = time.perf_counter()
                status = await request(session)
                latencies.append(time.perf_counter() - started)
                if status >= 400:
                    errors += 1

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return len(latencies), errors, latencies


def report(name: str, count: int, errors: int, latencies: list[float], seconds: float) -> float:
    rate = count / seconds
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<12} {rate:>9.0f} req/s   p50 {q[49] * 1000:6.1f} ms   p95 {q[94] * 1000:6.1f} ms"
        f"   p99 {q[98] * 1000:6.1f} ms   errors {errors}"
    )
    return rate


async def seed(server: Server) -> list[str]:
    headers = server.headers
    async with aiohttp.ClientSession(base_url=server.base_url, headers=headers) as session:
        ids = []
        for i in range(200):
            async with session.post("/v1/accounts", json={"email": f"seed{i}@example.com"}) as r:
                ids.append((await r.json())["id"])
        for i in range(10):
            plan = {
                "code": f"plan-{i}",
                "name": f"Plan {i}",
                "interval": "month",
                "prices": [{"currency": "USD", "unit_amount": 1000 + i}],
            }
            async with session.post("/v1/plans", json=plan) as r:
                assert r.status == 201, await r.text()
    return ids


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with running_server(database_url=args.database_url, workers=args.workers) as server:
        account_ids = await seed(server)

        async def get_account(s: aiohttp.ClientSession) -> int:
            async with s.get(f"/v1/accounts/{random.choice(account_ids)}") as r:
                await r.read()
                return r.status

        async def list_plans(s: aiohttp.ClientSession) -> int:
            async with s.get("/v1/plans") as r:
                await r.read()
                return r.status

        async def create_account(s: aiohttp.ClientSession) -> int:
            key = uuid.uuid4().hex
            body = {"email": f"load-{key}@example.com"}
            async with s.post("/v1/accounts", json=body, headers={"Idempotency-Key": key}) as r:
                await r.read()
                return r.status

        mix: list[Request] = [get_account] * 6
        mix += [list_plans] * 2
        mix += [create_account] * 2

        async def health(s: aiohttp.ClientSession) -> int:
            async with s.get("/health") as r:
                await r.read()
                return r.status

        # Warm up, then measure.
        await drive(server, lambda: random.choice(mix), seconds=2, concurrency=args.concurrency)
        n, errors, lat = await drive(
            server, lambda: random.choice(mix), seconds=args.seconds, concurrency=args.concurrency
        )
        mixed = report("mixed", n, errors, lat, args.seconds)
        n, errors, lat = await drive(
            server, lambda: health, seconds=args.seconds, concurrency=args.concurrency
        )
        ceiling = report("/health", n, errors, lat, args.seconds)
        print(f"mixed / health ceiling: {mixed / ceiling:.2f}")
        print("target: >= 2000 req/s mixed at p95 < 50 ms")


if __name__ == "__main__":
    asyncio.run(main())
