"""Two workers never double-bill; a worker killed mid-batch loses nothing."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from billing.clock import FrozenClock
from billing.db.engine import raw_connect
from billing.runtime import Runtime
from billing.worker.runner import Worker
from billing.worker.sweeps import default_sweeps
from tests.conftest import AppFactory, Sql, http_client, new_api_key, runtime_of, worker_process
from tests.factories.billing import simple_plan

CREATED = datetime(2026, 1, 15, 12, tzinfo=UTC)


async def seed(make_app: AppFactory, count: int) -> tuple[Runtime, list[str]]:
    """`count` monthly subscriptions created on Jan 15 (system-clock accounts)."""
    app = make_app(clock=FrozenClock(CREATED))
    async with http_client(app, await new_api_key(app)) as client:
        await simple_plan(client, amount=1000)
        ids = []
        for i in range(count):
            account = (
                await client.post("/v1/accounts", json={"email": f"w{i}@example.com"})
            ).json()
            sub = await client.post(
                "/v1/subscriptions", json={"account_id": account["id"], "plan_code": "pro"}
            )
            assert sub.status_code == 201, sub.text
            ids.append(sub.json()["id"])
    return runtime_of(app), ids


def worker_at(runtime: Runtime, at: datetime, batch_size: int) -> Worker:
    return Worker(
        engine=runtime.engine,
        sessions=runtime.sessions,
        clock=FrozenClock(at),
        sweeps=default_sweeps(),
        settings=runtime.settings,
        batch_size=batch_size,
    )


async def invoice_numbers(sql: Sql) -> list[str]:
    return [r.number for r in await sql("SELECT number FROM invoices ORDER BY number")]


async def test_two_workers_at_once_never_double_bill(make_app: AppFactory, sql: Sql) -> None:
    runtime, _ = await seed(make_app, 40)
    # By Mar 31 two renewals are due for each (Feb 15 and Mar 15).
    at = datetime(2026, 3, 31, tzinfo=UTC)
    first, second = worker_at(runtime, at, 7), worker_at(runtime, at, 7)
    done = await asyncio.gather(first.run_due(), second.run_due())
    assert done[0]["subscriptions_due"] + done[1]["subscriptions_due"] == 80
    assert done[0]["subscriptions_due"] > 0
    assert done[1]["subscriptions_due"] > 0
    rows = await sql(
        "SELECT subscription_id, count(*) AS n, count(DISTINCT cycle_key) AS keys "
        "FROM invoices GROUP BY subscription_id"
    )
    assert len(rows) == 40
    assert {(r.n, r.keys) for r in rows} == {(3, 3)}
    # 120 invoices, numbered without a gap or a duplicate.
    assert await invoice_numbers(sql) == [f"INV-{n:06d}" for n in range(1, 121)]
    # Running again finds nothing more to do.
    again = await worker_at(runtime, at, 7).run_due()
    assert again["subscriptions_due"] == 0


async def test_worker_killed_mid_batch_loses_nothing(
    make_app: AppFactory, sql: Sql, database_url: str, tmp_path: Path
) -> None:
    runtime, _ = await seed(make_app, 20)
    before = await sql("SELECT id, next_action_at FROM subscriptions ORDER BY id")

    # Hold the invoice-number lock so a real worker process blocks in the middle of its batch
    # (subscriptions claimed and rows written, not yet committed), then kill it with SIGKILL.
    blocker = await raw_connect(database_url)
    watcher = await raw_connect(database_url)  # outside any transaction: fresh statistics
    await blocker.execute("BEGIN")
    await blocker.execute("SELECT value FROM invoice_number_counters FOR UPDATE")
    log_path = tmp_path / "worker.log"
    try:
        with worker_process(database_url, log_path, WORKER_BATCH_SIZE="50") as proc:
            deadline = time.monotonic() + 30
            while not await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'UPDATE invoice_number_counters%'"
            ):
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    finally:
        await blocker.execute("ROLLBACK")
        await blocker.close()
        await watcher.close()

    # The killed batch left no trace: the 20 first invoices only, subscriptions unchanged.
    assert await invoice_numbers(sql) == [f"INV-{n:06d}" for n in range(1, 21)]
    assert await sql("SELECT id, next_action_at FROM subscriptions ORDER BY id") == before

    # The next run does the work, exactly once, and the numbering continues without a gap.
    done = await worker_at(runtime, datetime(2026, 2, 20, tzinfo=UTC), 50).run_due()
    assert done["subscriptions_due"] == 20
    assert await invoice_numbers(sql) == [f"INV-{n:06d}" for n in range(1, 41)]
    renewed = await sql("SELECT DISTINCT current_period_start::text AS s FROM subscriptions")
    assert [r.s for r in renewed] == ["2026-02-15"]


async def test_sigterm_stops_the_worker_between_batches(
    make_app: AppFactory, sql: Sql, database_url: str, tmp_path: Path
) -> None:
    await seed(make_app, 30)
    # Ten months of renewals are due for each subscription (the worker uses the real clock,
    # and they were created on Jan 15 2026): a backlog worked through in batches of 5.
    log_path = tmp_path / "worker.log"
    with worker_process(database_url, log_path, WORKER_BATCH_SIZE="5") as proc:
        deadline = time.monotonic() + 30
        while not (
            await sql(
                "SELECT count(*) AS n FROM invoices WHERE billing_reason = 'subscription_cycle'"
            )
        )[0].n:
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert "worker_stopped" in log_path.read_text()
    # Whatever was committed is whole: every renewal invoice has its subscription advanced.
    rows = await sql(
        "SELECT s.id, s.period_index, count(i.id) FILTER (WHERE i.billing_reason = "
        "'subscription_cycle') AS renewals FROM subscriptions s LEFT JOIN invoices i "
        "ON i.subscription_id = s.id GROUP BY s.id"
    )
    assert all(r.period_index == r.renewals for r in rows)
    numbers = await invoice_numbers(sql)
    assert numbers == [f"INV-{n:06d}" for n in range(1, len(numbers) + 1)]
    assert len(numbers) < 30 + 30 * 10  # it stopped before working through the backlog
