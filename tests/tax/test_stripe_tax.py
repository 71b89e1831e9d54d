"""TAX_PROVIDER=stripe: the real Stripe SDK against the local Stripe-shaped server."""

from __future__ import annotations

from fastapi import FastAPI

from tests.conftest import AppFactory, http_client, new_api_key
from tests.factories.billing import (
    account_on_clock,
    create_test_clock,
    customer_on_clock,
    invoices_of,
    simple_plan,
)
from tests.factories.billing import subscribe as subscribe_to
from tests.stripe_server import StripeFake


def stripe_app(make_app: AppFactory, fake: StripeFake) -> FastAPI:
    return make_app(tax_provider="stripe", stripe_secret_key=fake.api_key, stripe_api_base=fake.url)


async def test_stripe_tax_calculates_per_line(make_app: AppFactory, fake: StripeFake) -> None:
    app = stripe_app(make_app, fake)
    async with http_client(app, await new_api_key(app)) as client:
        _, account = await customer_on_clock(
            client, "2025-03-10T09:00:00Z", amount=2900, address={"country": "US", "region": "CA"}
        )
        sub = await subscribe_to(client, account["id"], quantity=3)
        [invoice] = await invoices_of(client, sub["id"])
    # The fake's California rate: 8700 x 7.25 % = 630.75 -> 631.
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == (8700, 631, 9331)
    assert invoice["tax_status"] == "taxed"
    [tax] = invoice["taxes"]
    assert (tax["name"], tax["country"], tax["region"], tax["percentage"], tax["amount"]) == (
        "Sales Tax",
        "US",
        "CA",
        "7.25",
        631,
    )
    assert invoice["taxes"][0]["tax_rate_id"] is None
    [request] = fake.requests_to("POST", "/v1/tax/calculations")
    assert request.params["currency"] == "usd"
    assert request.params["customer_details"]["address"] == {"country": "US", "state": "CA"}
    assert request.params["line_items"] == [
        {"amount": "8700", "reference": "line_0", "tax_behavior": "exclusive"}
    ]
    assert request.idempotency_key == f"tax-{invoice['id']}"


async def test_stripe_tax_exemption_and_reverse_charge(
    make_app: AppFactory, fake: StripeFake
) -> None:
    app = stripe_app(make_app, fake)
    async with http_client(app, await new_api_key(app)) as client:
        clock = await create_test_clock(client, "2025-03-10T09:00:00Z")
        await simple_plan(client, amount=10000, currency="EUR")
        exempt = await account_on_clock(
            client, clock["id"], currency="EUR", address={"country": "DE"}, tax_exempt="exempt"
        )
        reverse = await account_on_clock(
            client,
            clock["id"],
            currency="EUR",
            address={"country": "FR"},
            tax_exempt="reverse",
            tax_ids=[{"type": "eu_vat", "value": "FR40303265045"}],
        )
        [exempt_invoice] = await invoices_of(
            client, (await subscribe_to(client, exempt["id"]))["id"]
        )
        [reverse_invoice] = await invoices_of(
            client, (await subscribe_to(client, reverse["id"]))["id"]
        )
    assert (exempt_invoice["tax"], exempt_invoice["tax_status"], exempt_invoice["tax_note"]) == (
        0,
        "exempt",
        "Tax exempt",
    )
    assert (reverse_invoice["tax"], reverse_invoice["tax_note"]) == (0, "Reverse charge")
    sent = [r.params["customer_details"] for r in fake.requests_to("POST", "/v1/tax/calculations")]
    assert [d["taxability_override"] for d in sent] == ["customer_exempt", "reverse_charge"]
    assert sent[1]["tax_ids"] == [{"type": "eu_vat", "value": "FR40303265045"}]


async def test_stripe_tax_failure_leaves_no_invoice(make_app: AppFactory, fake: StripeFake) -> None:
    app = stripe_app(make_app, fake)
    async with http_client(app, await new_api_key(app)) as client:
        _, account = await customer_on_clock(
            client, "2025-03-10T09:00:00Z", amount=2900, address={"country": "US"}
        )
        fake.fail_next(3, status=500)  # the SDK's two retries included
        response = await client.post(
            "/v1/subscriptions", json={"account_id": account["id"], "plan_code": "pro"}
        )
        assert response.status_code == 503
        assert "Stripe Tax failed" in response.json()["detail"]
        listed = (await client.get("/v1/invoices", params={"account_id": account["id"]})).json()
    assert listed["data"] == []
