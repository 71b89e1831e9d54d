"""The stripe gateway's charges and refunds (real SDK, local Stripe-shaped server), and the
signed `POST /webhooks/stripe` endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from billing.payments import charges
from billing.payments.gateways import GatewayUnavailable, StripeGateway
from tests.conftest import AppFactory, Sql, http_client, new_api_key, runtime_of
from tests.factories.billing import (
    customer_on_clock,
    subscribe,
)
from tests.stripe_server import StripeFake

SECRET = "whsec_test_secret"


@pytest.fixture
async def gateway(fake: StripeFake) -> AsyncIterator[StripeGateway]:
    made = StripeGateway(
        api_key=fake.api_key, api_base=fake.url, timeout=1.0, max_network_retries=0
    )
    yield made
    await made.aclose()


async def card(gateway: StripeGateway, token: str) -> tuple[str, str]:
    customer = await gateway.create_customer(
        account_id=uuid.uuid4(), email="a@example.com", name=None
    )
    details = await gateway.attach_payment_method(token=token, customer_id=customer)
    return customer, details.gateway_payment_method_id


async def charge(gateway: StripeGateway, token: str, key: str, amount: int = 2900) -> Any:
    customer, method = await card(gateway, token)
    return await gateway.charge(
        amount=amount,
        currency="USD",
        customer_id=customer,
        payment_method_id=method,
        idempotency_key=key,
        metadata={"payment_id": "p1"},
    )


async def test_charge_is_an_off_session_payment_intent(
    gateway: StripeGateway, fake: StripeFake
) -> None:
    result = await charge(gateway, "pm_card_visa", "payment_k1")
    assert result.status == "succeeded"
    [request] = fake.requests_to("POST", "/v1/payment_intents")
    assert request.idempotency_key == "payment_k1"
    assert {k: request.params[k] for k in ("amount", "currency", "confirm", "off_session")} == {
        "amount": "2900",
        "currency": "usd",
        "confirm": "true",
        "off_session": "true",
    }
    assert request.params["metadata"] == {"payment_id": "p1", "idempotency_key": "payment_k1"}
    assert result.transaction_id in fake.objects("payment_intent")


async def test_declined_charge_is_a_failed_result(gateway: StripeGateway) -> None:
    result = await charge(gateway, "pm_card_chargeCustomerFail", "payment_k2")
    assert (result.status, result.failure_code) == ("failed", "card_declined")
    assert result.transaction_id.startswith("pi_")


async def test_same_key_charges_once(gateway: StripeGateway, fake: StripeFake) -> None:
    customer, method = await card(gateway, "pm_card_visa")
    args: dict[str, Any] = {
        "amount": 1000,
        "currency": "EUR",
        "customer_id": customer,
        "payment_method_id": method,
        "idempotency_key": "payment_same",
        "metadata": {},
    }
    first = await gateway.charge(**args)
    second = await gateway.charge(**args)
    assert first.transaction_id == second.transaction_id
    assert len(fake.objects("payment_intent")) == 1


async def test_timeout_is_unavailable_and_the_charge_is_found_by_its_key(
    gateway: StripeGateway, fake: StripeFake
) -> None:
    customer, method = await card(gateway, "pm_card_visa")
    fake.hang_next(1, seconds=3.0)
    with pytest.raises(GatewayUnavailable):
        await gateway.charge(
            amount=500,
            currency="USD",
            customer_id=customer,
            payment_method_id=method,
            idempotency_key="payment_lost",
            metadata={},
        )
    found = await gateway.retrieve_charge(idempotency_key="payment_lost", transaction_id=None)
    assert found is not None
    assert found.status == "succeeded"
    assert (
        await gateway.retrieve_charge(idempotency_key="payment_never", transaction_id=None) is None
    )
    by_id = await gateway.retrieve_charge(
        idempotency_key="payment_lost", transaction_id=found.transaction_id
    )
    assert by_id == found


async def test_partial_refund(gateway: StripeGateway, fake: StripeFake) -> None:
    paid = await charge(gateway, "pm_card_visa", "payment_r", amount=3000)
    refund = await gateway.refund(
        transaction_id=paid.transaction_id, amount=1000, currency="USD", idempotency_key="refund_1"
    )
    assert refund.status == "succeeded"
    [stored] = fake.objects("refund").values()
    assert (stored["amount"], stored["payment_intent"]) == (1000, paid.transaction_id)


# --------------------------------------------------------------------------- webhooks


def signed(payload: bytes, *, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    digest = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={digest}", "Content-Type": "application/json"}


def intent_event(kind: str, payment_id: str, *, event_id: str = "evt_1") -> bytes:
    intent: dict[str, Any] = {
        "id": "pi_3webhook",
        "object": "payment_intent",
        "status": "succeeded" if kind.endswith("succeeded") else "requires_payment_method",
        "metadata": {"payment_id": payment_id},
        "last_payment_error": None
        if kind.endswith("succeeded")
        else {"code": "card_declined", "decline_code": "insufficient_funds", "message": "No."},
    }
    event = {
        "id": event_id,
        "object": "event",
        "type": kind,
        "api_version": "2025-09-30.clover",
        "created": int(time.time()),
        "data": {"object": intent},
    }
    return json.dumps(event).encode()


@pytest.fixture
async def pending(make_app: AppFactory) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """A client of an app with the webhook secret, and an invoice with a payment in flight."""
    app = make_app(stripe_webhook_secret=SECRET)
    async with http_client(app, await new_api_key(app)) as client:
        _, account = await customer_on_clock(
            client, "2025-03-01T00:00:00Z", amount=3000, payment_method="pm_card_visa"
        )
        sub = await subscribe(client, account["id"])
        invoice = (await client.get("/v1/invoices", params={"subscription_id": sub["id"]})).json()
        invoice_id = invoice["data"][0]["id"]
        runtime = runtime_of(app)
        async with runtime.sessions() as session:
            attempt = await charges.begin_manual(
                session,
                invoice_id=uuid.UUID(invoice_id),
                payment_method_id=None,
                at=datetime.fromisoformat(invoice["data"][0]["created_at"]),
            )
        yield client, invoice_id, str(attempt.payment_id)


async def test_webhook_succeeded_pays_the_invoice_once(
    pending: tuple[httpx.AsyncClient, str, str], sql: Sql
) -> None:
    client, invoice_id, payment_id = pending
    body = intent_event("payment_intent.succeeded", payment_id)
    response = await client.post("/webhooks/stripe", content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}
    payment = (await client.get(f"/v1/payments/{payment_id}")).json()
    assert (payment["status"], payment["gateway_transaction_id"]) == ("succeeded", "pi_3webhook")
    assert (await client.get(f"/v1/invoices/{invoice_id}")).json()["status"] == "paid"
    [before] = await sql("SELECT count(*) FROM events")

    replay = await client.post("/webhooks/stripe", content=body, headers=signed(body))
    assert replay.json() == {"received": True, "duplicate": True}
    other = intent_event("payment_intent.payment_failed", payment_id, event_id="evt_2")
    late = await client.post("/webhooks/stripe", content=other, headers=signed(other))
    assert late.status_code == 200
    assert (await client.get(f"/v1/payments/{payment_id}")).json()["status"] == "succeeded"
    assert await sql("SELECT count(*) FROM events") == [before]


async def test_webhook_payment_failed_schedules_a_retry(
    pending: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, _, payment_id = pending
    body = intent_event("payment_intent.payment_failed", payment_id)
    response = await client.post("/webhooks/stripe", content=body, headers=signed(body))
    assert response.status_code == 200
    payment = (await client.get(f"/v1/payments/{payment_id}")).json()
    assert (payment["status"], payment["failure_code"], payment["next_retry_at"]) == (
        "failed",
        "insufficient_funds",
        "2025-03-04T00:00:00Z",
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Stripe-Signature": "t=1,v1=deadbeef"},
        "wrong_secret",
        "stale",
    ],
)
async def test_webhook_rejects_bad_or_stale_signatures(
    pending: tuple[httpx.AsyncClient, str, str], headers: Any
) -> None:
    client, _, payment_id = pending
    body = intent_event("payment_intent.succeeded", payment_id)
    if headers == "wrong_secret":
        headers = signed(body, secret="whsec_other")
    elif headers == "stale":
        headers = signed(body, at=int(time.time()) - 600)
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed_request"
    assert (await client.get(f"/v1/payments/{payment_id}")).json()["status"] == "pending"
