"""Accounts over HTTP against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billing.auth.permissions import Role
from tests.conftest import Sql, http_client, new_api_key
from tests.factories.accounts import create_account

MASKED_FIELDS = {
    "object",
    "id",
    "account_id",
    "gateway",
    "brand",
    "last4",
    "exp_month",
    "exp_year",
    "is_default",
    "created_at",
}


async def test_create_account_minimal(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/accounts", json={"email": "ada@example.com"})
    assert response.status_code == 201
    account = response.json()
    assert account["object"] == "account"
    assert account["email"] == "ada@example.com"
    assert account["currency"] == "USD"
    assert account["timezone"] == "UTC"
    assert account["locale"] == "en_US"
    assert account["status"] == "active"
    assert account["tax_exempt"] == "none"
    assert account["default_payment_method"] is None
    assert account["metadata"] == {}
    fetched = await client.get(f"/v1/accounts/{account['id']}")
    assert fetched.json() == account


async def test_create_account_with_payment_method(client: httpx.AsyncClient, sql: Sql) -> None:
    account = await create_account(
        client, email="grace@example.com", name="Grace", payment_method="pm_card_visa"
    )
    method = account["default_payment_method"]
    assert method["brand"] == "visa"
    assert method["last4"] == "4242"
    assert (method["exp_month"], method["exp_year"]) == (12, 2034)
    assert method["is_default"] is True
    rows = await sql("SELECT count(*) AS n FROM payment_methods")
    assert rows[0].n == 1


async def test_duplicate_email_creates_separate_accounts(client: httpx.AsyncClient) -> None:
    first = await create_account(client, email="same@example.com")
    second = await create_account(client, email="same@example.com")
    assert first["id"] != second["id"]
    listed = (await client.get("/v1/accounts", params={"email": "SAME@example.com"})).json()
    assert {a["id"] for a in listed["data"]} == {first["id"], second["id"]}


async def test_get_account_with_masked_payment_method(client: httpx.AsyncClient) -> None:
    account = await create_account(client, payment_method="pm_card_mastercard")
    response = await client.get(f"/v1/accounts/{account['id']}")
    method = response.json()["default_payment_method"]
    assert set(method) == MASKED_FIELDS
    assert method["last4"] == "4444"
    assert "pm_card_mastercard" not in response.text


async def test_declined_card_creates_nothing(client: httpx.AsyncClient, sql: Sql) -> None:
    response = await client.post(
        "/v1/accounts", json={"email": "x@example.com", "payment_method": "pm_card_expired"}
    )
    assert response.status_code == 402
    body = response.json()
    assert body["code"] == "payment_method_declined"
    assert body["param"] == "payment_method"
    assert body["decline_code"] == "expired_card"
    for table in ("accounts", "payment_methods", "events"):
        assert (await sql(f"SELECT count(*) AS n FROM {table}"))[0].n == 0


async def test_account_with_every_optional_field(client: httpx.AsyncClient) -> None:
    account = await create_account(
        client,
        email="billing@acme.example",
        name="Acme GmbH",
        currency="eur",
        timezone="Europe/Berlin",
        locale="de-DE",
        tax_exempt="reverse",
        tax_ids=[{"type": "eu_vat", "value": "DE136695976"}],
        address={"country": "DE", "city": "Berlin", "postal_code": "10115"},
        metadata={"crm_id": "4711"},
    )
    assert account["currency"] == "EUR"
    assert account["locale"] == "de_DE"
    assert account["tax_exempt"] == "reverse"
    assert account["tax_ids"] == [{"type": "eu_vat", "value": "DE136695976"}]
    assert account["address"]["country"] == "DE"
    assert account["metadata"] == {"crm_id": "4711"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@example.com", "currency": "XYZ"}, "currency"),
        ({"email": "a@example.com", "currency": "XXX"}, "currency"),
        ({"email": "a@example.com", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"email": "a@example.com", "locale": "xx_YY"}, "locale"),
        ({"email": "a@example.com", "tax_exempt": "sometimes"}, "tax_exempt"),
        ({"email": "a@example.com", "metadata": {"k": 1}}, "metadata.k"),
        ({"email": "a@example.com", "metadata": {f"k{i}": "v" for i in range(51)}}, "metadata"),
        ({"email": "a@example.com", "address": {"country": "Germany"}}, "address.country"),
        ({"email": "a@example.com", "shoe_size": 42}, "shoe_size"),
        ({"email": "a@example.com", "name": "n" * 201}, "name"),
    ],
)
async def test_invalid_accounts_are_422_naming_the_field(
    client: httpx.AsyncClient, sql: Sql, body: dict[str, Any], param: str
) -> None:
    response = await client.post("/v1/accounts", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["param"] == param
    assert (await sql("SELECT count(*) AS n FROM accounts"))[0].n == 0


async def test_update_account(client: httpx.AsyncClient) -> None:
    account = await create_account(client, name="Old")
    response = await client.patch(
        f"/v1/accounts/{account['id']}",
        json={"name": "New", "tax_exempt": "exempt", "metadata": {"a": "b"}},
    )
    assert response.status_code == 200
    updated = response.json()
    assert (updated["name"], updated["tax_exempt"], updated["metadata"]) == (
        "New",
        "exempt",
        {"a": "b"},
    )
    assert updated["email"] == account["email"]
    assert updated["updated_at"] > account["updated_at"]
    cleared = await client.patch(f"/v1/accounts/{account['id']}", json={"name": None})
    assert cleared.json()["name"] is None


@pytest.mark.parametrize(
    ("body", "param"),
    [({"email": None}, "email"), ({"currency": "NOPE"}, "currency"), ({"id": "x"}, "id")],
)
async def test_invalid_updates_are_422(
    client: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    account = await create_account(client)
    response = await client.patch(f"/v1/accounts/{account['id']}", json=body)
    assert response.status_code == 422
    assert response.json()["param"] == param


async def test_soft_delete_hides_the_account(client: httpx.AsyncClient, sql: Sql) -> None:
    account = await create_account(client)
    kept = await create_account(client)
    deleted = await client.delete(f"/v1/accounts/{account['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"object": "account", "id": account["id"], "deleted": True}
    assert (await client.get(f"/v1/accounts/{account['id']}")).status_code == 404
    assert (
        await client.patch(f"/v1/accounts/{account['id']}", json={"name": "x"})
    ).status_code == 404
    assert (await client.delete(f"/v1/accounts/{account['id']}")).status_code == 404
    listed = (await client.get("/v1/accounts")).json()["data"]
    assert [a["id"] for a in listed] == [kept["id"]]
    rows = await sql("SELECT deleted_at FROM accounts WHERE id = :id", id=account["id"])
    assert rows[0].deleted_at is not None


async def test_list_filters_and_pagination(client: httpx.AsyncClient, sql: Sql) -> None:
    made = [await create_account(client, email=f"u{i}@example.com") for i in range(5)]
    await sql("UPDATE accounts SET status = 'warning' WHERE email = 'u1@example.com'")
    page1 = (await client.get("/v1/accounts", params={"limit": 2})).json()
    assert [a["email"] for a in page1["data"]] == ["u4@example.com", "u3@example.com"]
    assert page1["has_more"] is True
    page2 = (
        await client.get(
            "/v1/accounts", params={"limit": 2, "starting_after": page1["data"][-1]["id"]}
        )
    ).json()
    assert [a["email"] for a in page2["data"]] == ["u2@example.com", "u1@example.com"]
    page3 = (
        await client.get(
            "/v1/accounts", params={"limit": 2, "starting_after": page2["data"][-1]["id"]}
        )
    ).json()
    assert [a["email"] for a in page3["data"]] == ["u0@example.com"]
    assert page3["has_more"] is False
    warning = (await client.get("/v1/accounts", params={"status": "warning"})).json()["data"]
    assert [a["email"] for a in warning] == ["u1@example.com"]
    created = made[2]["created_at"]
    since = (await client.get("/v1/accounts", params={"created_gte": created})).json()["data"]
    assert [a["email"] for a in since] == ["u4@example.com", "u3@example.com", "u2@example.com"]
    before = (await client.get("/v1/accounts", params={"created_lt": created})).json()["data"]
    assert [a["email"] for a in before] == ["u1@example.com", "u0@example.com"]
    bad = await client.get("/v1/accounts", params={"status": "sleepy"})
    assert bad.status_code == 422
    assert bad.json()["param"] == "status"


async def test_unknown_account_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/accounts/7f0c1c2e-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_each_change_writes_its_event(client: httpx.AsyncClient, sql: Sql) -> None:
    account = await create_account(client, payment_method="pm_card_visa")
    updated = (await client.patch(f"/v1/accounts/{account['id']}", json={"name": "N"})).json()
    await client.delete(f"/v1/accounts/{account['id']}")
    rows = await sql("SELECT type, data, account_id FROM events ORDER BY seq")
    assert [r.type for r in rows] == ["account.created", "account.updated", "account.deleted"]
    assert rows[0].data == account
    assert rows[1].data == updated
    assert rows[2].data["deleted"] is True
    assert {str(r.account_id) for r in rows} == {account["id"]}


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        (Role.BILLING_ADMIN, 200, 201),
        (Role.SUPPORT_REP, 200, 201),
        (Role.FINANCE_VIEWER, 200, 403),
    ],
)
async def test_account_permissions(app: FastAPI, role: Role, read: int, write: int) -> None:
    async with http_client(app, await new_api_key(app, role)) as c:
        assert (await c.get("/v1/accounts")).status_code == read
        assert (await c.post("/v1/accounts", json={"email": "r@example.com"})).status_code == write


async def test_idempotent_account_creation(client: httpx.AsyncClient, sql: Sql) -> None:
    headers = {"Idempotency-Key": "signup-42"}
    body = {"email": "once@example.com", "payment_method": "pm_card_visa"}
    results = await asyncio.gather(
        *(client.post("/v1/accounts", json=body, headers=headers) for _ in range(5))
    )
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    again = await client.post("/v1/accounts", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert (await sql("SELECT count(*) AS n FROM accounts"))[0].n == 1


async def test_currency_is_fixed_once_the_account_is_billed(client: httpx.AsyncClient) -> None:
    account = await create_account(client)
    changed = await client.patch(f"/v1/accounts/{account['id']}", json={"currency": "EUR"})
    assert changed.json()["currency"] == "EUR"
    plan = {
        "code": "basic",
        "name": "Basic",
        "interval": "month",
        "prices": [{"currency": "EUR", "unit_amount": 900}],
    }
    assert (await client.post("/v1/plans", json=plan)).status_code == 201
    sub = await client.post(
        "/v1/subscriptions", json={"account_id": account["id"], "plan_code": "basic"}
    )
    assert sub.status_code == 201
    refused = await client.patch(f"/v1/accounts/{account['id']}", json={"currency": "USD"})
    assert refused.status_code == 409
    assert (refused.json()["code"], refused.json()["param"]) == ("conflict", "currency")
    same = await client.patch(f"/v1/accounts/{account['id']}", json={"currency": "EUR"})
    assert same.status_code == 200
