from __future__ import annotations

from typing import Any

import httpx


async def create_account(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"email": "customer@example.com"} | fields
    response = await client.post("/v1/accounts", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def attach_card(
    client: httpx.AsyncClient,
    account_id: str,
    token: str = "pm_card_visa",  # noqa: S107 (a sandbox test card)
    **fields: Any,
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/accounts/{account_id}/payment-methods", json={"token": token} | fields
    )
    assert response.status_code == 201, response.text
    attached: dict[str, Any] = response.json()
    return attached
