"""Dunning over HTTP with test clocks: reminder on day 3, warning on day 7, blocking on day 14
(after the due date of the unpaid invoice), and back to active once it is paid."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Sql
from tests.factories.billing import (
    advance,
    declined_subscription,
    only_invoice,
)


async def steps_of(client: httpx.AsyncClient, account_id: str) -> list[tuple[object, ...]]:
    response = await client.get(f"/v1/accounts/{account_id}/dunning-steps")
    assert response.status_code == 200, response.text
    return [
        (s["step"], s["days_overdue"], s["amount_due"], s["created_at"])
        for s in response.json()["data"]
    ]


async def dunning_events(sql: Sql) -> list[tuple[str, dict[str, Any]]]:
    rows = await sql("SELECT type, data FROM events WHERE type LIKE 'dunning.%' ORDER BY seq")
    return [(r.type, r.data) for r in rows]


async def status_of(client: httpx.AsyncClient, account_id: str) -> str:
    status: str = (await client.get(f"/v1/accounts/{account_id}")).json()["status"]
    return status


async def test_3_day_reminder_sent(client: httpx.AsyncClient, sql: Sql) -> None:
    clock, account, sub = await declined_subscription(client)
    await advance(client, clock["id"], "2025-03-03T23:59:00Z")
    assert await steps_of(client, account["id"]) == []
    await advance(client, clock["id"], "2025-03-04T01:00:00Z")
    invoice = await only_invoice(client, sub["id"])
    assert await steps_of(client, account["id"]) == [
        ("reminder", 3, 3000, "2025-03-04T00:00:00Z"),
    ]
    assert await dunning_events(sql) == [
        (
            "dunning.reminder",
            {
                "object": "dunning_step",
                "account_id": account["id"],
                "step": "reminder",
                "days_overdue": 3,
                "invoice_ids": [invoice["id"]],
                "amount_due": 3000,
                "currency": "USD",
            },
        )
    ]
    assert await status_of(client, account["id"]) == "active"
    await advance(client, clock["id"], "2025-03-06T01:00:00Z")
    assert len(await steps_of(client, account["id"])) == 1  # once


async def test_7_day_warning_with_account_warning_status(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    clock, account, _ = await declined_subscription(client)
    await advance(client, clock["id"], "2025-03-08T00:30:00Z")
    assert await steps_of(client, account["id"]) == [
        ("reminder", 3, 3000, "2025-03-04T00:00:00Z"),
        ("warning", 7, 3000, "2025-03-08T00:00:00Z"),
    ]
    assert [t for t, _ in await dunning_events(sql)] == ["dunning.reminder", "dunning.warning"]
    assert await status_of(client, account["id"]) == "warning"


async def test_all_retries_failed_marks_account_overdue(client: httpx.AsyncClient) -> None:
    clock, account, sub = await declined_subscription(client)
    await advance(client, clock["id"], "2025-03-11T12:00:00Z")
    invoice = await only_invoice(client, sub["id"])
    assert (invoice["status"], invoice["amount_remaining"]) == ("open", 3000)
    payments = (await client.get("/v1/payments", params={"invoice_id": invoice["id"]})).json()
    assert [(p["status"], p["next_retry_at"]) for p in payments["data"]] == [("failed", None)] * 5
    assert await status_of(client, account["id"]) == "warning"
    assert [s[0] for s in await steps_of(client, account["id"])] == ["reminder", "warning"]


async def test_14_day_service_blocking(client: httpx.AsyncClient, sql: Sql) -> None:
    clock, account, sub = await declined_subscription(client)
    await advance(client, clock["id"], "2025-03-15T00:30:00Z")
    assert await steps_of(client, account["id"]) == [
        ("reminder", 3, 3000, "2025-03-04T00:00:00Z"),
        ("warning", 7, 3000, "2025-03-08T00:00:00Z"),
        ("blocked", 14, 3000, "2025-03-15T00:00:00Z"),
    ]
    assert await status_of(client, account["id"]) == "blocked"
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert current["service_blocked"] is True
    listed = (await client.get("/v1/subscriptions", params={"account_id": account["id"]})).json()
    assert [s["service_blocked"] for s in listed["data"]] == [True]
    refused = await client.post(
        "/v1/subscriptions", json={"account_id": account["id"], "plan_code": "pro"}
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_state")
    assert [t for t, _ in await dunning_events(sql)][-1] == "dunning.blocked"


async def test_payment_unblocks_account(client: httpx.AsyncClient, sql: Sql) -> None:
    clock, account, sub = await declined_subscription(client)
    await advance(client, clock["id"], "2025-03-16T00:00:00Z")
    assert await status_of(client, account["id"]) == "blocked"
    await client.post(
        f"/v1/accounts/{account['id']}/payment-methods",
        json={"token": "pm_card_visa", "set_default": True},
    )
    invoice = await only_invoice(client, sub["id"])
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay")
    assert paid.json()["status"] == "succeeded"
    assert await status_of(client, account["id"]) == "active"
    assert (await client.get(f"/v1/subscriptions/{sub['id']}")).json()["service_blocked"] is False
    assert (await steps_of(client, account["id"]))[-1] == (
        "unblocked",
        15,
        0,
        "2025-03-16T00:00:00Z",
    )
    event_type, data = (await dunning_events(sql))[-1]
    assert event_type == "dunning.unblocked"
    assert (data["step"], data["invoice_ids"], data["amount_due"]) == (
        "unblocked",
        [invoice["id"]],
        0,
    )
    # A new case starts from scratch: nothing more happens to this account.
    await advance(client, clock["id"], "2025-03-31T00:00:00Z")
    assert await status_of(client, account["id"]) == "active"
