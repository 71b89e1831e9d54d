"""Factories for usage metering: metered plans, events, batches and summaries over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.factories.billing import account_on_clock, create_test_clock, subscribe


def graduated(metric: str = "api_calls", **fields: Any) -> dict[str, Any]:
    """10,000 calls free, then 0.1 cent each up to 50,000, then 0.05 cent each."""
    return {
        "metric": metric,
        "aggregation": "sum",
        "model": "graduated",
        "tiers": [
            {"up_to": "10000", "unit_amount_decimal": "0"},
            {"up_to": "50000", "unit_amount_decimal": "0.1"},
            {"up_to": None, "unit_amount_decimal": "0.05"},
        ],
    } | fields


def per_unit(metric: str, aggregation: str = "sum", **fields: Any) -> dict[str, Any]:
    """One cent per unit."""
    return {
        "metric": metric,
        "aggregation": aggregation,
        "model": "per_unit",
        "unit_amount_decimal": "1",
    } | fields


async def metered_plan(
    client: httpx.AsyncClient,
    metered: list[dict[str, Any]],
    *,
    code: str = "pro",
    amount: int = 2900,
    currency: str = "USD",
    **fields: Any,
) -> dict[str, Any]:
    body = {
        "code": code,
        "name": fields.pop("name", code.title()),
        "interval": fields.pop("interval", "month"),
        "prices": [{"currency": currency, "unit_amount": amount, "metered": metered}],
    } | fields
    response = await client.post("/v1/plans", json=body)
    assert response.status_code == 201, response.text
    plan: dict[str, Any] = response.json()
    return plan


async def metered_subscription(
    client: httpx.AsyncClient,
    metered: list[dict[str, Any]],
    now: str,
    *,
    plan: dict[str, Any] | None = None,
    trial_days: int = 0,
    **account: Any,
) -> tuple[str, dict[str, Any]]:
    """A test clock frozen at `now`, a metered plan (`plan`: more plan fields), an account on
    the clock (`account`: more account fields) and its subscription: (clock id, subscription)."""
    clock = await create_test_clock(client, now)
    await metered_plan(client, metered, **(plan or {}))
    owner = await account_on_clock(client, clock["id"], **account)
    return clock["id"], await subscribe(client, owner["id"], trial_days=trial_days)


def event(
    subscription_id: str, metric: str = "api_calls", quantity: Any = 1, **fields: Any
) -> dict[str, Any]:
    return {
        "subscription_id": subscription_id,
        "metric": metric,
        "quantity": quantity,
        "idempotency_key": fields.pop("idempotency_key", uuid.uuid4().hex),
    } | fields


async def send_batch(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = await client.post("/v1/usage/batch", json={"events": events})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def accept_all(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    answer = await send_batch(client, events)
    rejected = [r for r in answer["results"] if r["status"] != "accepted"]
    assert rejected == [], rejected


async def usage_of(
    client: httpx.AsyncClient, subscription_id: str, period: str = "current"
) -> dict[str, Any]:
    response = await client.get(
        f"/v1/subscriptions/{subscription_id}/usage", params={"period": period}
    )
    assert response.status_code == 200, response.text
    summary: dict[str, Any] = response.json()
    return summary


def values(summary: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Per metric: (aggregated value, amount)."""
    return {m["metric"]: (m["value"], m["amount"]) for m in summary["metrics"]}
