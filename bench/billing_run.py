"""Renewal throughput of the real worker code path.

    python -m bench.billing_run [--subs 100000] [--database-url URL] [--batch 1000] [--workers 2]

Seeds N active monthly subscriptions whose renewal is due, then renews them all through the
worker's `subscriptions_due` sweep (claim with SKIP LOCKED, pure rules, bulk finalize with
numbers, credit, tax, lines, events) in --workers processes, one worker each as `billing
worker` runs, and prints finalized invoices per second and the CPU spent per 1,000 invoices
by the workers and by PostgreSQL. In the same run it prints the ceiling: one set-based
INSERT … SELECT writing the same invoice and line rows.
Target on a 2-core machine: >= 5,000 finalized invoices/s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.cpu import backends, cpu_seconds, spent
from billing import heap
from billing.clock import FrozenClock
from billing.db.embedded import release_embedded, start_embedded
from billing.db.engine import create_engine, create_session_factory
from billing.db.migrate import upgrade
from billing.settings import Settings
from billing.worker.runner import Sweep, Worker
from billing.worker.sweeps import subscriptions_due

DUE = datetime(2026, 2, 1, tzinfo=UTC)

SEED = [
    "TRUNCATE events, invoice_lines, credit_entries, invoices, subscription_history, "
    "subscriptions, payment_methods, accounts, plans CASCADE",
    "UPDATE invoice_number_counters SET value = 0",
    """
    INSERT INTO plans (id, code, version, name, description, interval, interval_count,
                       trial_days, active, prices, metadata, created_at)
    VALUES ('00000000-0000-4000-8000-000000000001', 'bench', 1, 'Bench', NULL, 'month', 1, 0,
            true, '[{"currency": "USD", "unit_amount": 2900, "metered": []}]', '{}',
            '2026-01-01T00:00:00Z')
    """,
    """
    INSERT INTO accounts (id, email, name, currency, timezone, locale, status, tax_exempt,
                          tax_ids, address, metadata, created_at, updated_at)
    SELECT gen_random_uuid(), 'bench' || g || '@example.com', NULL, 'USD', 'UTC', 'en_US',
           'active', 'none', '[]', NULL, '{}', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'
    FROM generate_series(1, :n) AS g
    """,
    """
    INSERT INTO subscriptions (id, account_id, plan_id, currency, quantity, status, start_date,
        cycle_anchor, anchor_day, period_index, current_period_start, current_period_end,
        trial_start, trial_end, cancel_at_period_end, canceled_at, ended_at, next_action_at,
        metadata, created_at, updated_at)
    SELECT gen_random_uuid(), a.id, '00000000-0000-4000-8000-000000000001', 'USD', 1, 'active',
           DATE '2026-01-01', DATE '2026-01-01', NULL, 0, DATE '2026-01-01', DATE '2026-02-01',
           NULL, NULL, false, NULL, NULL, TIMESTAMPTZ '2026-02-01T00:00:00Z', '{}',
           '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'
    FROM accounts a
    """,
    "ANALYZE",
]

CEILING = [
    # Real (logged) tables with the same columns, indexes and constraints as the originals.
    "DROP TABLE IF EXISTS ceiling_lines, ceiling_invoices",
    "CREATE TABLE ceiling_invoices (LIKE invoices INCLUDING ALL)",
    "CREATE TABLE ceiling_lines (LIKE invoice_lines INCLUDING ALL)",
    """
    WITH inv AS (
        INSERT INTO ceiling_invoices
        SELECT gen_random_uuid(), 'X-' || row_number() OVER (), s.account_id, s.id, s.currency,
               'open', 'subscription_cycle', '2026-03-01', DATE '2026-03-01', DATE '2026-04-01',
               2900, 0, 2900, 0, 2900, 0, 2900, :at, :at, :at, NULL, NULL, NULL
        FROM subscriptions s
        RETURNING id
    )
    INSERT INTO ceiling_lines
    SELECT gen_random_uuid(), inv.id, 0, 'subscription', 'Bench (2026-02-01 to 2026-02-28)',
           DATE '2026-02-01', DATE '2026-03-01', 1, 2900, NULL, 2900, '{}'
    FROM inv
    """,
]


def _worker_process(url: str, batch: int, go: Any, release: Any, results: Any) -> None:
    """One worker: renew what is due once `go` is set; report (renewed, CPU seconds)."""

    async def run() -> None:
        engine = create_engine(url, pool_size=2, max_overflow=0)
        worker = Worker(
            engine=engine,
            sessions=create_session_factory(engine),
            clock=FrozenClock(DUE),
            sweeps=[Sweep("subscriptions_due", subscriptions_due)],
            settings=Settings(_env_file=None, database_url=url),
            batch_size=batch,
        )
        async with engine.connect() as conn:  # connected before the clock starts
            await conn.execute(text("SELECT 1"))
        heap.settle()  # as `billing worker` does once started
        results.put("ready")
        await asyncio.to_thread(go.wait)
        cpu = time.process_time()
        counts = await worker.run_due()
        results.put((counts.get("subscriptions_due", 0), time.process_time() - cpu))
        await asyncio.to_thread(release.wait)  # once the parent has read the CPU figures
        await engine.dispose()

    asyncio.run(run())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subs", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
        url = args.database_url or await asyncio.to_thread(start_embedded, Path(tmp))
        try:
            await run(args, url)
        finally:
            release_embedded(Path(tmp))  # before the temporary directory goes


async def run(args: argparse.Namespace, url: str) -> None:
    await upgrade(url)
    engine = create_engine(url, pool_size=args.workers + 2, max_overflow=0)
    async with engine.begin() as conn:
        for statement in SEED:
            await conn.execute(text(statement), {"n": args.subs})
    # One process per worker, as `billing worker` runs in production: each has its own
    # interpreter and connections, and they meet only in PostgreSQL.
    spawn = multiprocessing.get_context("spawn")
    go, release = spawn.Event(), spawn.Event()
    results = spawn.Queue()
    procs = [
        spawn.Process(target=_worker_process, args=(url, args.batch, go, release, results))
        for _ in range(args.workers)
    ]
    for proc in procs:
        proc.start()
    ready = [results.get(timeout=120) for _ in procs]
    assert ready == ["ready"] * len(procs), ready
    before = cpu_seconds(await backends(url))
    started = time.perf_counter()
    go.set()
    done = [results.get(timeout=3600) for _ in procs]
    elapsed = time.perf_counter() - started
    after = cpu_seconds(await backends(url))  # while the workers are still connected
    release.set()
    for proc in procs:
        proc.join()
    counts = [count for count, _ in done]
    worker_cpu = sum(cpu for _, cpu in done)
    renewed = sum(counts)
    async with engine.connect() as conn:
        invoices = (await conn.execute(text("SELECT count(*) FROM invoices"))).scalar_one()
        top = (
            await conn.execute(text("SELECT max(number), count(DISTINCT number) FROM invoices"))
        ).one()
    rate = invoices / elapsed
    print(f"renewed {renewed} subscriptions -> {invoices} invoices in {elapsed:.2f} s")
    print(
        f"worker path: {rate:,.0f} finalized invoices/s "
        f"({args.workers} workers x batch {args.batch}); last number {top[0]}, "
        f"{top[1]} distinct"
    )
    per = 1000 * 1000 / max(invoices, 1)  # ms per 1,000 invoices
    print(
        f"CPU per 1,000 invoices: workers {worker_cpu * per:.1f} ms, "
        f"PostgreSQL backends {spent(before, after) * per:.1f} ms"
    )

    async with engine.begin() as conn:
        for statement in CEILING[:3]:
            await conn.execute(text(statement))
    async with engine.begin() as conn:
        t0 = time.perf_counter()
        await conn.execute(text(CEILING[3]), {"at": DUE})
    ceiling_elapsed = time.perf_counter() - t0
    async with engine.begin() as conn:
        await conn.execute(text(CEILING[0]))
    ceiling = args.subs / ceiling_elapsed
    print(
        f"set-based ceiling: {ceiling:,.0f} invoices/s (one INSERT … SELECT, "
        f"{ceiling_elapsed:.2f} s)"
    )
    print(f"worker / ceiling: {rate / ceiling:.2f}")
    print("target: >= 5,000 finalized invoices/s")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
