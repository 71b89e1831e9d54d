"""Aggregation: every type, the rollups against the raw log, and period boundaries in local
time (DST, and zones a quarter hour off UTC)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest

from billing.runtime import Runtime
from billing.usage.aggregate import roll_up
from billing.worker.runner import Worker
from tests.conftest import Sql
from tests.factories.billing import (
    advance,
    invoices_of,
)
from tests.factories.usage import (
    accept_all,
    event,
    metered_subscription,
    per_unit,
    send_batch,
    usage_of,
    values,
)

EVERY_KIND = [
    per_unit("api_calls", "sum"),
    per_unit("emails", "count"),
    per_unit("storage_gb", "max"),
    per_unit("seats", "unique_count", property="user"),
    per_unit("plan_level", "latest"),
]


async def test_every_aggregation_type_from_the_log_and_from_rollups(
    client: httpx.AsyncClient, worker: Worker, sql: Sql
) -> None:
    _, sub = await metered_subscription(client, EVERY_KIND, "2026-03-10T12:00:00Z")
    s = sub["id"]
    at = "2026-03-10T{}:00Z".format
    await accept_all(
        client,
        [
            event(s, "api_calls", 10, timestamp=at("10:00")),
            event(s, "api_calls", "20.5", timestamp=at("11:00")),
            event(s, "emails", 1, timestamp=at("10:00")),
            event(s, "emails", 1, timestamp=at("10:01")),
            event(s, "emails", 3, timestamp=at("10:02")),
            event(s, "storage_gb", 7, timestamp=at("09:00")),
            event(s, "storage_gb", "12.25", timestamp=at("10:00")),
            event(s, "storage_gb", 3, timestamp=at("11:00")),
            event(s, "seats", 1, properties={"user": "ada"}, timestamp=at("09:00")),
            event(s, "seats", 1, properties={"user": "bob"}, timestamp=at("09:30")),
            event(s, "seats", 1, properties={"user": "ada"}, timestamp=at("11:30")),
            event(s, "seats", 1, properties={"user": 7}, timestamp=at("11:45")),
            event(s, "plan_level", 5, timestamp=at("10:00")),
            event(s, "plan_level", 9, timestamp=at("11:00")),
            event(s, "plan_level", 2, timestamp=at("10:30")),  # older: not the latest
        ],
    )
    # One cent per unit: sum 30.5 -> 31 (half up); count 1+1+3 = 5; max 12.25 -> 12;
    # distinct users ada, bob, 7 = 3; latest by timestamp (11:00) = 9
    expected = {
        "api_calls": ("30.5", 31),
        "emails": ("5", 5),
        "storage_gb": ("12.25", 12),
        "seats": ("3", 3),
        "plan_level": ("9", 9),
    }
    summary = await usage_of(client, s)
    assert values(summary) == expected
    assert summary["amount"] == 31 + 5 + 12 + 3 + 9
    assert [m["events"] for m in summary["metrics"]] == [2, 3, 3, 4, 3]

    await worker.run_due()  # folds the log into the rollups
    assert await sql("SELECT rolled_through FROM usage_rollup_state") == [(15,)]
    assert values(await usage_of(client, s)) == expected

    # New events are read from the log on top of the rollups.
    await accept_all(
        client,
        [
            event(s, "api_calls", "1.5", timestamp=at("11:59")),
            event(s, "emails", 2, timestamp=at("09:00")),
            event(s, "storage_gb", 20, timestamp=at("08:00")),
            event(s, "seats", 1, properties={"user": "bob"}, timestamp=at("11:59")),
            event(s, "seats", 1, properties={"user": "cy"}, timestamp=at("11:59")),
            event(s, "plan_level", 4, timestamp=at("11:00")),  # same time as 9, arrived later
        ],
    )
    expected = {
        "api_calls": ("32", 32),
        "emails": ("7", 7),
        "storage_gb": ("20", 20),
        "seats": ("4", 4),
        "plan_level": ("4", 4),
    }
    assert values(await usage_of(client, s)) == expected
    await worker.run_due()
    assert values(await usage_of(client, s)) == expected
    # Quarter-hour buckets per metric: api_calls 10:00 11:00 11:45, emails 09:00 10:00,
    # storage_gb 08:00 09:00 10:00 11:00, seats 09:00 09:30 11:30 11:45, plan_level 10:00
    # 10:30 11:00: 16 rows for 21 events.
    assert await sql("SELECT count(*), sum(events) FROM usage_rollups") == [(16, 21)]


async def test_period_boundary_in_new_york_across_dst(client: httpx.AsyncClient) -> None:
    # Subscribed on 2025-03-01 (EST, UTC-5); the period ends at local midnight of
    # 2025-04-01, which is EDT (UTC-4): 2025-04-01T04:00:00Z.
    clock_id, sub = await metered_subscription(
        client,
        [per_unit("api_calls")],
        "2025-03-01T17:00:00Z",
        timezone="America/New_York",
    )
    assert (sub["current_period_start"], sub["current_period_end"]) == ("2025-03-01", "2025-04-01")
    s = sub["id"]
    await advance(client, clock_id, "2025-04-01T03:58:00Z")  # 23:58 on Mar 31, local
    answer = await send_batch(
        client,
        [
            event(s, quantity=1000, timestamp="2025-03-01T04:59:59Z"),  # Feb 28, 23:59:59 local
            event(s, quantity=1, timestamp="2025-03-01T05:00:00Z"),  # Mar 1, 00:00 local
            event(s, quantity=2, timestamp="2025-03-09T07:30:00Z"),  # the night clocks jump
            event(s, quantity=4, timestamp="2025-03-31T23:59:00-04:00"),  # last minute of March
            event(s, quantity=10, timestamp="2025-04-01T00:00:00-04:00"),  # April, local
        ],
    )
    assert [r.get("reason") for r in answer["results"]] == ["period_not_billable"] + [None] * 4
    assert values(await usage_of(client, s)) == {"api_calls": ("7", 7)}  # 1 + 2 + 4
    assert values(await usage_of(client, s, "2025-04-01/2025-05-01")) == {"api_calls": ("10", 10)}

    await advance(client, clock_id, "2025-04-01T04:30:00Z")
    renewal = (await invoices_of(client, s))[1]
    assert renewal["created_at"] == "2025-04-01T04:00:00Z"
    usage_line = renewal["lines"][1]
    assert (usage_line["description"], usage_line["quantity"], usage_line["amount"]) == (
        "api_calls usage (2025-03-01 to 2025-03-31)",
        "7",
        7,
    )
    assert values(await usage_of(client, s)) == {"api_calls": ("10", 10)}
    assert values(await usage_of(client, s, "previous")) == {"api_calls": ("7", 7)}


@pytest.mark.parametrize(
    ("timezone", "last_minute", "first_minute"),
    [
        # +05:45: local midnight of Apr 10 is 18:15 UTC on Apr 9
        ("Asia/Kathmandu", "2026-04-09T18:14:00Z", "2026-04-09T18:15:00Z"),
        # +05:30
        ("Asia/Kolkata", "2026-04-09T18:29:59Z", "2026-04-09T18:30:00Z"),
        # -02:30 (Newfoundland summer time)
        ("America/St_Johns", "2026-04-10T02:29:59Z", "2026-04-10T02:30:00Z"),
    ],
)
async def test_rollups_keep_boundaries_that_are_not_on_the_hour(
    client: httpx.AsyncClient,
    worker: Worker,
    timezone: str,
    last_minute: str,
    first_minute: str,
) -> None:
    clock_id, sub = await metered_subscription(
        client, [per_unit("api_calls")], "2026-03-10T12:00:00Z", timezone=timezone
    )
    assert sub["current_period_end"] == "2026-04-10"
    await advance(client, clock_id, last_minute)
    await accept_all(
        client,
        [
            event(sub["id"], quantity=3, timestamp=last_minute),
            event(sub["id"], quantity=100, timestamp=first_minute),
        ],
    )
    await worker.run_due()  # both events are now in rollups, in neighbouring quarter hours
    assert values(await usage_of(client, sub["id"])) == {"api_calls": ("3", 3)}
    next_period = "2026-04-10/2026-05-10"
    assert values(await usage_of(client, sub["id"], next_period)) == {"api_calls": ("100", 100)}


async def test_rollup_during_concurrent_ingestion_loses_and_doubles_nothing(
    client: httpx.AsyncClient, runtime: Runtime, sql: Sql
) -> None:
    _, sub = await metered_subscription(client, [per_unit("api_calls")], "2026-03-10T12:00:00Z")
    batches = [
        [event(sub["id"], quantity=b + 1, timestamp="2026-03-10T11:00:00Z") for _ in range(300)]
        for b in range(20)
    ]

    async def ingest(batch: list[dict[str, Any]]) -> None:
        await accept_all(client, batch)

    async def keep_rolling() -> int:
        moved = 0
        for _ in range(30):
            async with runtime.sessions() as session:
                moved += await roll_up(runtime.engine, session, chunk=700)
            await asyncio.sleep(0)
        return moved

    await asyncio.gather(*(ingest(b) for b in batches), keep_rolling(), keep_rolling())
    async with runtime.sessions() as session:
        while await roll_up(runtime.engine, session):
            continue  # until everything is rolled up
    # 300 events of each quantity 1..20: 300 x 210 = 63,000
    assert values(await usage_of(client, sub["id"])) == {"api_calls": ("63000", 63000)}
    assert await sql("SELECT sum(total), sum(events) FROM usage_rollups") == [
        (Decimal(63000), 6000)
    ]
    assert await sql("SELECT rolled_through FROM usage_rollup_state") == [(6000,)]


async def test_custom_and_previous_periods(client: httpx.AsyncClient) -> None:
    _, sub = await metered_subscription(client, [per_unit("api_calls")], "2026-03-10T12:00:00Z")
    await accept_all(
        client,
        [
            event(sub["id"], quantity=5, timestamp="2026-03-10T01:00:00Z"),
            event(sub["id"], quantity=7, timestamp="2026-03-10T12:00:00Z"),
        ],
    )
    assert values(await usage_of(client, sub["id"], "2026-03-10/2026-03-11")) == {
        "api_calls": ("12", 12)
    }
    assert values(await usage_of(client, sub["id"], "2026-01-01/2026-03-10")) == {
        "api_calls": ("0", 0)
    }
    for bad in ("yesterday", "2026-03-11/2026-03-10", "2026-03-10/x"):
        response = await client.get(f"/v1/subscriptions/{sub['id']}/usage", params={"period": bad})
        assert (response.status_code, response.json()["param"]) == (422, "period")
    # The first period has nothing before it.
    previous = await client.get(
        f"/v1/subscriptions/{sub['id']}/usage", params={"period": "previous"}
    )
    assert previous.status_code == 409
    missing = await client.get("/v1/subscriptions/00000000-0000-4000-8000-000000000000/usage")
    assert missing.status_code == 404
