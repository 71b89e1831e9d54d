"""Plan and quantity changes over HTTP with test clocks. Amounts are computed by hand:
proration = amount x remaining days / days in the period, rounded half up once per line."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.factories.billing import (
    account_on_clock,
    advance,
    create_test_clock,
    invoices_of,
    simple_plan,
    subscribe,
)
from tests.factories.usage import event, metered_plan


def lines(invoice: dict[str, Any]) -> list[tuple[str, int]]:
    return [(line["kind"], line["amount"]) for line in invoice["lines"]]


async def change(client: httpx.AsyncClient, sub_id: str, **body: Any) -> dict[str, Any]:
    response = await client.patch(f"/v1/subscriptions/{sub_id}", json=body)
    assert response.status_code == 200, response.text
    changed: dict[str, Any] = response.json()
    return changed


async def april_subscription(
    client: httpx.AsyncClient, *, plans: dict[str, int], quantity: int = 1
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A monthly subscription to the first plan, created Apr 1 2025 (period Apr 1 - May 1)."""
    clock = await create_test_clock(client, "2025-04-01T08:00:00Z")
    for code, amount in plans.items():
        await simple_plan(client, code=code, amount=amount)
    account = await account_on_clock(client, clock["id"])
    sub = await subscribe(client, account["id"], plan_code=next(iter(plans)), quantity=quantity)
    return clock["id"], account, sub


async def test_proration_on_mid_cycle_upgrade(client: httpx.AsyncClient) -> None:
    clock, _, sub = await april_subscription(client, plans={"pro": 3000, "max": 6000})
    await advance(client, clock, "2025-04-11T08:00:00Z")
    changed = await change(client, sub["id"], plan_code="max")
    assert changed["plan_code"] == "max"
    assert (changed["current_period_start"], changed["current_period_end"]) == (
        "2025-04-01",
        "2025-05-01",
    )
    _, prorated = await invoices_of(client, sub["id"])
    # Apr 11 to Apr 30 is 20 of 30 days: -3000 x 20/30 = -2000 and +6000 x 20/30 = +4000.
    assert lines(prorated) == [("proration", -2000), ("proration", 4000)]
    assert (prorated["subtotal"], prorated["amount_due"]) == (2000, 2000)
    assert prorated["billing_reason"] == "subscription_update"
    await advance(client, clock, "2025-05-02T00:00:00Z")
    renewal = (await invoices_of(client, sub["id"]))[-1]
    assert (renewal["period_start"], renewal["subtotal"]) == ("2025-05-01", 6000)


async def test_mid_cycle_upgrade_generates_prorated_invoice(client: httpx.AsyncClient) -> None:
    clock, _, sub = await april_subscription(client, plans={"pro": 3000, "max": 6000})
    await advance(client, clock, "2025-04-11T08:00:00Z")
    await change(client, sub["id"], plan_code="max")
    invoices = await invoices_of(client, sub["id"])
    assert [(i["number"], i["status"], i["amount_due"]) for i in invoices] == [
        ("INV-000001", "open", 3000),
        ("INV-000002", "open", 2000),
    ]
    assert invoices[1]["lines"][0]["description"] == "Unused time on Pro (2025-04-11 to 2025-04-30)"
    assert invoices[1]["lines"][1]["description"] == (
        "Remaining time on Max (2025-04-11 to 2025-04-30)"
    )


async def test_calculate_proration_for_upgrade(client: httpx.AsyncClient) -> None:
    clock = await create_test_clock(client, "2025-01-01T10:00:00Z")
    await simple_plan(client, code="pro", amount=2900)
    await simple_plan(client, code="max", amount=9900)
    account = await account_on_clock(client, clock["id"])
    sub = await subscribe(client, account["id"], plan_code="pro")
    await advance(client, clock["id"], "2025-01-10T10:00:00Z")
    await change(client, sub["id"], plan_code="max")
    prorated = (await invoices_of(client, sub["id"]))[-1]
    # Jan 10 to Jan 31 is 22 of 31 days: 2900 x 22/31 = 2058.06 -> 2058;
    # 9900 x 22/31 = 7025.81 -> 7026; net 4968.
    assert lines(prorated) == [("proration", -2058), ("proration", 7026)]
    assert prorated["amount_due"] == 4968


async def test_calculate_proration_for_downgrade(client: httpx.AsyncClient) -> None:
    clock = await create_test_clock(client, "2025-01-01T10:00:00Z")
    await simple_plan(client, code="max", amount=9900)
    await simple_plan(client, code="pro", amount=2900)
    account = await account_on_clock(client, clock["id"])
    sub = await subscribe(client, account["id"], plan_code="max")
    await advance(client, clock["id"], "2025-01-10T10:00:00Z")
    await change(client, sub["id"], plan_code="pro", proration="immediate")
    prorated = (await invoices_of(client, sub["id"]))[-1]
    # 22 of 31 days: unused max -7026, pro for the rest +2058, net -4968 -> account credit.
    assert lines(prorated) == [("proration", -7026), ("proration", 2058), ("credit_balance", 4968)]
    assert (prorated["subtotal"], prorated["amount_due"], prorated["status"]) == (0, 0, "paid")
    credits = (await client.get(f"/v1/accounts/{account['id']}/credits")).json()
    assert credits["balances"] == {"USD": 4968}
    # The Feb 1 renewal (pro, 2900) is paid from that credit; 4968 - 2900 = 2068 remain.
    await advance(client, clock["id"], "2025-02-02T00:00:00Z")
    renewal = (await invoices_of(client, sub["id"]))[-1]
    assert (renewal["subtotal"], renewal["credits_applied"], renewal["amount_due"]) == (
        2900,
        2900,
        0,
    )
    credits = (await client.get(f"/v1/accounts/{account['id']}/credits")).json()
    assert credits["balances"] == {"USD": 2068}


async def test_annual_to_monthly_downgrade_applies_credit(client: httpx.AsyncClient) -> None:
    clock = await create_test_clock(client, "2025-01-01T00:00:00Z")
    await simple_plan(client, code="annual", amount=120000, interval="year")
    await simple_plan(client, code="monthly", amount=10000)
    account = await account_on_clock(client, clock["id"])
    sub = await subscribe(client, account["id"], plan_code="annual")
    await advance(client, clock["id"], "2025-04-01T00:00:00Z")
    changed = await change(client, sub["id"], plan_code="monthly", proration="immediate")
    # A new monthly cycle starts today.
    assert (changed["current_period_start"], changed["current_period_end"]) == (
        "2025-04-01",
        "2025-05-01",
    )
    invoice = (await invoices_of(client, sub["id"]))[-1]
    # Apr 1 2025 to Dec 31 2025 is 275 of 365 days: 120000 x 275/365 = 90410.96 -> 90411 unused;
    # the first month costs 10000; the other 80411 go to the credit balance.
    assert lines(invoice) == [
        ("proration", -90411),
        ("subscription", 10000),
        ("credit_balance", 80411),
    ]
    assert (invoice["subtotal"], invoice["amount_due"], invoice["status"]) == (0, 0, "paid")
    await advance(client, clock["id"], "2025-05-02T00:00:00Z")
    renewal = (await invoices_of(client, sub["id"]))[-1]
    assert (renewal["period_start"], renewal["subtotal"], renewal["credits_applied"]) == (
        "2025-05-01",
        10000,
        10000,
    )
    credits = (await client.get(f"/v1/accounts/{account['id']}/credits")).json()
    assert credits["balances"] == {"USD": 70411}


async def test_end_of_period_downgrade_scheduling(client: httpx.AsyncClient) -> None:
    clock, _, sub = await april_subscription(client, plans={"max": 6000, "pro": 3000})
    await advance(client, clock, "2025-04-11T08:00:00Z")
    scheduled = await change(client, sub["id"], plan_code="pro")
    assert scheduled["plan_code"] == "max"  # downgrades wait for the period end by default
    pending = scheduled["pending_change"]
    assert (pending["plan_code"], pending["quantity"], pending["effective_date"]) == (
        "pro",
        1,
        "2025-05-01",
    )
    assert len(await invoices_of(client, sub["id"])) == 1
    await advance(client, clock, "2025-05-02T00:00:00Z")
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert (current["plan_code"], current["pending_change"]) == ("pro", None)
    renewal = (await invoices_of(client, sub["id"]))[-1]
    assert (renewal["period_start"], renewal["subtotal"]) == ("2025-05-01", 3000)


async def test_a_scheduled_change_can_be_called_off(client: httpx.AsyncClient) -> None:
    clock, _, sub = await april_subscription(client, plans={"max": 6000, "pro": 3000})
    await change(client, sub["id"], plan_code="pro")
    called_off = await client.delete(f"/v1/subscriptions/{sub['id']}/pending-change")
    assert called_off.json()["pending_change"] is None
    again = await client.delete(f"/v1/subscriptions/{sub['id']}/pending-change")
    assert again.status_code == 409
    await advance(client, clock, "2025-05-02T00:00:00Z")
    renewal = (await invoices_of(client, sub["id"]))[-1]
    assert renewal["subtotal"] == 6000


async def test_proration_on_day_1(client: httpx.AsyncClient) -> None:
    clock, _, sub = await april_subscription(client, plans={"pro": 3000, "max": 6000})
    await advance(client, clock, "2025-04-01T20:00:00Z")
    await change(client, sub["id"], plan_code="max")
    # The change day counts as the first day of the new plan: all 30 days are swapped.
    assert lines((await invoices_of(client, sub["id"]))[-1]) == [
        ("proration", -3000),
        ("proration", 6000),
    ]


async def test_proration_on_last_day(client: httpx.AsyncClient) -> None:
    clock, _, sub = await april_subscription(client, plans={"pro": 3000, "max": 6000})
    await advance(client, clock, "2025-04-30T23:00:00Z")
    await change(client, sub["id"], plan_code="max")
    # One day left of 30: -3000/30 = -100 and +6000/30 = +200.
    assert lines((await invoices_of(client, sub["id"]))[-1]) == [
        ("proration", -100),
        ("proration", 200),
    ]


async def test_proration_with_quantity_changes(client: httpx.AsyncClient) -> None:
    clock, _, sub = await april_subscription(client, plans={"seat": 1000}, quantity=3)
    await advance(client, clock, "2025-04-16T08:00:00Z")
    changed = await change(client, sub["id"], quantity=5)
    assert changed["quantity"] == 5
    # 15 of 30 days left: -3 x 1000 x 15/30 = -1500; +5 x 1000 x 15/30 = +2500.
    prorated = (await invoices_of(client, sub["id"]))[-1]
    assert lines(prorated) == [("proration", -1500), ("proration", 2500)]
    assert prorated["lines"][1]["quantity"] == "5"
    await advance(client, clock, "2025-05-02T00:00:00Z")
    assert (await invoices_of(client, sub["id"]))[-1]["subtotal"] == 5000


async def test_two_changes_in_one_period(client: httpx.AsyncClient) -> None:
    clock, _, sub = await april_subscription(
        client, plans={"pro": 3000, "max": 6000, "ultra": 9000}
    )
    await advance(client, clock, "2025-04-11T08:00:00Z")
    await change(client, sub["id"], plan_code="max")
    await advance(client, clock, "2025-04-21T08:00:00Z")
    await change(client, sub["id"], plan_code="ultra")
    invoices = await invoices_of(client, sub["id"])
    # Apr 11: 20 days left: -2000 / +4000. Apr 21: 10 days left: -6000 x 10/30 = -2000 and
    # +9000 x 10/30 = +3000.
    assert [lines(i) for i in invoices[1:]] == [
        [("proration", -2000), ("proration", 4000)],
        [("proration", -2000), ("proration", 3000)],
    ]


async def test_upgrade_in_a_31_day_month_and_in_february(client: httpx.AsyncClient) -> None:
    clock = await create_test_clock(client, "2025-01-01T09:00:00Z")
    await simple_plan(client, code="pro", amount=3100)
    await simple_plan(client, code="max", amount=6200)
    await simple_plan(client, code="team", amount=2800)
    await simple_plan(client, code="teamplus", amount=5600)
    january = await account_on_clock(client, clock["id"], email="jan@example.com")
    jan_sub = await subscribe(client, january["id"], plan_code="pro")
    await advance(client, clock["id"], "2025-01-21T09:00:00Z")
    await change(client, jan_sub["id"], plan_code="max")
    # Jan 21 to Jan 31: 11 of 31 days: -3100 x 11/31 = -1100; +6200 x 11/31 = +2200.
    assert lines((await invoices_of(client, jan_sub["id"]))[-1]) == [
        ("proration", -1100),
        ("proration", 2200),
    ]
    await advance(client, clock["id"], "2025-02-01T09:00:00Z")
    february = await account_on_clock(client, clock["id"], email="feb@example.com")
    feb_sub = await subscribe(client, february["id"], plan_code="team")
    await advance(client, clock["id"], "2025-02-15T09:00:00Z")
    await change(client, feb_sub["id"], plan_code="teamplus")
    # Feb 15 to Feb 28: 14 of 28 days: -2800 x 14/28 = -1400; +5600 x 14/28 = +2800.
    assert lines((await invoices_of(client, feb_sub["id"]))[-1]) == [
        ("proration", -1400),
        ("proration", 2800),
    ]


async def test_a_change_while_trialing_prorates_nothing(client: httpx.AsyncClient) -> None:
    clock = await create_test_clock(client, "2025-06-01T10:00:00Z")
    await simple_plan(client, code="pro", amount=3000, trial_days=14)
    await simple_plan(client, code="max", amount=6000)
    account = await account_on_clock(client, clock["id"])
    sub = await subscribe(client, account["id"], plan_code="pro")
    await advance(client, clock["id"], "2025-06-05T10:00:00Z")
    changed = await change(client, sub["id"], plan_code="max")
    assert (changed["status"], changed["plan_code"], changed["trial_end"]) == (
        "trialing",
        "max",
        "2025-06-15",
    )
    assert len(await invoices_of(client, sub["id"])) == 1
    await advance(client, clock["id"], "2025-06-16T00:00:00Z")
    after_trial = (await invoices_of(client, sub["id"]))[-1]
    assert (after_trial["period_start"], after_trial["subtotal"]) == ("2025-06-15", 6000)


async def test_concurrent_changes_serialize(client: httpx.AsyncClient) -> None:
    clock, account, sub = await april_subscription(client, plans={"seat": 1000})
    await advance(client, clock, "2025-04-16T08:00:00Z")
    url = f"/v1/subscriptions/{sub['id']}"
    results = await asyncio.gather(
        client.patch(url, json={"quantity": 2, "proration": "immediate"}),
        client.patch(url, json={"quantity": 3, "proration": "immediate"}),
    )
    assert [r.status_code for r in results] == [200, 200]
    final = (await client.get(url)).json()
    by_number = sorted(await invoices_of(client, sub["id"]), key=lambda i: i["number"])
    prorations = [i["subtotal"] for i in by_number[1:]]
    credit = (await client.get(f"/v1/accounts/{account['id']}/credits")).json()["balances"]
    # 15 of 30 days left, 1000 a seat. 1 -> 2 -> 3: +500 then +500 (final 3).
    # 1 -> 3 -> 2: +1000, then 3 -> 2 is -1500 + 1000 = -500: a zero invoice and 500 credit.
    assert (final["quantity"], prorations, credit) in [
        (3, [500, 500], {}),
        (2, [1000, 0], {"USD": 500}),
    ]


async def test_illegal_changes_are_409(client: httpx.AsyncClient) -> None:
    _, _, sub = await april_subscription(client, plans={"pro": 3000, "max": 6000})
    await client.delete(f"/v1/subscriptions/{sub['id']}?immediately=true")
    response = await client.patch(f"/v1/subscriptions/{sub['id']}", json={"plan_code": "max"})
    assert response.status_code == 409
    assert response.json()["current_status"] == "canceled"


async def test_change_validation(client: httpx.AsyncClient) -> None:
    _, _, sub = await april_subscription(client, plans={"pro": 3000})
    url = f"/v1/subscriptions/{sub['id']}"
    eur = {
        "code": "euro",
        "name": "Euro",
        "interval": "month",
        "prices": [{"currency": "EUR", "unit_amount": 1000}],
    }
    await client.post("/v1/plans", json=eur)
    cases = [
        ({}, "body"),
        ({"quantity": 0}, "quantity"),
        ({"plan_code": "pro"}, "plan_code"),
        ({"plan_code": "euro"}, "plan_code"),
        ({"plan_code": "pro", "proration": "sometimes"}, "proration"),
    ]
    for body, param in cases:
        response = await client.patch(url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["param"] == param, body


async def test_usage_so_far_stays_billed_under_the_plan_in_force(
    client: httpx.AsyncClient,
) -> None:
    clock = await create_test_clock(client, "2026-03-01T08:00:00Z")
    cheap = {"metric": "api_calls", "model": "per_unit", "unit_amount_decimal": "1"}
    dear = cheap | {"unit_amount_decimal": "2"}
    await metered_plan(client, [cheap], code="basic", amount=1000)
    await metered_plan(client, [dear], code="plus", amount=2000)
    account = await account_on_clock(client, clock["id"])
    sub = await subscribe(client, account["id"], plan_code="basic", trial_days=0)
    await advance(client, clock["id"], "2026-03-05T12:00:00Z")
    before = event(sub["id"], quantity=100, timestamp="2026-03-05T10:00:00Z")
    assert (await client.post("/v1/usage", json=before)).status_code == 201
    await advance(client, clock["id"], "2026-03-11T08:00:00Z")
    await change(client, sub["id"], plan_code="plus")
    prorated = (await invoices_of(client, sub["id"]))[-1]
    # Mar 11 to Mar 31 is 21 of 31 days: -1000 x 21/31 = -677.4 -> -677 and
    # +2000 x 21/31 = 1354.8 -> 1355; the 100 calls so far at 1 cent each under basic: 100.
    assert lines(prorated) == [("proration", -677), ("proration", 1355), ("usage", 100)]
    await advance(client, clock["id"], "2026-03-20T12:00:00Z")
    after = event(sub["id"], quantity=50, timestamp="2026-03-20T10:00:00Z")
    assert (await client.post("/v1/usage", json=after)).status_code == 201
    await advance(client, clock["id"], "2026-04-02T00:00:00Z")
    renewal = (await invoices_of(client, sub["id"]))[-1]
    # Only the 50 calls since the change, at plus's 2 cents: 100; and April's fee in advance.
    assert lines(renewal) == [("subscription", 2000), ("usage", 100)]
