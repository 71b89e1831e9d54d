"""The billing engine end to end over HTTP, with test clocks. Amounts are computed by hand."""

from __future__ import annotations

import httpx

from tests.factories.billing import (
    account_on_clock,
    advance,
    create_test_clock,
    customer_on_clock,
    invoices_of,
    simple_plan,
    subscribe,
)


def summary(invoices: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [
        (
            i["number"],
            i["period_start"],
            i["period_end"],
            i["subtotal"],
            i["amount_due"],
            i["status"],
        )
        for i in invoices
    ]


async def test_auto_generate_invoice_from_subscription(client: httpx.AsyncClient) -> None:
    _, account = await customer_on_clock(
        client, "2025-03-10T15:30:00Z", amount=2900, plan={"name": "Pro"}
    )
    sub = await subscribe(client, account["id"], quantity=3)
    assert sub["status"] == "active"
    assert (sub["current_period_start"], sub["current_period_end"]) == ("2025-03-10", "2025-04-10")
    [invoice] = await invoices_of(client, sub["id"])
    assert invoice["number"] == "INV-000001"
    assert invoice["status"] == "open"
    assert invoice["billing_reason"] == "subscription_create"
    assert invoice["created_at"] == "2025-03-10T15:30:00Z"
    assert invoice["finalized_at"] == "2025-03-10T15:30:00Z"
    [line] = invoice["lines"]
    assert line["description"] == "Pro × 3 (2025-03-10 to 2025-04-09)"  # noqa: RUF001
    assert (line["quantity"], line["unit_amount"], line["amount"]) == ("3", 2900, 8700)
    assert (line["period_start"], line["period_end"]) == ("2025-03-10", "2025-04-10")
    totals = {
        k: invoice[k]
        for k in (
            "subtotal",
            "tax",
            "total",
            "credits_applied",
            "amount_due",
            "amount_paid",
            "amount_remaining",
        )
    }
    assert totals == {
        "subtotal": 8700,
        "tax": 0,
        "total": 8700,
        "credits_applied": 0,
        "amount_due": 8700,
        "amount_paid": 0,
        "amount_remaining": 8700,
    }


async def test_auto_invoice_on_billing_date(client: httpx.AsyncClient) -> None:
    # Created Jan 31 of a leap year: renewals keep the 31st, clamped to month end.
    clock, account = await customer_on_clock(client, "2024-01-31T12:00:00Z", amount=3000)
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2024-02-28T23:59:59Z")
    assert len(await invoices_of(client, sub["id"])) == 1
    await advance(client, clock["id"], "2024-05-01T00:00:00Z")
    invoices = await invoices_of(client, sub["id"])
    assert summary(invoices) == [
        ("INV-000001", "2024-01-31", "2024-02-29", 3000, 3000, "open"),
        ("INV-000002", "2024-02-29", "2024-03-31", 3000, 3000, "open"),
        ("INV-000003", "2024-03-31", "2024-04-30", 3000, 3000, "open"),
        ("INV-000004", "2024-04-30", "2024-05-31", 3000, 3000, "open"),
    ]
    assert [i["created_at"] for i in invoices[1:]] == [
        "2024-02-29T00:00:00Z",
        "2024-03-31T00:00:00Z",
        "2024-04-30T00:00:00Z",
    ]
    assert [i["billing_reason"] for i in invoices] == ["subscription_create"] + [
        "subscription_cycle"
    ] * 3
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert (current["current_period_start"], current["current_period_end"]) == (
        "2024-04-30",
        "2024-05-31",
    )


async def test_annual_plan_renews_after_a_year(client: httpx.AsyncClient) -> None:
    clock, account = await customer_on_clock(
        client, "2025-03-15T09:00:00Z", amount=120000, plan={"code": "pro", "interval": "year"}
    )
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2026-03-14T23:00:00Z")
    assert len(await invoices_of(client, sub["id"])) == 1
    await advance(client, clock["id"], "2026-03-16T00:00:00Z")
    assert summary(await invoices_of(client, sub["id"])) == [
        ("INV-000001", "2025-03-15", "2026-03-15", 120000, 120000, "open"),
        ("INV-000002", "2026-03-15", "2027-03-15", 120000, 120000, "open"),
    ]


async def test_create_subscription_with_trial(client: httpx.AsyncClient) -> None:
    _, account = await customer_on_clock(
        client, "2025-06-01T10:00:00Z", amount=3000, plan={"trial_days": 14}
    )
    sub = await subscribe(client, account["id"])
    assert sub["status"] == "trialing"
    assert (sub["trial_start"], sub["trial_end"]) == ("2025-06-01", "2025-06-15")
    [invoice] = await invoices_of(client, sub["id"])
    assert (invoice["subtotal"], invoice["amount_due"], invoice["status"]) == (0, 0, "paid")
    [line] = invoice["lines"]
    assert (line["kind"], line["amount"]) == ("trial", 0)
    assert (line["period_start"], line["period_end"]) == ("2025-06-01", "2025-06-15")


async def test_trial_to_active_transition(client: httpx.AsyncClient) -> None:
    clock, account = await customer_on_clock(
        client, "2025-06-01T10:00:00Z", amount=3000, plan={"trial_days": 14}
    )
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-06-14T23:59:00Z")
    assert (await client.get(f"/v1/subscriptions/{sub['id']}")).json()["status"] == "trialing"
    await advance(client, clock["id"], "2025-06-16T00:00:00Z")
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert current["status"] == "active"
    assert (current["current_period_start"], current["current_period_end"]) == (
        "2025-06-15",
        "2025-07-15",
    )
    assert summary(await invoices_of(client, sub["id"])) == [
        ("INV-000001", "2025-06-01", "2025-06-15", 0, 0, "paid"),
        ("INV-000002", "2025-06-15", "2025-07-15", 3000, 3000, "open"),
    ]
    history = (await client.get(f"/v1/subscriptions/{sub['id']}/history")).json()["data"]
    assert [(h["kind"], h["actor"]) for h in history] == [
        ("created", history[0]["actor"]),
        ("end_trial", "worker"),
    ]
    assert history[1]["old"]["status"] == "trialing"
    assert history[1]["new"]["status"] == "active"


async def test_trial_days_override_and_no_trial(client: httpx.AsyncClient) -> None:
    _, account = await customer_on_clock(
        client, "2025-06-01T10:00:00Z", amount=3000, plan={"trial_days": 14}
    )
    none = await subscribe(client, account["id"], trial_days=0)
    assert none["status"] == "active"
    short = await subscribe(client, account["id"], trial_days=3)
    assert short["trial_end"] == "2025-06-04"


async def test_cancel_subscription(client: httpx.AsyncClient) -> None:
    clock, account = await customer_on_clock(client, "2025-01-10T12:00:00Z", amount=3000)
    sub = await subscribe(client, account["id"])
    canceled = (await client.delete(f"/v1/subscriptions/{sub['id']}")).json()
    assert canceled["status"] == "active"
    assert canceled["cancel_at_period_end"] is True
    await advance(client, clock["id"], "2025-03-01T00:00:00Z")
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert current["status"] == "canceled"
    assert current["ended_at"] == "2025-02-10T00:00:00Z"
    assert len(await invoices_of(client, sub["id"])) == 1
    again = await client.delete(f"/v1/subscriptions/{sub['id']}")
    assert again.status_code == 409
    assert again.json()["current_status"] == "canceled"


async def test_cancelled_prevents_next_billing(client: httpx.AsyncClient) -> None:
    clock, account = await customer_on_clock(client, "2025-01-10T12:00:00Z", amount=3000)
    sub = await subscribe(client, account["id"])
    ended = (await client.delete(f"/v1/subscriptions/{sub['id']}?immediately=true")).json()
    assert (ended["status"], ended["ended_at"]) == ("canceled", "2025-01-10T12:00:00Z")
    await advance(client, clock["id"], "2025-06-01T00:00:00Z")
    assert len(await invoices_of(client, sub["id"])) == 1
    balance = (await client.get(f"/v1/accounts/{account['id']}/credits")).json()
    assert balance["balances"] == {}


async def test_immediate_cancel_with_proration_credits_the_unused_days(
    client: httpx.AsyncClient,
) -> None:
    clock = await create_test_clock(client, "2025-04-01T08:00:00Z")
    await simple_plan(client, code="pro", amount=3000)
    await simple_plan(client, code="max", amount=4500)
    account = await account_on_clock(client, clock["id"])
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-04-11T08:00:00Z")
    await client.delete(f"/v1/subscriptions/{sub['id']}?immediately=true&prorate=true")
    # Apr 11 to Apr 30 is 20 of April's 30 days: 3000 x 20 / 30 = 2000.
    credits = (await client.get(f"/v1/accounts/{account['id']}/credits")).json()
    assert credits["balances"] == {"USD": 2000}
    assert [(e["kind"], e["amount"]) for e in credits["ledger"]] == [("grant", 2000)]
    # The next invoice consumes it.
    new = await subscribe(client, account["id"], plan_code="max")
    [invoice] = await invoices_of(client, new["id"])
    assert (invoice["subtotal"], invoice["credits_applied"], invoice["amount_due"]) == (
        4500,
        2000,
        2500,
    )
    after = (await client.get(f"/v1/accounts/{account['id']}/credits")).json()
    assert after["balances"] == {"USD": 0}


async def test_calendar_anchor_on_the_first_prorates_the_first_period(
    client: httpx.AsyncClient,
) -> None:
    clock, account = await customer_on_clock(client, "2025-01-15T12:00:00Z", amount=3000)
    sub = await subscribe(client, account["id"], billing_anchor=1)
    assert sub["billing_anchor"] == 1
    await advance(client, clock["id"], "2025-03-02T00:00:00Z")
    # Jan 15 to Jan 31 is 17 of January's 31 days: 3000 x 17 / 31 = 1645.16 -> 1645.
    assert summary(await invoices_of(client, sub["id"])) == [
        ("INV-000001", "2025-01-15", "2025-02-01", 1645, 1645, "open"),
        ("INV-000002", "2025-02-01", "2025-03-01", 3000, 3000, "open"),
        ("INV-000003", "2025-03-01", "2025-04-01", 3000, 3000, "open"),
    ]


async def test_calendar_anchor_on_the_31st_keeps_month_ends(client: httpx.AsyncClient) -> None:
    clock, account = await customer_on_clock(client, "2025-02-10T12:00:00Z", amount=2800)
    sub = await subscribe(client, account["id"], billing_anchor=31)
    await advance(client, clock["id"], "2025-05-01T00:00:00Z")
    # Feb 10 to Feb 27 is 18 of the 28 days from Jan 31 to Feb 28: 2800 x 18 / 28 = 1800.
    assert summary(await invoices_of(client, sub["id"])) == [
        ("INV-000001", "2025-02-10", "2025-02-28", 1800, 1800, "open"),
        ("INV-000002", "2025-02-28", "2025-03-31", 2800, 2800, "open"),
        ("INV-000003", "2025-03-31", "2025-04-30", 2800, 2800, "open"),
        ("INV-000004", "2025-04-30", "2025-05-31", 2800, 2800, "open"),
    ]


async def test_periods_follow_the_account_time_zone(client: httpx.AsyncClient) -> None:
    # 03:00 UTC on Jan 31 is still Jan 30 in New York: the period starts Jan 30 local.
    clock, account = await customer_on_clock(
        client, "2025-01-31T03:00:00Z", amount=3000, timezone="America/New_York"
    )
    sub = await subscribe(client, account["id"])
    assert (sub["current_period_start"], sub["current_period_end"]) == ("2025-01-30", "2025-02-28")
    # Local midnight of Feb 28 in New York (EST, UTC-5) is 05:00 UTC.
    await advance(client, clock["id"], "2025-02-28T04:59:59Z")
    assert len(await invoices_of(client, sub["id"])) == 1
    await advance(client, clock["id"], "2025-02-28T05:00:00Z")
    invoices = await invoices_of(client, sub["id"])
    assert invoices[1]["created_at"] == "2025-02-28T05:00:00Z"
    assert (invoices[1]["period_start"], invoices[1]["period_end"]) == ("2025-02-28", "2025-03-30")


async def test_east_of_utc_and_a_three_month_interval(client: httpx.AsyncClient) -> None:
    # 20:00 UTC on Mar 31 is already Apr 1 in Tokyo.
    clock, account = await customer_on_clock(
        client,
        "2025-03-31T20:00:00Z",
        amount=9000,
        plan={"interval_count": 3},
        timezone="Asia/Tokyo",
    )
    sub = await subscribe(client, account["id"])
    assert (sub["current_period_start"], sub["current_period_end"]) == ("2025-04-01", "2025-07-01")
    await advance(client, clock["id"], "2025-07-01T00:00:00Z")
    invoices = await invoices_of(client, sub["id"])
    # Local midnight Jul 1 in Tokyo (UTC+9) is 15:00 UTC on Jun 30.
    assert invoices[1]["created_at"] == "2025-06-30T15:00:00Z"
    assert (invoices[1]["period_start"], invoices[1]["period_end"]) == ("2025-07-01", "2025-10-01")


async def test_future_start_is_pending_until_its_date(client: httpx.AsyncClient) -> None:
    clock, account = await customer_on_clock(client, "2025-05-01T12:00:00Z", amount=3000)
    sub = await subscribe(client, account["id"], start_date="2025-05-20")
    assert sub["status"] == "pending"
    assert await invoices_of(client, sub["id"]) == []
    await advance(client, clock["id"], "2025-05-21T00:00:00Z")
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert current["status"] == "active"
    assert summary(await invoices_of(client, sub["id"])) == [
        ("INV-000001", "2025-05-20", "2025-06-20", 3000, 3000, "open"),
    ]
