"""Usage on invoices, end to end over HTTP with test clocks. Amounts are computed by hand.

Prices are in minor units: "0.1" is a tenth of a cent per unit, so 40,000 units cost 4,000
cents ($40.00). Each metric's charge is rounded once, half up.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from billing.runtime import Runtime
from billing.usage.aggregate import INGEST_LOCK
from tests.conftest import Sql
from tests.factories.billing import (
    account_on_clock,
    advance,
    customer_on_clock,
    invoices_of,
    subscribe,
)
from tests.factories.usage import (
    accept_all,
    event,
    graduated,
    metered_subscription,
    per_unit,
    send_batch,
    usage_of,
    values,
)

START = "2026-03-10T12:00:00Z"  # period 2026-03-10 to 2026-04-10 (UTC account)
PERIOD_END = "2026-04-09T23:58:00Z"  # the clock is moved here before the period's events


def lines(invoice: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    return [
        (ln["kind"], ln["description"], ln["quantity"], ln["amount"]) for ln in invoice["lines"]
    ]


def tiers(line: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            t["tier"],
            t["from_unit"],
            t["up_to"],
            t["quantity"],
            t["unit_amount_decimal"],
            t["amount"],
        )
        for t in line["details"]["tiers"]
    ]


async def test_usage_charge_calculation_with_tiers(client: httpx.AsyncClient) -> None:
    clock_id, sub = await metered_subscription(client, [graduated()], START)
    await advance(client, clock_id, PERIOD_END)
    await accept_all(
        client,
        [
            event(sub["id"], quantity=30_000, timestamp="2026-03-11T08:00:00Z"),
            event(sub["id"], quantity=30_000, timestamp="2026-03-20T08:00:00Z"),
            event(sub["id"], quantity=2_500, timestamp="2026-04-09T23:59:59Z"),
        ],
    )
    # 62,500 calls: 10,000 free, 40,000 x 0.1 = 4,000, 12,500 x 0.05 = 625 -> 4,625 ($46.25)
    summary = await usage_of(client, sub["id"])
    [metric] = summary["metrics"]
    assert (metric["value"], metric["events"], metric["amount"]) == ("62500", 3, 4625)
    assert [tuple(t.values()) for t in metric["tiers"]] == [
        (1, "0", "10000", "10000", "0", 0, 0),
        (2, "10000", "50000", "40000", "0.1", 0, 4000),
        (3, "50000", None, "12500", "0.05", 0, 625),
    ]

    await advance(client, clock_id, "2026-04-10T01:00:00Z")
    invoices = await invoices_of(client, sub["id"])
    assert [(i["number"], i["billing_reason"], i["subtotal"]) for i in invoices] == [
        ("INV-000001", "subscription_create", 2900),
        ("INV-000002", "subscription_cycle", 7525),  # 2,900 in advance + 4,625 in arrears
    ]
    renewal = invoices[1]
    assert lines(renewal) == [
        ("subscription", "Pro (2026-04-10 to 2026-05-09)", "1", 2900),
        ("usage", "api_calls usage (2026-03-10 to 2026-04-09)", "62500", 4625),
    ]
    usage_line = renewal["lines"][1]
    assert (usage_line["period_start"], usage_line["period_end"]) == ("2026-03-10", "2026-04-10")
    assert usage_line["details"]["model"] == "graduated"
    assert usage_line["details"]["events"] == 3
    assert tiers(usage_line) == [
        (1, "0", "10000", "10000", "0", 0),
        (2, "10000", "50000", "40000", "0.1", 4000),
        (3, "50000", None, "12500", "0.05", 625),
    ]
    # The new period starts from zero; the closed one is still there as "previous".
    assert values(await usage_of(client, sub["id"])) == {"api_calls": ("0", 0)}
    assert values(await usage_of(client, sub["id"], "previous")) == {"api_calls": ("62500", 4625)}


async def test_graduated_and_volume_metrics_on_one_invoice(client: httpx.AsyncClient) -> None:
    storage = {
        "metric": "storage_gb",
        "aggregation": "max",
        "model": "volume",
        "tiers": [
            {"up_to": "100", "unit_amount_decimal": "10"},
            {"up_to": "1000", "unit_amount_decimal": "8", "flat_amount": 500},
            {"up_to": None, "unit_amount_decimal": "5", "flat_amount": 1000},
        ],
    }
    clock_id, sub = await metered_subscription(client, [graduated(), storage], START)
    await advance(client, clock_id, PERIOD_END)
    await accept_all(
        client,
        [
            event(sub["id"], quantity=12_000, timestamp="2026-03-12T00:00:00Z"),
            event(sub["id"], quantity=345, timestamp="2026-03-13T00:00:00Z"),
            event(sub["id"], "storage_gb", 80, timestamp="2026-03-12T00:00:00Z"),
            event(sub["id"], "storage_gb", 250, timestamp="2026-03-25T00:00:00Z"),
            event(sub["id"], "storage_gb", 120, timestamp="2026-04-01T00:00:00Z"),
        ],
    )
    await advance(client, clock_id, "2026-04-10T00:30:00Z")
    renewal = (await invoices_of(client, sub["id"]))[1]
    # api_calls: 12,345 = 10,000 free + 2,345 x 0.1 = 234.5 -> 235 (half up)
    # storage_gb: the peak, 250 GB, is in the 101-1,000 tier: 250 x 8 + 500 flat = 2,500
    # invoice: 2,900 + 235 + 2,500 = 5,635
    assert lines(renewal) == [
        ("subscription", "Pro (2026-04-10 to 2026-05-09)", "1", 2900),
        ("usage", "api_calls usage (2026-03-10 to 2026-04-09)", "12345", 235),
        ("usage", "storage_gb usage (2026-03-10 to 2026-04-09)", "250", 2500),
    ]
    assert (renewal["subtotal"], renewal["total"], renewal["amount_due"]) == (5635, 5635, 5635)
    assert tiers(renewal["lines"][1]) == [
        (1, "0", "10000", "10000", "0", 0),
        (2, "10000", "50000", "2345", "0.1", 235),
    ]
    storage_line = renewal["lines"][2]
    assert storage_line["details"]["model"] == "volume"
    assert [
        (t["tier"], t["quantity"], t["flat_amount"], t["amount"])
        for t in storage_line["details"]["tiers"]
    ] == [(2, "250", 500, 2500)]


async def test_late_usage_generates_supplemental_invoice(client: httpx.AsyncClient) -> None:
    clock_id, sub = await metered_subscription(client, [graduated()], START)
    await advance(client, clock_id, PERIOD_END)
    await accept_all(client, [event(sub["id"], quantity=10_000, timestamp="2026-04-01T00:00:00Z")])
    await advance(client, clock_id, "2026-04-10T06:00:00Z")
    renewal = (await invoices_of(client, sub["id"]))[1]
    assert lines(renewal)[1] == ("usage", "api_calls usage (2026-03-10 to 2026-04-09)", "10000", 0)

    # A late event for the invoiced period, within the 7-day window.
    late = await send_batch(
        client, [event(sub["id"], quantity=5_000, timestamp="2026-04-09T20:00:00Z")]
    )
    assert late["results"][0]["status"] == "accepted"
    await advance(client, clock_id, "2026-04-10T07:00:00Z")
    invoices = await invoices_of(client, sub["id"])
    assert len(invoices) == 3
    supplemental = invoices[2]
    assert (supplemental["number"], supplemental["billing_reason"]) == ("INV-000003", "usage_late")
    assert (supplemental["period_start"], supplemental["period_end"]) == (
        "2026-03-10",
        "2026-04-10",
    )
    assert supplemental["created_at"] == "2026-04-10T07:00:00Z"
    # 15,000 calls now: 5,000 x 0.1 = 500, of which 0 was billed -> 500
    assert lines(supplemental) == [
        ("usage", "api_calls late usage (2026-03-10 to 2026-04-09)", "5000", 500)
    ]
    assert supplemental["lines"][0]["details"]["billed_amount"] == 0
    assert supplemental["lines"][0]["details"]["amount"] == 500

    # More late usage the same day waits for the next day: one supplemental a day at most.
    await advance(client, clock_id, "2026-04-10T08:00:00Z")
    await accept_all(client, [event(sub["id"], quantity=1_000, timestamp="2026-04-08T00:00:00Z")])
    await advance(client, clock_id, "2026-04-10T23:00:00Z")
    assert len(await invoices_of(client, sub["id"])) == 3
    await advance(client, clock_id, "2026-04-11T00:30:00Z")
    invoices = await invoices_of(client, sub["id"])
    # 16,000 calls: 6,000 x 0.1 = 600, 500 already billed -> 100
    assert lines(invoices[3]) == [
        ("usage", "api_calls late usage (2026-03-10 to 2026-04-09)", "1000", 100)
    ]

    # The window closes 7 days after the period ended (2026-04-10 00:00 UTC).
    await advance(client, clock_id, "2026-04-16T23:59:00Z")
    await accept_all(client, [event(sub["id"], quantity=2_000, timestamp="2026-03-15T00:00:00Z")])
    await advance(client, clock_id, "2026-04-17T00:00:00Z")
    closed = await send_batch(
        client, [event(sub["id"], quantity=1, timestamp="2026-04-09T23:00:00Z")]
    )
    assert closed["results"][0]["reason"] == "late_window_closed"
    invoices = await invoices_of(client, sub["id"])
    # Accepted before the window closed, billed after: 18,000 calls -> 800, 600 billed -> 200
    assert [i["subtotal"] for i in invoices] == [2900, 2900, 500, 100, 200]
    assert values(await usage_of(client, sub["id"], "previous")) == {"api_calls": ("18000", 800)}


async def test_late_usage_that_lowers_the_charge_becomes_credit(
    client: httpx.AsyncClient,
) -> None:
    clock_id, sub = await metered_subscription(client, [per_unit("seats_in_use", "latest")], START)
    await advance(client, clock_id, PERIOD_END)
    await accept_all(
        client, [event(sub["id"], "seats_in_use", 50, timestamp="2026-04-09T10:00:00Z")]
    )
    await advance(client, clock_id, "2026-04-10T02:00:00Z")
    assert lines((await invoices_of(client, sub["id"]))[1])[1][2:] == ("50", 50)
    # A later reading of the same period arrives late: the latest value is now 20.
    await accept_all(
        client, [event(sub["id"], "seats_in_use", 20, timestamp="2026-04-09T11:00:00Z")]
    )
    await advance(client, clock_id, "2026-04-10T03:00:00Z")
    assert len(await invoices_of(client, sub["id"])) == 2
    credit = (await client.get(f"/v1/accounts/{sub['account_id']}/credits")).json()
    assert credit["balances"] == {"USD": 30}  # 50 billed - 20 due


async def test_a_plan_without_metered_prices_bills_as_before(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    clock, account = await customer_on_clock(client, START, amount=2900)
    sub = await subscribe(client, account["id"])
    rejected = await send_batch(client, [event(sub["id"])])
    assert rejected["results"][0]["reason"] == "unknown_metric"
    await advance(client, clock["id"], "2026-05-10T01:00:00Z")
    invoices = await invoices_of(client, sub["id"])
    assert [lines(i) for i in invoices[1:]] == [
        [("subscription", "Pro (2026-04-10 to 2026-05-09)", "1", 2900)],
        [("subscription", "Pro (2026-05-10 to 2026-06-09)", "1", 2900)],
    ]
    assert await sql("SELECT count(*) FROM usage_billed_periods") == [(0,)]
    summary = await usage_of(client, sub["id"])
    assert (summary["metrics"], summary["amount"]) == ([], 0)


async def test_cancel_at_period_end_bills_the_last_periods_usage(
    client: httpx.AsyncClient,
) -> None:
    clock_id, sub = await metered_subscription(client, [per_unit("api_calls")], START)
    idle_account = await account_on_clock(client, clock_id, email="idle@example.com")
    idle = await subscribe(client, idle_account["id"], trial_days=0)
    await advance(client, clock_id, PERIOD_END)
    await accept_all(client, [event(sub["id"], quantity=250, timestamp="2026-04-01T00:00:00Z")])
    for subscription in (sub, idle):
        assert (await client.delete(f"/v1/subscriptions/{subscription['id']}")).status_code == 200
    await advance(client, clock_id, "2026-04-11T00:00:00Z")

    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert current["status"] == "canceled"
    invoices = await invoices_of(client, sub["id"])
    final = invoices[1]
    assert (final["billing_reason"], final["created_at"]) == (
        "subscription_cycle",
        "2026-04-10T00:00:00Z",
    )
    assert (final["period_start"], final["period_end"]) == ("2026-03-10", "2026-04-10")
    assert lines(final) == [("usage", "api_calls usage (2026-03-10 to 2026-04-09)", "250", 250)]
    # No usage, nothing to bill: no final invoice.
    assert len(await invoices_of(client, idle["id"])) == 1


async def test_usage_in_a_trial_is_recorded_but_not_billed(client: httpx.AsyncClient) -> None:
    clock_id, sub = await metered_subscription(
        client, [per_unit("api_calls")], START, plan={"trial_days": 14}, trial_days=14
    )
    assert sub["status"] == "trialing"  # trial 2026-03-10 to 2026-03-24
    await accept_all(client, [event(sub["id"], quantity=70, timestamp="2026-03-10T11:00:00Z")])
    summary = await usage_of(client, sub["id"])
    assert (summary["billable"], summary["amount"], values(summary)) == (
        False,
        0,
        {"api_calls": ("70", 0)},
    )
    await advance(client, clock_id, "2026-03-25T00:00:00Z")
    await accept_all(client, [event(sub["id"], quantity=30, timestamp="2026-03-25T00:00:00Z")])
    late_for_trial = await send_batch(
        client, [event(sub["id"], quantity=1, timestamp="2026-03-23T00:00:00Z")]
    )
    assert late_for_trial["results"][0]["reason"] == "period_not_billable"
    await advance(client, clock_id, "2026-04-24T01:00:00Z")
    invoices = await invoices_of(client, sub["id"])
    assert [lines(i) for i in invoices] == [
        [("trial", "Trial of Pro (2026-03-10 to 2026-03-23)", "1", 0)],
        [("subscription", "Pro (2026-03-24 to 2026-04-23)", "1", 2900)],
        [
            ("subscription", "Pro (2026-04-24 to 2026-05-23)", "1", 2900),
            ("usage", "api_calls usage (2026-03-24 to 2026-04-23)", "30", 30),
        ],
    ]


async def test_events_written_while_the_renewal_runs_are_billed_after_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """An ingestion that read the subscription before the renewal committed may write into
    the period the renewal just billed. The check after the renewal waits for it (the
    ingestion barrier) and bills what it wrote."""
    clock_id, sub = await metered_subscription(client, [per_unit("api_calls")], START)
    await advance(client, clock_id, PERIOD_END)
    await accept_all(client, [event(sub["id"], quantity=100, timestamp="2026-04-09T12:00:00Z")])

    # An ingestion in flight: it holds the ingestion lock and has written an event for the
    # closing period, but has not committed yet.
    async with runtime.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        in_flight = raw.transaction()
        await in_flight.start()
        try:
            await raw.execute("SELECT pg_advisory_xact_lock_shared($1)", INGEST_LOCK)
            await raw.execute(
                "INSERT INTO usage_events (subscription_id, metric, quantity, occurred_at, "
                "idempotency_key, received_at) VALUES ($1, 'api_calls', 7, $2, 'racing', $2)",
                uuid.UUID(sub["id"]),
                datetime(2026, 4, 9, 23, 59, tzinfo=UTC),
            )
            renewal = asyncio.create_task(advance(client, clock_id, "2026-04-10T00:30:00Z"))
            await asyncio.sleep(1)  # the renewal is billed and waits at the barrier
            assert not renewal.done()
            await in_flight.commit()
            await renewal
        finally:  # a failure must not leave the lock and the row behind (cleanup would wait)
            if raw.is_in_transaction():
                await in_flight.rollback()

    # Both invoices are dated at the renewal's instant; tell them apart by their reason.
    by_reason = {i["billing_reason"]: i for i in await invoices_of(client, sub["id"])}
    assert lines(by_reason["subscription_cycle"])[1] == (
        "usage",
        "api_calls usage (2026-03-10 to 2026-04-09)",
        "100",
        100,
    )
    # The racing event, billed by the check that follows the renewal: 107 - 100 = 7
    assert lines(by_reason["usage_late"]) == [
        ("usage", "api_calls late usage (2026-03-10 to 2026-04-09)", "7", 7)
    ]
