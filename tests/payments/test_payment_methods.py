"""Payment methods over HTTP: the sandbox gateway, and the Stripe gateway against a local fake."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx
import pytest

from tests.conftest import AppFactory, Sql, http_client, new_api_key
from tests.factories.accounts import attach_card, create_account
from tests.stripe_server import StripeFake

pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)


def url(account: Mapping[str, object], suffix: str = "") -> str:
    return f"/v1/accounts/{account['id']}/payment-methods{suffix}"


async def test_first_method_becomes_default_and_later_ones_do_not(
    client: httpx.AsyncClient,
) -> None:
    account = await create_account(client)
    first = await attach_card(client, account["id"])
    second = await attach_card(client, account["id"], "pm_card_mastercard")
    assert (first["is_default"], second["is_default"]) == (True, False)
    listed = (await client.get(url(account))).json()["data"]
    assert [(m["brand"], m["is_default"]) for m in listed] == [
        ("mastercard", False),
        ("visa", True),
    ]
    shown = (await client.get(f"/v1/accounts/{account['id']}")).json()
    assert shown["default_payment_method"]["id"] == first["id"]


async def test_set_default_and_detach(client: httpx.AsyncClient) -> None:
    account = await create_account(client)
    visa = await attach_card(client, account["id"])
    amex = await attach_card(client, account["id"], "pm_card_amex")
    master = await attach_card(client, account["id"], "pm_card_mastercard", set_default=True)
    assert master["is_default"] is True
    made = await client.post(url(account, f"/{amex['id']}/default"))
    assert made.json()["is_default"] is True
    defaults = [m["id"] for m in (await client.get(url(account))).json()["data"] if m["is_default"]]
    assert defaults == [amex["id"]]
    # Detaching the default promotes the most recently added remaining method.
    detached = await client.delete(url(account, f"/{amex['id']}"))
    assert detached.status_code == 200
    remaining = (await client.get(url(account))).json()["data"]
    assert [(m["id"], m["is_default"]) for m in remaining] == [
        (master["id"], True),
        (visa["id"], False),
    ]
    again = await client.delete(url(account, f"/{amex['id']}"))
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("token", "decline_code"),
    [("pm_card_expired", "expired_card"), ("tok_not_a_card", "invalid_token")],
)
async def test_rejected_tokens_are_402_and_write_nothing(
    client: httpx.AsyncClient, sql: Sql, token: str, decline_code: str
) -> None:
    account = await create_account(client)
    response = await client.post(url(account), json={"token": token})
    assert response.status_code == 402
    body = response.json()
    assert (body["code"], body["param"], body["decline_code"]) == (
        "payment_method_declined",
        "token",
        decline_code,
    )
    assert (await sql("SELECT count(*) AS n FROM payment_methods"))[0].n == 0


async def test_unknown_account_is_404(client: httpx.AsyncClient) -> None:
    missing = {"id": "7f0c1c2e-0000-4000-8000-000000000000"}
    assert (await client.post(url(missing), json={"token": "pm_card_visa"})).status_code == 404
    assert (await client.get(url(missing))).status_code == 404


async def test_concurrent_first_attachments_leave_exactly_one_default(
    client: httpx.AsyncClient,
) -> None:
    account = await create_account(client)
    results = await asyncio.gather(
        *(client.post(url(account), json={"token": "pm_card_visa"}) for _ in range(6))
    )
    assert [r.status_code for r in results] == [201] * 6
    listed = (await client.get(url(account))).json()["data"]
    assert sum(m["is_default"] for m in listed) == 1


async def test_stripe_gateway_creates_one_customer_and_stores_masked_cards(
    make_app: AppFactory, stripe_fake: StripeFake, sql: Sql
) -> None:
    app = make_app(
        payment_gateway="stripe",
        stripe_secret_key=stripe_fake.api_key,
        stripe_api_base=stripe_fake.url,
    )
    async with http_client(app, await new_api_key(app)) as c:
        account = await create_account(
            c, email="stripe@example.com", name="Stripe User", payment_method="pm_card_visa"
        )
        second = await attach_card(c, account["id"], "pm_card_mastercard")
    assert account["default_payment_method"]["gateway"] == "stripe"
    assert account["default_payment_method"]["last4"] == "4242"
    assert second["brand"] == "mastercard"
    customers = list(stripe_fake.customers.values())
    assert len(customers) == 1
    assert customers[0]["email"] == "stripe@example.com"
    assert customers[0]["metadata"]["account_id"] == account["id"]
    stored = await sql("SELECT gateway_customer_id FROM accounts")
    assert stored[0].gateway_customer_id == customers[0]["id"]
    methods = await sql("SELECT gateway_payment_method_id FROM payment_methods ORDER BY created_at")
    assert [m.gateway_payment_method_id for m in methods] == list(stripe_fake.payment_methods)
    attaches = stripe_fake.requests_to("POST", "/v1/payment_methods/pm_card_visa/attach")
    assert attaches[0].params["customer"] == customers[0]["id"]


async def test_stripe_decline_and_outage_write_nothing(
    make_app: AppFactory, stripe_fake: StripeFake, sql: Sql
) -> None:
    app = make_app(
        payment_gateway="stripe",
        stripe_secret_key=stripe_fake.api_key,
        stripe_api_base=stripe_fake.url,
    )
    async with http_client(app, await new_api_key(app)) as c:
        declined = await c.post(
            "/v1/accounts", json={"email": "d@example.com", "payment_method": "pm_card_expired"}
        )
        assert declined.status_code == 402
        assert declined.json()["decline_code"] == "expired_card"
        stripe_fake.fail_next(10, status=500)
        down = await c.post(
            "/v1/accounts", json={"email": "d@example.com", "payment_method": "pm_card_visa"}
        )
        assert down.status_code == 503
        assert down.json()["code"] == "gateway_unavailable"
    assert (await sql("SELECT count(*) AS n FROM accounts"))[0].n == 0
