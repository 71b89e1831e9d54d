"""Recording usage over HTTP: one event, batches, idempotency and every rejection rule."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billing.auth.permissions import Role
from billing.clock import FrozenClock
from billing.db.engine import raw_connect
from billing.usage.aggregate import INGEST_LOCK
from tests.conftest import Sql, http_client, new_api_key, runtime_of
from tests.factories.accounts import create_account
from tests.factories.billing import subscribe
from tests.factories.usage import (
    event,
    graduated,
    metered_plan,
    metered_subscription,
    per_unit,
    send_batch,
    usage_of,
    values,
)

NOW = "2026-03-10T12:00:00Z"


async def test_submit_usage_event_with_idempotency(client: httpx.AsyncClient) -> None:
    _, sub = await metered_subscription(client, [graduated()], NOW)
    body = event(sub["id"], quantity=120, idempotency_key="req-1", timestamp="2026-03-10T11:00:00Z")

    first = await client.post("/v1/usage", json=body)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "object": "usage_event",
        "status": "accepted",
        "subscription_id": sub["id"],
        "metric": "api_calls",
        "quantity": "120",
        "timestamp": "2026-03-10T11:00:00Z",
        "idempotency_key": "req-1",
        "properties": None,
    }
    again = await client.post("/v1/usage", json=body)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"

    other = await client.post("/v1/usage", json=body | {"quantity": 121})
    assert other.status_code == 422
    problem = other.json()
    assert (problem["code"], problem["reason"], problem["param"]) == (
        "idempotency_key_reused",
        "idempotency_key_reused",
        "idempotency_key",
    )
    assert values(await usage_of(client, sub["id"]))["api_calls"] == ("120", 0)


async def test_event_without_timestamp_gets_the_accounts_clock_time(
    client: httpx.AsyncClient,
) -> None:
    _, sub = await metered_subscription(client, [graduated()], NOW)
    body = event(sub["id"], quantity=3, idempotency_key="no-time")
    first = await client.post("/v1/usage", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["timestamp"] == NOW  # the test clock's time, not the wall clock
    # A retry without a timestamp is the same event, although "now" has moved on.
    assert (await client.post("/v1/usage", json=body)).json()["status"] == "duplicate"


async def test_duplicate_usage_events_ignored(client: httpx.AsyncClient, sql: Sql) -> None:
    _, sub = await metered_subscription(client, [graduated()], NOW)
    events = [
        event(sub["id"], quantity=100, idempotency_key="a", timestamp="2026-03-10T10:00:00Z"),
        event(sub["id"], quantity=250, idempotency_key="b", timestamp="2026-03-10T10:05:00Z"),
        # The same event twice in one batch (a client retrying inside its buffer).
        event(sub["id"], quantity=100, idempotency_key="a", timestamp="2026-03-10T10:00:00Z"),
    ]
    answer = await send_batch(client, events)
    assert [r["status"] for r in answer["results"]] == ["accepted", "accepted", "duplicate"]
    # The whole batch again (a retry after a timeout): nothing new.
    again = await send_batch(client, events)
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 3, 0)
    assert values(await usage_of(client, sub["id"]))["api_calls"] == ("350", 0)  # 100 + 250
    assert await sql("SELECT count(*) FROM usage_events") == [(2,)]


async def test_same_key_sent_1000_times_concurrently_is_counted_once(
    make_app: Any, sql: Sql
) -> None:
    app: FastAPI = make_app(db_pool_size=30, db_max_overflow=0)
    async with http_client(app, await new_api_key(app)) as client:
        _, sub = await metered_subscription(client, [graduated()], NOW)
        body = event(sub["id"], quantity=7, idempotency_key="hot", timestamp=NOW)
        responses = await asyncio.gather(
            *(client.post("/v1/usage", json=body) for _ in range(1000))
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 999 + [201]
        assert values(await usage_of(client, sub["id"]))["api_calls"] == ("7", 0)
    assert await sql("SELECT count(*) FROM usage_events WHERE idempotency_key = 'hot'") == [(1,)]


async def test_a_key_being_inserted_elsewhere_waits_and_is_judged_against_it(
    client: httpx.AsyncClient, database_url: str, sql: Sql
) -> None:
    """A batch meeting a key another transaction is inserting waits for it, writes nothing
    twice, and compares with what was stored: the same payload is a duplicate."""
    _, sub = await metered_subscription(client, [graduated()], NOW)
    other = await raw_connect(database_url)
    try:
        held = other.transaction()
        await held.start()
        await other.execute(
            "INSERT INTO usage_events (subscription_id, metric, quantity, occurred_at, "
            "idempotency_key, received_at) VALUES ($1, 'api_calls', 5, $2, 'held', $2)",
            uuid.UUID(sub["id"]),
            datetime(2026, 3, 10, 11, 0, tzinfo=UTC),
        )
        sending = asyncio.create_task(
            send_batch(
                client,
                [
                    event(
                        sub["id"],
                        quantity=5,
                        idempotency_key="held",
                        timestamp="2026-03-10T11:00:00Z",
                    ),
                    event(sub["id"], quantity=2, idempotency_key="fresh", timestamp=NOW),
                ],
            )
        )
        await asyncio.sleep(0.5)
        assert not sending.done()  # waiting on the held key
        await held.commit()
        answer = await sending
    finally:
        await other.close()
    assert [r["status"] for r in answer["results"]] == ["duplicate", "accepted"]
    rows = await sql("SELECT idempotency_key, quantity FROM usage_events ORDER BY id")
    assert [(key, str(quantity)) for key, quantity in rows] == [
        ("held", "5.000000000000"),
        ("fresh", "2.000000000000"),
    ]


async def test_a_batch_waits_while_the_rollup_barrier_holds_the_ingestion_lock(
    client: httpx.AsyncClient, database_url: str, sql: Sql
) -> None:
    """Ingestion takes the ingestion lock (shared) before it reads anything: while the rollup's
    barrier holds it exclusively, a batch neither reads nor writes."""
    _, sub = await metered_subscription(client, [graduated()], NOW)
    barrier = await raw_connect(database_url)
    try:
        held = barrier.transaction()
        await held.start()
        await barrier.execute("SELECT pg_advisory_xact_lock($1)", INGEST_LOCK)
        sending = asyncio.create_task(send_batch(client, [event(sub["id"], timestamp=NOW)]))
        await asyncio.sleep(0.5)
        assert not sending.done()
        assert await sql("SELECT count(*) FROM usage_events") == [(0,)]
        await held.commit()
        answer = await sending
    finally:
        await barrier.close()
    assert answer["accepted"] == 1


async def test_mixed_batch_reports_each_event(client: httpx.AsyncClient) -> None:
    _, sub = await metered_subscription(
        client,
        [
            graduated(),
            per_unit("emails", "count"),
            per_unit("seats", "unique_count", property="user"),
        ],
        NOW,
    )
    await metered_plan(client, [per_unit("gpu_hours")], code="gpu")
    stored = event(sub["id"], quantity=5, idempotency_key="stored", timestamp=NOW)
    assert (await client.post("/v1/usage", json=stored)).status_code == 201
    missing = str(uuid.uuid4())
    events = [
        event(sub["id"], quantity=10),  # 0 accepted
        stored,  # 1 duplicate of a stored event
        stored | {"quantity": 6},  # 2 same key, other payload
        event(sub["id"], quantity=-1),  # 3 invalid
        event(missing),  # 4 no such subscription
        event(sub["id"], metric="api_cals"),  # 5 a typo: no plan meters it
        event(sub["id"], metric="gpu_hours"),  # 6 another plan's metric
        event(sub["id"], timestamp="2026-03-10T12:05:01Z"),  # 7 over 5 minutes ahead
        event(sub["id"], timestamp="2026-03-10T12:05:00Z"),  # 8 exactly 5 minutes ahead
        event(sub["id"], metric="emails", quantity="1.5"),  # 9 a count must be whole
        event(sub["id"], metric="seats"),  # 10 unique_count without its property
        event(sub["id"], metric="seats", properties={"user": "ada"}),  # 11
        event(sub["id"], idempotency_key="x" * 256),  # 12 key too long
        event(sub["id"], timestamp="2026-02-01T00:00:00Z"),  # 13 before the subscription
        event(sub["id"], properties={"blob": "x" * 5000}),  # 14 properties over 4 KB
        {"subscription_id": sub["id"], "metric": "api_calls", "quantity": 1},  # 15 no key
    ]
    answer = await send_batch(client, events)
    results = answer["results"]
    assert [r["index"] for r in results] == list(range(len(events)))
    got = [(r["status"], r.get("reason"), r.get("field")) for r in results]
    assert got == [
        ("accepted", None, None),
        ("duplicate", None, None),
        ("rejected", "idempotency_key_reused", "idempotency_key"),
        ("rejected", "invalid", "quantity"),
        ("rejected", "subscription_not_found", "subscription_id"),
        ("rejected", "unknown_metric", "metric"),
        ("rejected", "metric_not_priced", "metric"),
        ("rejected", "timestamp_in_future", "timestamp"),
        ("accepted", None, None),
        ("rejected", "invalid", "quantity"),
        ("rejected", "missing_property", "properties"),
        ("accepted", None, None),
        ("rejected", "invalid", "idempotency_key"),
        ("rejected", "period_not_billable", "timestamp"),
        ("rejected", "invalid", "properties"),
        ("rejected", "invalid", "idempotency_key"),
    ]
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (3, 1, 12)
    assert "no plan meters 'api_cals'" in results[5]["message"]
    summary = values(await usage_of(client, sub["id"]))
    assert summary["api_calls"] == ("16", 0)  # 5 + 10 + 1
    assert summary["seats"] == ("1", 1)


async def test_inactive_subscriptions_take_no_usage(client: httpx.AsyncClient, sql: Sql) -> None:
    _, sub = await metered_subscription(client, [graduated()], NOW)
    account_id = sub["account_id"]
    later = await subscribe(client, account_id, start_date="2026-04-01", trial_days=0)
    paused = await subscribe(client, account_id, trial_days=0)
    await sql(
        "UPDATE subscriptions SET status = 'paused' WHERE id = :id", id=uuid.UUID(paused["id"])
    )
    canceled = await subscribe(client, account_id, trial_days=0)
    ended = await client.delete(f"/v1/subscriptions/{canceled['id']}?immediately=true")
    assert ended.status_code == 200
    answer = await send_batch(
        client, [event(later["id"]), event(paused["id"]), event(canceled["id"])]
    )
    assert [r["reason"] for r in answer["results"]] == [
        "subscription_not_started",
        "subscription_paused",
        "subscription_canceled",
    ]
    one = await client.post("/v1/usage", json=event(paused["id"]))
    assert (one.status_code, one.json()["code"], one.json()["reason"]) == (
        409,
        "invalid_state",
        "subscription_paused",
    )


async def test_usage_after_a_scheduled_cancellation_is_refused(
    client: httpx.AsyncClient,
) -> None:
    _, sub = await metered_subscription(client, [graduated()], NOW)
    assert (await client.delete(f"/v1/subscriptions/{sub['id']}")).status_code == 200
    # The period ends 2026-04-10 (UTC account): usage is taken until then, not after.
    clock_id = (await client.get(f"/v1/accounts/{sub['account_id']}")).json()["test_clock_id"]
    from tests.factories.billing import advance

    await advance(client, clock_id, "2026-04-09T23:58:00Z")
    answer = await send_batch(
        client,
        [
            event(sub["id"], timestamp="2026-04-09T23:59:59Z"),
            event(sub["id"], timestamp="2026-04-10T00:00:00Z"),
        ],
    )
    assert [(r["status"], r.get("reason")) for r in answer["results"]] == [
        ("accepted", None),
        ("rejected", "subscription_canceled"),
    ]


async def test_a_batch_of_10000_events(client: httpx.AsyncClient, sql: Sql) -> None:
    _, sub = await metered_subscription(client, [graduated()], NOW)
    events = [event(sub["id"], quantity=i % 7, timestamp=NOW) for i in range(10_000)]
    answer = await send_batch(client, events)
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (10_000, 0, 0)
    # sum of i % 7 over 0..9999: 1428 cycles of 21 = 29988, then 0+1+2+3 = 29994;
    # graduated: 10000 free, 19994 x 0.1 cent = 1999.4 -> 1999
    assert values(await usage_of(client, sub["id"]))["api_calls"] == ("29994", 1999)
    assert await sql("SELECT count(*) FROM usage_events") == [(10_000,)]


async def test_a_batch_of_10001_events_is_refused_whole(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    _, sub = await metered_subscription(client, [graduated()], NOW)
    events = [event(sub["id"], timestamp=NOW) for _ in range(10_001)]
    response = await client.post("/v1/usage/batch", json={"events": events})
    assert response.status_code == 422
    problem = response.json()
    assert (problem["code"], problem["param"]) == ("validation_error", "events")
    assert "10001" in problem["detail"]
    assert await sql("SELECT count(*) FROM usage_events") == [(0,)]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_request"),
        (b"[]", 422, "validation_error"),
        (b'{"events": []}', 422, "validation_error"),
        (b'{"events": {}}', 422, "validation_error"),
        (b'{"events": [], "more": 1}', 422, "validation_error"),
    ],
)
async def test_bad_batch_envelopes(
    client: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    response = await client.post(
        "/v1/usage/batch", content=body, headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()["code"]) == (status, code)


async def test_single_event_rejections_are_problems(client: httpx.AsyncClient) -> None:
    _, sub = await metered_subscription(client, [graduated()], NOW)
    missing = await client.post("/v1/usage", json=event(str(uuid.uuid4())))
    assert (missing.status_code, missing.json()["reason"]) == (404, "subscription_not_found")
    typo = await client.post("/v1/usage", json=event(sub["id"], metric="nope"))
    assert (typo.status_code, typo.json()["code"], typo.json()["reason"]) == (
        422,
        "validation_error",
        "unknown_metric",
    )
    invalid = await client.post("/v1/usage", json=event(sub["id"], quantity="lots"))
    assert (invalid.status_code, invalid.json()["param"]) == (422, "quantity")
    broken = await client.post(
        "/v1/usage", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert (broken.status_code, broken.json()["code"]) == (400, "malformed_request")


async def test_usage_permissions(app: FastAPI, client: httpx.AsyncClient) -> None:
    _, sub = await metered_subscription(client, [graduated()], NOW)
    async with http_client(app, await new_api_key(app, Role.FINANCE_VIEWER)) as viewer:
        denied = await viewer.post("/v1/usage", json=event(sub["id"]))
        assert (denied.status_code, denied.json()["required_permission"]) == (403, "usage:write")
        assert (await viewer.get(f"/v1/subscriptions/{sub['id']}/usage")).status_code == 200
    async with http_client(app, await new_api_key(app, Role.SUPPORT_REP)) as support:
        batch = await support.post("/v1/usage/batch", json={"events": [event(sub["id"])]})
        assert batch.status_code == 403


async def test_keys_and_properties_are_stored_exactly(client: httpx.AsyncClient, sql: Sql) -> None:
    _, sub = await metered_subscription(
        client, [graduated(), per_unit("seats", "unique_count", property="user")], NOW
    )
    keys = ['a"b', "c\\d", "{x,y}", " spaced ", "NULL", "ключ-🔑", "'quoted'"]
    events = [event(sub["id"], idempotency_key=k, timestamp=NOW) for k in keys]
    events.append(
        event(
            sub["id"],
            "seats",
            idempotency_key="props",
            timestamp=NOW,
            properties={"user": 'o"hara\\', "nested": {"list": [1, 2.5, None, "x,y"]}},
        )
    )
    events.append(event(sub["id"], idempotency_key="nul\x00key"))
    events.append(event(sub["id"], idempotency_key="nul-prop", properties={"a": "x\x00y"}))
    answer = await send_batch(client, events)
    assert [(r["status"], r.get("field")) for r in answer["results"]] == [
        ("accepted", None)
    ] * 8 + [("rejected", "idempotency_key"), ("rejected", "properties")]
    stored = await sql("SELECT idempotency_key FROM usage_events ORDER BY id")
    assert [row[0] for row in stored] == [*keys, "props"]
    [(properties, unique)] = await sql(
        "SELECT properties, unique_value FROM usage_events WHERE idempotency_key = 'props'"
    )
    assert properties == {"user": 'o"hara\\', "nested": {"list": [1, 2.5, None, "x,y"]}}
    assert unique == 'o"hara\\'
    again = await send_batch(client, events[:8])
    assert again["duplicates"] == 8


async def test_period_bounds_are_exact_without_test_clocks(make_app: Any) -> None:
    """Without test clocks, ingestion reads an account only for events near a period bound;
    those must still be judged by the exact local midnight (here Kathmandu, UTC+05:45)."""
    clock = FrozenClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    app: FastAPI = make_app(clock=clock)
    async with http_client(app, await new_api_key(app)) as client:
        await metered_plan(client, [per_unit("api_calls")])
        account = await create_account(client, timezone="Asia/Kathmandu")
        sub = await subscribe(client, account["id"], trial_days=0)
        ending = await subscribe(client, account["id"], trial_days=0)
        # The period began at local midnight of Mar 10: 2026-03-09T18:15:00Z.
        answer = await send_batch(
            client,
            [
                event(sub["id"], timestamp="2026-03-09T18:14:59Z"),
                event(sub["id"], timestamp="2026-03-09T18:15:00Z"),
                event(sub["id"], timestamp="2026-03-10T11:00:00Z"),
            ],
        )
        assert [r.get("reason") for r in answer["results"]] == ["period_not_billable", None, None]

        # Canceled at period end: usage is taken up to local midnight of Apr 10.
        assert (await client.delete(f"/v1/subscriptions/{ending['id']}")).status_code == 200
        clock.set(datetime(2026, 4, 9, 18, 13, tzinfo=UTC))
        answer = await send_batch(
            client,
            [
                event(ending["id"], timestamp="2026-04-09T18:14:59Z"),
                event(ending["id"], timestamp="2026-04-09T18:15:00Z"),
            ],
        )
        assert [r.get("reason") for r in answer["results"]] == [None, "subscription_canceled"]

        # After the renewal, the last minute of the old period is late usage, not current.
        clock.set(datetime(2026, 4, 9, 19, 0, tzinfo=UTC))
        await runtime_of(app).worker().run_due()
        answer = await send_batch(client, [event(sub["id"], timestamp="2026-04-09T18:14:00Z")])
        assert answer["results"][0]["status"] == "accepted"
        assert values(await usage_of(client, sub["id"], "previous")) == {"api_calls": ("3", 3)}
        assert values(await usage_of(client, sub["id"])) == {"api_calls": ("0", 0)}


async def test_one_batch_over_subscriptions_sharing_a_period_and_not(make_app: Any) -> None:
    """Subscriptions on the same plan and period share their facts unless an event near a
    bound needs the account's time zone; another period is judged by its own bounds."""
    clock = FrozenClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    app: FastAPI = make_app(clock=clock)
    async with http_client(app, await new_api_key(app)) as client:
        await metered_plan(client, [per_unit("api_calls")])
        utc = await create_account(client, timezone="UTC")
        kathmandu = await create_account(client, timezone="Asia/Kathmandu")
        far = await create_account(client, timezone="Asia/Kathmandu")
        a = await subscribe(client, utc["id"], trial_days=0)  # from 2026-03-10T00:00:00Z
        b = await subscribe(client, kathmandu["id"], trial_days=0)  # from 2026-03-09T18:15Z
        d = await subscribe(client, far["id"], trial_days=0)  # the same period as b
        clock.set(datetime(2026, 3, 12, 12, 0, tzinfo=UTC))
        c = await subscribe(client, utc["id"], trial_days=0)  # from 2026-03-12T00:00:00Z
        answer = await send_batch(
            client,
            [
                event(a["id"], timestamp="2026-03-09T23:59:59Z"),
                event(a["id"], timestamp="2026-03-10T00:00:00Z"),
                event(b["id"], timestamp="2026-03-09T18:14:59Z"),
                event(b["id"], timestamp="2026-03-09T18:15:00Z"),
                event(c["id"], timestamp="2026-03-11T23:59:59Z"),
                event(c["id"], timestamp="2026-03-12T00:00:00Z"),
                event(d["id"], timestamp="2026-03-11T11:00:00Z"),
            ],
        )
        assert [r.get("reason") for r in answer["results"]] == [
            "period_not_billable",
            None,
            "period_not_billable",
            None,
            "period_not_billable",
            None,
            None,
        ]
        assert answer["accepted"] == 4


async def test_openapi_documents_the_usage_bodies(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    batch = spec["paths"]["/v1/usage/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["properties"]["events"]["maxItems"] == 10_000
    assert batch["schema"]["examples"][0]["events"][0]["metric"] == "api_calls"
    one = spec["paths"]["/v1/usage"]["post"]["requestBody"]["content"]["application/json"]
    assert set(one["schema"]["required"]) == {
        "subscription_id",
        "metric",
        "quantity",
        "idempotency_key",
    }
    assert "/v1/subscriptions/{sub_id}/usage" in spec["paths"]
