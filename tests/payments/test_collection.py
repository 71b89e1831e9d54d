"""Collecting invoices over HTTP with test clocks and the sandbox gateway: automatic charges,
retries, manual payments, refunds, and never a double charge."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import IntegrityError

from billing.payments import charges
from billing.runtime import Runtime
from billing.worker.runner import Worker
from tests.conftest import Sql
from tests.factories.billing import (
    advance,
    customer_on_clock,
    declined_subscription,
    only_invoice,
    simple_plan,
    subscribe,
)


async def payments_of(client: httpx.AsyncClient, invoice_id: str) -> list[dict[str, Any]]:
    """An invoice's payments, oldest first."""
    response = await client.get("/v1/payments", params={"invoice_id": invoice_id, "limit": 100})
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["data"]))


def attempts(payments: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    return [
        (p["attempt_number"], p["status"], p["created_at"], p["failure_code"], p["next_retry_at"])
        for p in payments
    ]


async def sandbox_charges(sql: Sql) -> int:
    [row] = await sql("SELECT count(*) FROM sandbox_charges WHERE kind = 'charge'")
    return int(row[0])


async def test_create_subscription_with_payment(client: httpx.AsyncClient, sql: Sql) -> None:
    clock, account = await customer_on_clock(
        client, "2025-03-10T15:30:00Z", amount=2900, payment_method="pm_card_visa"
    )
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-03-10T15:31:00Z")
    invoice = await only_invoice(client, sub["id"])
    assert (invoice["status"], invoice["amount_paid"], invoice["amount_remaining"]) == (
        "paid",
        2900,
        0,
    )
    assert invoice["paid_at"] == "2025-03-10T15:30:00Z"
    [payment] = await payments_of(client, invoice["id"])
    assert {k: payment[k] for k in ("amount", "currency", "status", "attempt_number")} == {
        "amount": 2900,
        "currency": "USD",
        "status": "succeeded",
        "attempt_number": 1,
    }
    assert payment["gateway_transaction_id"].startswith("ch_sandbox_")
    assert payment["idempotency_key"] == f"payment_{payment['id']}"
    types = [r.type for r in await sql("SELECT type FROM events ORDER BY seq")]
    assert types[-2:] == ["invoice.paid", "payment.succeeded"]


async def test_auto_attempt_payment_on_invoice_creation(
    client: httpx.AsyncClient, worker: Worker, sql: Sql
) -> None:
    await simple_plan(client, amount=4500)
    account = (
        await client.post(
            "/v1/accounts", json={"email": "now@example.com", "payment_method": "pm_card_visa"}
        )
    ).json()
    sub = await subscribe(client, account["id"])
    assert (await only_invoice(client, sub["id"]))["status"] == "open"
    done = await worker.run_due()
    assert done["payments_first_attempt"] == 1
    invoice = await only_invoice(client, sub["id"])
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", 4500)
    [payment] = await payments_of(client, invoice["id"])
    assert payment["status"] == "succeeded"
    [event] = await sql("SELECT data FROM events WHERE type = 'payment.succeeded'")
    assert event.data["object"] == "payment"
    assert event.data["id"] == payment["id"]
    assert (event.data["invoice_id"], event.data["account_id"]) == (invoice["id"], account["id"])
    assert (await worker.run_due()).get("payments_first_attempt") == 0  # charged once
    assert await sandbox_charges(sql) == 1


async def test_payment_retry_schedule(client: httpx.AsyncClient, sql: Sql) -> None:
    clock, _, sub = await declined_subscription(client)
    await advance(client, clock["id"], "2025-03-01T00:01:00Z")
    invoice = await only_invoice(client, sub["id"])
    assert attempts(await payments_of(client, invoice["id"])) == [
        (1, "failed", "2025-03-01T00:00:00Z", "card_declined", "2025-03-04T00:00:00Z"),
    ]
    await advance(client, clock["id"], "2025-03-12T00:00:00Z")
    assert attempts(await payments_of(client, invoice["id"])) == [
        (1, "failed", "2025-03-01T00:00:00Z", "card_declined", None),
        (2, "failed", "2025-03-04T00:00:00Z", "card_declined", None),
        (3, "failed", "2025-03-06T00:00:00Z", "card_declined", None),
        (4, "failed", "2025-03-08T00:00:00Z", "card_declined", None),
        (5, "failed", "2025-03-11T00:00:00Z", "card_declined", None),
    ]
    failed = await sql("SELECT data FROM events WHERE type = 'payment.failed' ORDER BY seq")
    assert [e.data["next_retry_at"] for e in failed] == [
        "2025-03-04T00:00:00Z",
        "2025-03-06T00:00:00Z",
        "2025-03-08T00:00:00Z",
        "2025-03-11T00:00:00Z",
        None,
    ]
    assert failed[0].data["failure_message"] == "Your card was declined."
    assert await sandbox_charges(sql) == 5


async def test_successful_payment_marks_invoice_paid(client: httpx.AsyncClient) -> None:
    clock, account, sub = await declined_subscription(client)
    await advance(client, clock["id"], "2025-03-02T00:00:00Z")
    new_card = await client.post(
        f"/v1/accounts/{account['id']}/payment-methods",
        json={"token": "pm_card_visa", "set_default": True},
    )
    assert new_card.status_code == 201, new_card.text
    await advance(client, clock["id"], "2025-03-05T00:00:00Z")  # the day-3 retry uses it
    invoice = await only_invoice(client, sub["id"])
    assert {k: invoice[k] for k in ("status", "amount_paid", "amount_remaining", "paid_at")} == {
        "status": "paid",
        "amount_paid": 3000,
        "amount_remaining": 0,
        "paid_at": "2025-03-04T00:00:00Z",
    }
    assert attempts(await payments_of(client, invoice["id"])) == [
        (1, "failed", "2025-03-01T00:00:00Z", "card_declined", None),
        (2, "succeeded", "2025-03-04T00:00:00Z", None, None),
    ]
    await advance(client, clock["id"], "2025-03-20T00:00:00Z")
    assert len(await payments_of(client, invoice["id"])) == 2
    again = await client.post(f"/v1/invoices/{invoice['id']}/pay")
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_state"


async def test_manual_retry_with_another_payment_method(client: httpx.AsyncClient) -> None:
    clock, account, sub = await declined_subscription(client)
    await advance(client, clock["id"], "2025-03-01T12:00:00Z")
    other = (
        await client.post(
            f"/v1/accounts/{account['id']}/payment-methods", json={"token": "pm_card_mastercard"}
        )
    ).json()
    invoice = await only_invoice(client, sub["id"])
    paid = await client.post(
        f"/v1/invoices/{invoice['id']}/pay", json={"payment_method_id": other["id"]}
    )
    assert paid.status_code == 201, paid.text
    body = paid.json()
    assert (body["status"], body["attempt_number"], body["payment_method_id"]) == (
        "succeeded",
        2,
        other["id"],
    )
    assert body["created_at"] == "2025-03-01T12:00:00Z"
    assert (await only_invoice(client, sub["id"]))["status"] == "paid"


async def test_duplicate_charge_prevention(client: httpx.AsyncClient, sql: Sql) -> None:
    clock, account = await customer_on_clock(
        client, "2025-03-01T00:00:00Z", amount=3000, payment_method="pm_card_visa"
    )
    sub = await subscribe(client, account["id"])
    invoice = await only_invoice(client, sub["id"])
    first, second = await asyncio.gather(
        client.post(f"/v1/invoices/{invoice['id']}/pay"),
        client.post(f"/v1/invoices/{invoice['id']}/pay"),
    )
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [201, 409], (first.text, second.text)
    assert await sandbox_charges(sql) == 1
    await advance(client, clock["id"], "2025-03-02T00:00:00Z")  # the worker charges nothing
    [payment] = await payments_of(client, invoice["id"])
    assert payment["status"] == "succeeded"
    assert await sandbox_charges(sql) == 1


async def test_one_payment_in_flight_per_invoice_is_a_database_rule(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    _, _, sub = await declined_subscription(client)
    invoice = await only_invoice(client, sub["id"])
    insert = (
        "INSERT INTO payments (id, invoice_id, account_id, amount, currency, status, gateway, "
        "idempotency_key, attempt_number, created_at, updated_at) "
        "SELECT gen_random_uuid(), id, account_id, 3000, 'USD', 'pending', 'sandbox', "
        ":key, :n, now(), now() FROM invoices WHERE id = :id"
    )
    await sql(insert, key="k1", n=1, id=invoice["id"])
    with pytest.raises(IntegrityError, match="uq_payments_one_in_flight"):
        await sql(insert, key="k2", n=2, id=invoice["id"])


async def test_worker_crash_after_gateway_charged_is_reconciled(
    client: httpx.AsyncClient, runtime: Runtime, sql: Sql
) -> None:
    clock, account = await customer_on_clock(
        client, "2025-03-01T00:00:00Z", amount=3000, payment_method="pm_card_visa"
    )
    sub = await subscribe(client, account["id"])
    invoice = await only_invoice(client, sub["id"])
    # Steps 1 and 2 of an attempt, then the process dies before recording the outcome.
    async with runtime.sessions() as session:
        attempt = await charges.begin_manual(
            session,
            invoice_id=invoice["id"],
            payment_method_id=None,
            at=await _frozen(sql, clock["id"]),
        )
    charged = await charges.charge(runtime.gateway, attempt)
    assert charged is not None
    assert charged.status == "succeeded"

    [payment] = await payments_of(client, invoice["id"])
    assert payment["status"] == "pending"
    blocked = await client.post(f"/v1/invoices/{invoice['id']}/pay")
    assert (blocked.status_code, blocked.json()["code"]) == (409, "conflict")
    await advance(client, clock["id"], "2025-03-01T01:00:00Z")  # past the reconcile bound
    [payment] = await payments_of(client, invoice["id"])
    assert (payment["status"], payment["updated_at"]) == ("succeeded", "2025-03-01T00:05:00Z")
    assert payment["gateway_transaction_id"] == charged.transaction_id
    paid = await only_invoice(client, sub["id"])
    assert (paid["status"], paid["paid_at"]) == ("paid", "2025-03-01T00:05:00Z")
    assert await sandbox_charges(sql) == 1


async def test_crash_before_the_gateway_call_fails_the_attempt_without_charging(
    client: httpx.AsyncClient, runtime: Runtime, sql: Sql
) -> None:
    clock, _, sub = await declined_subscription(client)
    invoice = await only_invoice(client, sub["id"])
    async with runtime.sessions() as session:
        await charges.begin_manual(
            session,
            invoice_id=invoice["id"],
            payment_method_id=None,
            at=await _frozen(sql, clock["id"]),
        )
    await advance(client, clock["id"], "2025-03-01T00:10:00Z")
    assert attempts(await payments_of(client, invoice["id"])) == [
        (1, "failed", "2025-03-01T00:00:00Z", "not_processed", "2025-03-04T00:05:00Z"),
    ]
    assert await sandbox_charges(sql) == 0


async def test_gateway_timeout_is_unknown_until_reconciled(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    clock, account = await customer_on_clock(
        client, "2025-03-01T00:00:00Z", amount=3000, payment_method="pm_card_timeout"
    )
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-03-01T00:01:00Z")
    invoice = await only_invoice(client, sub["id"])
    [payment] = await payments_of(client, invoice["id"])
    assert (payment["status"], invoice["status"]) == ("unknown", "open")
    retry = await client.post(f"/v1/invoices/{invoice['id']}/pay")
    assert retry.status_code == 409
    assert await sandbox_charges(sql) == 1

    await advance(client, clock["id"], "2025-03-01T00:10:00Z")
    [payment] = await payments_of(client, invoice["id"])
    assert payment["status"] == "succeeded"
    assert (await only_invoice(client, sub["id"]))["status"] == "paid"
    assert await sandbox_charges(sql) == 1


async def test_refund_full_and_partial(client: httpx.AsyncClient, sql: Sql) -> None:
    clock, account = await customer_on_clock(
        client, "2025-03-01T00:00:00Z", amount=3000, payment_method="pm_card_visa"
    )
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-03-01T00:01:00Z")
    invoice = await only_invoice(client, sub["id"])
    [payment] = await payments_of(client, invoice["id"])

    partial = await client.post(
        f"/v1/payments/{payment['id']}/refund", json={"amount": 1000, "reason": "Goodwill"}
    )
    assert partial.status_code == 201, partial.text
    assert {k: partial.json()[k] for k in ("amount", "status", "reason")} == {
        "amount": 1000,
        "status": "succeeded",
        "reason": "Goodwill",
    }
    too_much = await client.post(f"/v1/payments/{payment['id']}/refund", json={"amount": 2001})
    assert (too_much.status_code, too_much.json()["param"]) == (422, "amount")
    rest = await client.post(f"/v1/payments/{payment['id']}/refund")
    assert rest.json()["amount"] == 2000
    assert (await client.get(f"/v1/payments/{payment['id']}")).json()["amount_refunded"] == 3000
    assert (await only_invoice(client, sub["id"]))["status"] == "paid"
    notes = await sql("SELECT amount FROM credit_notes ORDER BY created_at, amount")
    assert sorted(n.amount for n in notes) == [1000, 2000]
    refunded = await sql("SELECT data FROM events WHERE type = 'payment.refunded' ORDER BY seq")
    assert [e.data["amount_refunded"] for e in refunded] == [1000, 3000]


async def test_payments_list_filters(client: httpx.AsyncClient) -> None:
    clock, account, _ = await declined_subscription(client)
    await advance(client, clock["id"], "2025-03-04T01:00:00Z")
    found = await client.get(
        "/v1/payments", params={"account_id": account["id"], "status": "failed"}
    )
    assert [p["attempt_number"] for p in found.json()["data"]] == [2, 1]
    none = await client.get("/v1/payments", params={"status": "succeeded"})
    assert none.json()["data"] == []
    missing = await client.get("/v1/payments/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


async def _frozen(sql: Sql, clock_id: str) -> Any:
    [row] = await sql("SELECT frozen_time FROM test_clocks WHERE id = :id", id=clock_id)
    return row.frozen_time
