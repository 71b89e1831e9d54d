"""Account credit over HTTP: grants, automatic application oldest first, currencies, expiry.

Every account lives on a test clock; amounts are computed by hand in the comments.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billing.auth.permissions import Role
from tests.conftest import http_client, new_api_key
from tests.factories.billing import (
    advance,
    credits_of,
    customer_on_clock,
    grant_credit,
    invoice_action,
    invoices_of,
    only_invoice,
    subscribe,
)


async def customer(
    client: httpx.AsyncClient, at: str = "2025-01-10T12:00:00Z", amount: int = 3000, **fields: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A test clock at `at`, the $30.00 monthly plan "pro", and an account on the clock."""
    return await customer_on_clock(client, at, amount=amount, **fields)


def running_balances(ledger: list[dict[str, Any]], currency: str = "USD") -> list[int]:
    total = 0
    running = []
    for entry in ledger:
        if entry["currency"] == currency:
            total += entry["amount"]
            running.append(total)
    return running


# --------------------------------------------------------------------------- the seed tests


async def test_apply_credit_to_invoice(client: httpx.AsyncClient) -> None:
    _, account = await customer(client)
    grant = await grant_credit(client, account["id"], 1000, reason="Goodwill")
    assert (grant["kind"], grant["amount"], grant["currency"]) == ("grant", 1000, "USD")
    assert grant["created_at"] == "2025-01-10T12:00:00Z"
    sub = await subscribe(client, account["id"])
    invoice = await only_invoice(client, sub["id"])
    # $30.00 - $10.00 of credit = $20.00 due.
    assert (
        invoice["subtotal"],
        invoice["total"],
        invoice["credits_applied"],
        invoice["amount_due"],
        invoice["amount_remaining"],
        invoice["status"],
    ) == (3000, 3000, 1000, 2000, 2000, "open")
    credits = await credits_of(client, account["id"])
    assert credits["balances"] == {"USD": 0}
    [application] = [e for e in credits["ledger"] if e["kind"] == "application"]
    assert (application["amount"], application["grant_id"], application["invoice_id"]) == (
        -1000,
        grant["id"],
        invoice["id"],
    )


async def test_credit_reduces_invoice_balance(client: httpx.AsyncClient) -> None:
    _, account = await customer(client)
    await grant_credit(client, account["id"], 1200)
    invoice = await only_invoice(client, (await subscribe(client, account["id"], quantity=2))["id"])
    # Two seats at $30.00 = 6000; 1200 of credit leaves 4800 to pay.
    assert (invoice["total"], invoice["credits_applied"], invoice["amount_due"]) == (
        6000,
        1200,
        4800,
    )
    assert invoice["amount_remaining"] == 4800
    # An off-line payment settles what is left after credit, not the total.
    paid = (await invoice_action(client, invoice["id"], "mark-paid")).json()
    assert (paid["status"], paid["amount_paid"], paid["amount_remaining"]) == ("paid", 4800, 0)


async def test_credit_larger_than_the_invoice_pays_it_and_the_rest_stays(
    client: httpx.AsyncClient,
) -> None:
    _, account = await customer(client)
    await grant_credit(client, account["id"], 5000)
    invoice = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    # 3000 of the 5000 is used: nothing due, so the invoice is paid at once; 2000 remains.
    assert (invoice["credits_applied"], invoice["amount_due"], invoice["status"]) == (
        3000,
        0,
        "paid",
    )
    assert (await credits_of(client, account["id"]))["balances"] == {"USD": 2000}


async def test_create_credit_auto_applies_to_next_invoice(client: httpx.AsyncClient) -> None:
    clock, account = await customer(client)
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-01-20T09:00:00Z")
    await grant_credit(client, account["id"], 1000)
    await advance(client, clock["id"], "2025-02-10T00:00:00Z")
    first, renewal = await invoices_of(client, sub["id"])
    # The invoice that was already open is not touched; the renewal on Feb 10 takes the credit:
    # 3000 - 1000 = 2000.
    assert (first["credits_applied"], first["amount_due"]) == (0, 3000)
    assert (renewal["number"], renewal["credits_applied"], renewal["amount_due"]) == (
        "INV-000002",
        1000,
        2000,
    )
    assert (await credits_of(client, account["id"]))["balances"] == {"USD": 0}


# --------------------------------------------------------------------------- drawing order


async def test_credit_partially_applied_across_two_invoices(client: httpx.AsyncClient) -> None:
    clock, account = await customer(client)
    grant = await grant_credit(client, account["id"], 4000)
    await advance(client, clock["id"], "2025-01-10T13:00:00Z")
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-02-10T00:00:00Z")
    first, second = await invoices_of(client, sub["id"])
    # 4000 of credit: the first 3000 invoice takes 3000 (paid, nothing due), the renewal the
    # last 1000 (3000 - 1000 = 2000 due).
    assert (first["credits_applied"], first["amount_due"], first["status"]) == (3000, 0, "paid")
    assert (second["credits_applied"], second["amount_due"], second["status"]) == (
        1000,
        2000,
        "open",
    )
    credits = await credits_of(client, account["id"])
    assert credits["balances"] == {"USD": 0}
    assert [
        (e["kind"], e["amount"], e["grant_id"], e["invoice_id"]) for e in credits["ledger"]
    ] == [
        ("grant", 4000, None, None),
        ("application", -3000, grant["id"], first["id"]),
        ("application", -1000, grant["id"], second["id"]),
    ]


async def test_oldest_grant_is_used_first(client: httpx.AsyncClient) -> None:
    clock, account = await customer(client)
    old = await grant_credit(client, account["id"], 1000, reason="Older")
    await advance(client, clock["id"], "2025-01-11T12:00:00Z")
    new = await grant_credit(client, account["id"], 5000, reason="Newer")
    invoice = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    # 3000 due: all 1000 of the older grant, then 2000 of the newer one; 3000 of it remains.
    assert invoice["credits_applied"] == 3000
    credits = await credits_of(client, account["id"])
    applications = {
        e["grant_id"]: e["amount"] for e in credits["ledger"] if e["kind"] == "application"
    }
    assert applications == {old["id"]: -1000, new["id"]: -2000}
    assert all(
        e["invoice_id"] == invoice["id"] for e in credits["ledger"] if e["kind"] == "application"
    )
    assert credits["balances"] == {"USD": 3000}
    # The next invoice draws on what is left of the newer grant only.
    second = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    assert second["credits_applied"] == 3000
    later = [
        e
        for e in (await credits_of(client, account["id"]))["ledger"]
        if e["invoice_id"] == second["id"]
    ]
    assert [(e["grant_id"], e["amount"]) for e in later] == [(new["id"], -3000)]


async def test_credit_in_another_currency_is_never_applied(client: httpx.AsyncClient) -> None:
    _, account = await customer(client)
    euros = await grant_credit(client, account["id"], 1000, currency="EUR")
    assert euros["currency"] == "EUR"
    invoice = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    assert invoice["currency"] == "USD"
    assert (invoice["credits_applied"], invoice["amount_due"]) == (0, 3000)
    credits = await credits_of(client, account["id"])
    assert credits["balances"] == {"EUR": 1000}
    assert [e["kind"] for e in credits["ledger"]] == ["grant"]


async def test_balances_are_kept_per_currency(client: httpx.AsyncClient) -> None:
    _, account = await customer(client)
    await grant_credit(client, account["id"], 700)
    await grant_credit(client, account["id"], 1000, currency="EUR")
    await grant_credit(client, account["id"], 500, currency="EUR")
    credits = await credits_of(client, account["id"])
    # The currency defaults to the account's (USD); EUR grants add up separately.
    assert credits["balances"] == {"USD": 700, "EUR": 1500}
    assert credits["account_id"] == account["id"]


async def test_balance_is_the_sum_of_the_ledger_and_never_negative(
    client: httpx.AsyncClient,
) -> None:
    clock, account = await customer(client)
    await grant_credit(client, account["id"], 2500)
    await advance(client, clock["id"], "2025-01-10T13:00:00Z")
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-01-10T14:00:00Z")
    await grant_credit(client, account["id"], 4000)
    await advance(client, clock["id"], "2025-03-10T00:00:00Z")
    # Jan 10: the 3000 invoice takes all 2500 there is (500 due); the 4000 grant comes after.
    # Feb 10: 3000 of the 4000 (0 due). Mar 10: the last 1000 (3000 - 1000 = 2000 due).
    assert [
        (i["credits_applied"], i["amount_due"]) for i in await invoices_of(client, sub["id"])
    ] == [
        (2500, 500),
        (3000, 0),
        (1000, 2000),
    ]
    credits = await credits_of(client, account["id"])
    assert credits["balances"] == {"USD": 0}
    assert sum(e["amount"] for e in credits["ledger"]) == 0
    assert min(running_balances(credits["ledger"])) >= 0


# --------------------------------------------------------------------------- expiry


async def test_credit_expires(client: httpx.AsyncClient) -> None:
    clock, account = await customer(client)
    grant = await grant_credit(client, account["id"], 1000, expires_at="2025-01-20T00:00:00Z")
    assert grant["expires_at"] == "2025-01-20T00:00:00Z"
    await advance(client, clock["id"], "2025-01-19T23:59:59Z")
    assert (await credits_of(client, account["id"]))["balances"] == {"USD": 1000}
    await advance(client, clock["id"], "2025-01-21T00:00:00Z")
    credits = await credits_of(client, account["id"])
    assert credits["balances"] == {"USD": 0}
    assert [
        (e["kind"], e["amount"], e["grant_id"], e["created_at"]) for e in credits["ledger"]
    ] == [
        ("grant", 1000, None, "2025-01-10T12:00:00Z"),
        ("expiry", -1000, grant["id"], "2025-01-20T00:00:00Z"),
    ]
    # A later invoice gets nothing from the expired grant.
    invoice = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    assert (invoice["credits_applied"], invoice["amount_due"]) == (0, 3000)
    # Advancing again does not expire it a second time.
    await advance(client, clock["id"], "2025-02-01T00:00:00Z")
    assert [e["kind"] for e in (await credits_of(client, account["id"]))["ledger"]] == [
        "grant",
        "expiry",
    ]


async def test_only_the_unused_part_of_a_grant_expires(client: httpx.AsyncClient) -> None:
    clock, account = await customer(client)
    grant = await grant_credit(client, account["id"], 5000, expires_at="2025-02-01T00:00:00Z")
    await advance(client, clock["id"], "2025-01-10T13:00:00Z")
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-02-15T00:00:00Z")
    first, renewal = await invoices_of(client, sub["id"])
    # Jan 10: 3000 of the 5000 is applied. Feb 1: the other 2000 expires. Feb 10: the renewal
    # gets no credit.
    assert (first["credits_applied"], renewal["credits_applied"], renewal["amount_due"]) == (
        3000,
        0,
        3000,
    )
    credits = await credits_of(client, account["id"])
    assert credits["balances"] == {"USD": 0}
    assert [(e["kind"], e["amount"], e["created_at"]) for e in credits["ledger"]] == [
        ("grant", 5000, "2025-01-10T12:00:00Z"),
        ("application", -3000, "2025-01-10T13:00:00Z"),
        ("expiry", -2000, "2025-02-01T00:00:00Z"),
    ]
    assert credits["ledger"][2]["grant_id"] == grant["id"]


async def test_an_expiring_grant_is_drawn_before_it_expires_and_skipped_after(
    client: httpx.AsyncClient,
) -> None:
    clock, account = await customer(client)
    # The older grant expires before the renewal on Feb 10; the newer one never expires.
    expiring = await grant_credit(client, account["id"], 4000, expires_at="2025-02-05T00:00:00Z")
    await advance(client, clock["id"], "2025-01-10T13:00:00Z")
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-01-10T14:00:00Z")
    lasting = await grant_credit(client, account["id"], 2000)
    await advance(client, clock["id"], "2025-02-10T00:00:00Z")
    first, renewal = await invoices_of(client, sub["id"])
    # Jan 10: 3000 from the older grant (1000 of it left). Feb 5: that 1000 expires.
    # Feb 10: 2000 from the lasting grant, 1000 due.
    assert (first["credits_applied"], renewal["credits_applied"], renewal["amount_due"]) == (
        3000,
        2000,
        1000,
    )
    credits = await credits_of(client, account["id"])
    assert [(e["kind"], e["amount"], e["grant_id"]) for e in credits["ledger"]] == [
        ("grant", 4000, None),
        ("application", -3000, expiring["id"]),
        ("grant", 2000, None),
        ("expiry", -1000, expiring["id"]),
        ("application", -2000, lasting["id"]),
    ]
    assert credits["balances"] == {"USD": 0}


async def test_credit_returned_by_a_void_after_its_grant_expired(
    client: httpx.AsyncClient,
) -> None:
    clock, account = await customer(client)
    await grant_credit(client, account["id"], 1000, expires_at="2025-01-20T00:00:00Z")
    invoice = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    assert invoice["credits_applied"] == 1000
    await advance(client, clock["id"], "2025-01-25T00:00:00Z")
    # The grant was fully used before it expired: nothing to expire.
    assert (await credits_of(client, account["id"]))["balances"] == {"USD": 0}
    assert (await invoice_action(client, invoice["id"], "void")).status_code == 200
    # The 1000 goes back to a grant that expired on Jan 20: it cannot be spent any more, so the
    # balance must not show it, and the next invoice must not get it.
    assert (await credits_of(client, account["id"]))["balances"] == {"USD": 0}
    later = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    assert later["credits_applied"] == 0
    await advance(client, clock["id"], "2025-01-26T00:00:00Z")
    credits = await credits_of(client, account["id"])
    assert credits["balances"] == {"USD": 0}
    # Read in order, the ledger never shows a negative balance.
    assert min(running_balances(credits["ledger"])) >= 0


# --------------------------------------------------------------------------- validation, 404s


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -500}, "amount"),
        ({"amount": "500"}, "amount"),
        ({"amount": 12.5}, "amount"),
        ({"amount": 500, "currency": "US"}, "currency"),
        ({"amount": 500, "currency": "XYZ"}, "currency"),
        ({"amount": 500, "reason": "x" * 501}, "reason"),
        ({"amount": 500, "expires_at": "2025-01-10T11:59:59Z"}, "expires_at"),
        ({"amount": 500, "expires_at": "2025-01-10T12:00:00Z"}, "expires_at"),
        ({"amount": 500, "colour": "red"}, "colour"),
    ],
)
async def test_grant_validation(
    client: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    _, account = await customer(client)
    response = await client.post("/v1/credits", json={"account_id": account["id"]} | fields)
    assert response.status_code == 422, response.text
    assert (response.json()["code"], response.json()["param"]) == ("validation_error", param)
    assert (await credits_of(client, account["id"]))["ledger"] == []


async def test_grant_to_unknown_or_deleted_account_is_404(client: httpx.AsyncClient) -> None:
    missing = await client.post("/v1/credits", json={"account_id": str(uuid.uuid4()), "amount": 1})
    assert (missing.status_code, missing.json()["param"]) == (404, "account_id")
    _, account = await customer(client)
    assert (await client.delete(f"/v1/accounts/{account['id']}")).status_code == 200
    deleted = await client.post("/v1/credits", json={"account_id": account["id"], "amount": 1})
    assert (deleted.status_code, deleted.json()["code"]) == (404, "not_found")


async def test_credits_of_unknown_account_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/accounts/{uuid.uuid4()}/credits")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


async def test_new_account_has_no_credit(client: httpx.AsyncClient) -> None:
    _, account = await customer(client)
    credits = await credits_of(client, account["id"])
    assert (credits["balances"], credits["ledger"]) == ({}, [])


# --------------------------------------------------------------------------- permissions


async def test_finance_viewer_reads_credits_but_cannot_grant(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    _, account = await customer(client)
    await grant_credit(client, account["id"], 1000)
    async with http_client(app, await new_api_key(app, Role.FINANCE_VIEWER)) as viewer:
        read = await viewer.get(f"/v1/accounts/{account['id']}/credits")
        assert (read.status_code, read.json()["balances"]) == (200, {"USD": 1000})
        denied = await viewer.post("/v1/credits", json={"account_id": account["id"], "amount": 1})
        assert (denied.status_code, denied.json()["code"]) == (403, "forbidden")
        assert denied.json()["required_permission"] == "credits:write"
    assert (await credits_of(client, account["id"]))["balances"] == {"USD": 1000}


async def test_support_rep_can_grant_credit(client: httpx.AsyncClient, app: FastAPI) -> None:
    _, account = await customer(client)
    async with http_client(app, await new_api_key(app, Role.SUPPORT_REP)) as support:
        await grant_credit(support, account["id"], 1500, reason="Outage on Jan 9")
    assert (await credits_of(client, account["id"]))["balances"] == {"USD": 1500}


# --------------------------------------------------------------------------- idempotency


async def test_grant_replayed_with_the_same_idempotency_key_creates_one_grant(
    client: httpx.AsyncClient,
) -> None:
    _, account = await customer(client)
    body = {"account_id": account["id"], "amount": 2500, "reason": "Refund of order 42"}
    headers = {"Idempotency-Key": "grant-order-42"}
    first = await client.post("/v1/credits", json=body, headers=headers)
    second = await client.post("/v1/credits", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    credits = await credits_of(client, account["id"])
    assert credits["balances"] == {"USD": 2500}
    assert [e["id"] for e in credits["ledger"]] == [first.json()["id"]]
    # The same key with another body is refused, not applied.
    other = await client.post("/v1/credits", json=body | {"amount": 1}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert (await credits_of(client, account["id"]))["balances"] == {"USD": 2500}


async def test_ledger_lists_entries_in_the_order_they_happened(client: httpx.AsyncClient) -> None:
    # Four rounds at one frozen instant: grant 1000, then subscribe (the invoice draws that
    # 1000). Same timestamps, so only the order of writing tells a grant from what drew on it.
    _, account = await customer(client)
    grants = []
    invoices = []
    for _ in range(4):
        grants.append(await grant_credit(client, account["id"], 1000))
        invoices.append(await only_invoice(client, (await subscribe(client, account["id"]))["id"]))
    ledger = (await credits_of(client, account["id"]))["ledger"]
    expected: list[tuple[str, object, object]] = []
    for grant, invoice in zip(grants, invoices, strict=True):
        expected += [("grant", grant["id"], None), ("application", grant["id"], invoice["id"])]
    assert [
        (e["kind"], e["id"] if e["kind"] == "grant" else e["grant_id"], e["invoice_id"])
        for e in ledger
    ] == expected
    assert min(running_balances(ledger)) >= 0
