from __future__ import annotations

from typing import Any

import httpx


def price(currency: str = "USD", unit_amount: int = 2900, **fields: Any) -> dict[str, Any]:
    """A request price: a recurring amount, plus `metered=[...]` if given."""
    return {"currency": currency, "unit_amount": unit_amount} | fields


def api_calls_graduated(metric: str = "api_calls", **fields: Any) -> dict[str, Any]:
    """A metered component: the first 1,000 units free, then 0.04 cents ($0.0004) each."""
    return {
        "metric": metric,
        "aggregation": "sum",
        "model": "graduated",
        "tiers": [
            {"up_to": "1000", "unit_amount_decimal": "0", "flat_amount": 0},
            {"up_to": None, "unit_amount_decimal": "0.04", "flat_amount": 0},
        ],
    } | fields


def plan_body(**overrides: Any) -> dict[str, Any]:
    """A valid PlanCreate body: "pro", $29 a month."""
    return {
        "code": "pro",
        "name": "Pro",
        "interval": "month",
        "prices": [price()],
    } | overrides


async def create_plan(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/plans", json=plan_body(**overrides))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def create_version(client: httpx.AsyncClient, code: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(f"/v1/plans/{code}/versions", json=fields)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
