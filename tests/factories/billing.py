"""Factories for the billing engine: test clocks, plans, accounts on a clock, subscriptions."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from billing.auth.keys import create_api_key
from billing.auth.permissions import Role


async def create_test_clock(client: httpx.AsyncClient, frozen_time: str) -> dict[str, Any]:
    response = await client.post("/v1/test-clocks", json={"frozen_time": frozen_time})
    assert response.status_code == 201, response.text
    clock: dict[str, Any] = response.json()
    return clock


async def advance(client: httpx.AsyncClient, clock_id: str, frozen_time: str) -> dict[str, Any]:
    response = await client.post(
        f"/v1/test-clocks/{clock_id}/advance", json={"frozen_time": frozen_time}
    )
    assert response.status_code == 200, response.text
    clock: dict[str, Any] = response.json()
    return clock


async def simple_plan(
    client: httpx.AsyncClient,
    code: str = "pro",
    amount: int = 3000,
    currency: str = "USD",
    **fields: Any,
) -> dict[str, Any]:
    body = {
        "code": code,
        "name": fields.pop("name", code.title()),
        "interval": fields.pop("interval", "month"),
        "prices": [{"currency": currency, "unit_amount": amount}],
    } | fields
    response = await client.post("/v1/plans", json=body)
    assert response.status_code == 201, response.text
    plan: dict[str, Any] = response.json()
    return plan


async def account_on_clock(
    client: httpx.AsyncClient, clock_id: str, **fields: Any
) -> dict[str, Any]:
    body = {"email": "billing@example.com", "test_clock_id": clock_id} | fields
    response = await client.post("/v1/accounts", json=body)
    assert response.status_code == 201, response.text
    account: dict[str, Any] = response.json()
    return account


async def customer_on_clock(
    client: httpx.AsyncClient,
    at: str,
    *,
    amount: int = 3000,
    currency: str = "USD",
    plan: dict[str, Any] | None = None,
    **account: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(clock, account): a test clock frozen at `at`, then a plan (simple_plan with `amount`,
    `currency` and the extra fields in `plan`, e.g. {"code": "max", "trial_days": 14}), then an
    account on the clock with the fields in `account`.

    `currency` is the plan's price currency; an account `currency` cannot be passed here, so
    set such accounts up with account_on_clock directly."""
    clock = await create_test_clock(client, at)
    await simple_plan(client, amount=amount, currency=currency, **(plan or {}))
    customer = await account_on_clock(client, clock["id"], **account)
    return clock, customer


async def subscribe(client: httpx.AsyncClient, account_id: str, **fields: Any) -> dict[str, Any]:
    body = {"account_id": account_id, "plan_code": "pro"} | fields
    response = await client.post("/v1/subscriptions", json=body)
    assert response.status_code == 201, response.text
    sub: dict[str, Any] = response.json()
    return sub


async def declined_subscription(
    client: httpx.AsyncClient,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(clock, account, subscription): a $30 monthly plan from 2025-03-01 on a card whose
    charges are declined."""
    clock, account = await customer_on_clock(
        client, "2025-03-01T00:00:00Z", amount=3000, payment_method="pm_card_chargeDeclined"
    )
    sub = await subscribe(client, account["id"])
    return clock, account, sub


async def invoices_of(client: httpx.AsyncClient, subscription_id: str) -> list[dict[str, Any]]:
    """Every invoice of a subscription, oldest first."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"subscription_id": subscription_id, "limit": 100}
        if after:
            params["starting_after"] = after
        page = (await client.get("/v1/invoices", params=params)).json()
        found.extend(page["data"])
        if not page["has_more"]:
            return list(reversed(found))
        after = page["data"][-1]["id"]


async def grant_credit(
    client: httpx.AsyncClient, account_id: str, amount: int, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/credits", json={"account_id": account_id, "amount": amount} | fields
    )
    assert response.status_code == 201, response.text
    entry: dict[str, Any] = response.json()
    return entry


async def credits_of(client: httpx.AsyncClient, account_id: str) -> dict[str, Any]:
    """An account's credit balances and ledger."""
    response = await client.get(f"/v1/accounts/{account_id}/credits")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def only_invoice(client: httpx.AsyncClient, subscription_id: str) -> dict[str, Any]:
    [invoice] = await invoices_of(client, subscription_id)
    return invoice


async def invoice_action(
    client: httpx.AsyncClient, invoice_id: str, action: str, **kwargs: Any
) -> httpx.Response:
    """POST /v1/invoices/{id}/{action}: void, mark-paid or mark-uncollectible."""
    return await client.post(f"/v1/invoices/{invoice_id}/{action}", **kwargs)


async def api_key_with_id(application: FastAPI, role: Role = Role.SUPER_ADMIN) -> tuple[str, str]:
    """A new API key's (id, secret): the id is what history and audit records name."""
    runtime = application.state.runtime
    async with runtime.sessions() as session:
        key, secret = await create_api_key(session, role=role, name=f"test-{role.value}")
        await session.commit()
    return str(key.id), secret
