"""Invoices over HTTP: void, mark paid or uncollectible, list filters and pages, gap-free numbers.

Every account lives on a test clock, so timestamps are exact; amounts are computed by hand.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billing.auth.permissions import Role
from billing.invoicing.rules import DraftInvoice, DraftLine
from billing.invoicing.writer import finalize
from billing.runtime import Runtime
from tests.conftest import AppFactory, assert_problem, http_client, new_api_key
from tests.factories.billing import (
    account_on_clock,
    advance,
    create_test_clock,
    credits_of,
    customer_on_clock,
    grant_credit,
    invoice_action,
    invoices_of,
    only_invoice,
    simple_plan,
    subscribe,
)


async def open_invoice(client: httpx.AsyncClient, amount: int = 3000) -> dict[str, Any]:
    """A $30.00 monthly subscription created on 2025-01-10 12:00 UTC: its first, open invoice."""
    _, account = await customer_on_clock(client, "2025-01-10T12:00:00Z", amount=amount)
    sub = await subscribe(client, account["id"])
    invoice = await only_invoice(client, sub["id"])
    assert invoice["status"] == "open"
    return invoice


# --------------------------------------------------------------------------- void


async def test_void_invoice(client: httpx.AsyncClient) -> None:
    invoice = await open_invoice(client)
    response = await invoice_action(client, invoice["id"], "void")
    assert response.status_code == 200, response.text
    voided = response.json()
    assert (voided["status"], voided["voided_at"]) == ("void", "2025-01-10T12:00:00Z")
    # A voided invoice keeps its number and amounts: it stays on record, it is just not owed.
    assert (voided["number"], voided["subtotal"], voided["total"], voided["amount_due"]) == (
        "INV-000001",
        3000,
        3000,
        3000,
    )
    assert (voided["amount_paid"], voided["paid_at"]) == (0, None)
    stored = (await client.get(f"/v1/invoices/{invoice['id']}")).json()
    assert stored == voided


async def test_void_twice_is_rejected(client: httpx.AsyncClient) -> None:
    invoice = await open_invoice(client)
    assert (await invoice_action(client, invoice["id"], "void")).status_code == 200
    again = assert_problem(
        await invoice_action(client, invoice["id"], "void"), 409, "invalid_state"
    )
    assert again["current_status"] == "void"


async def test_void_of_a_paid_invoice_is_rejected(client: httpx.AsyncClient) -> None:
    invoice = await open_invoice(client)
    paid = await invoice_action(client, invoice["id"], "mark-paid")
    assert paid.status_code == 200, paid.text
    body = assert_problem(await invoice_action(client, invoice["id"], "void"), 409, "invalid_state")
    assert body["current_status"] == "paid"
    assert (await client.get(f"/v1/invoices/{invoice['id']}")).json()["status"] == "paid"


async def test_void_of_a_zero_invoice_paid_at_finalization_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    # A trial's $0 invoice is paid the moment it is finalized: there is nothing to void.
    _, account = await customer_on_clock(
        client, "2025-01-10T12:00:00Z", amount=3000, plan={"trial_days": 7}
    )
    sub = await subscribe(client, account["id"])
    invoice = await only_invoice(client, sub["id"])
    assert (invoice["status"], invoice["amount_due"]) == ("paid", 0)
    body = assert_problem(await invoice_action(client, invoice["id"], "void"), 409, "invalid_state")
    assert body["current_status"] == "paid"


# --------------------------------------------------------------------------- mark paid


async def test_mark_paid_records_an_offline_payment(client: httpx.AsyncClient) -> None:
    clock, account = await customer_on_clock(client, "2025-01-10T12:00:00Z", amount=3000)
    sub = await subscribe(client, account["id"], quantity=2)
    invoice = await only_invoice(client, sub["id"])
    await advance(client, clock["id"], "2025-01-12T09:30:00Z")
    response = await invoice_action(client, invoice["id"], "mark-paid")
    assert response.status_code == 200, response.text
    paid = response.json()
    # Two seats at $30.00: 6000 due, all of it paid off-line, nothing left.
    assert (paid["status"], paid["amount_due"], paid["amount_paid"], paid["amount_remaining"]) == (
        "paid",
        6000,
        6000,
        0,
    )
    assert paid["paid_at"] == "2025-01-12T09:30:00Z"
    again = assert_problem(
        await invoice_action(client, invoice["id"], "mark-paid"), 409, "invalid_state"
    )
    assert again["current_status"] == "paid"


async def test_mark_paid_of_a_void_invoice_is_rejected(client: httpx.AsyncClient) -> None:
    invoice = await open_invoice(client)
    assert (await invoice_action(client, invoice["id"], "void")).status_code == 200
    body = assert_problem(
        await invoice_action(client, invoice["id"], "mark-paid"), 409, "invalid_state"
    )
    assert body["current_status"] == "void"


# --------------------------------------------------------------------------- uncollectible


async def test_mark_uncollectible(client: httpx.AsyncClient) -> None:
    invoice = await open_invoice(client)
    response = await invoice_action(client, invoice["id"], "mark-uncollectible")
    assert response.status_code == 200, response.text
    marked = response.json()
    assert (marked["status"], marked["marked_uncollectible_at"]) == (
        "uncollectible",
        "2025-01-10T12:00:00Z",
    )
    # Still owed in full: giving up on collection is not a payment.
    assert (marked["amount_due"], marked["amount_paid"], marked["amount_remaining"]) == (
        3000,
        0,
        3000,
    )
    again = assert_problem(
        await invoice_action(client, invoice["id"], "mark-uncollectible"), 409, "invalid_state"
    )
    assert again["current_status"] == "uncollectible"


async def test_mark_uncollectible_of_paid_and_void_invoices_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    _, account = await customer_on_clock(client, "2025-01-10T12:00:00Z", amount=3000)
    paid = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    void = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    assert (await invoice_action(client, paid["id"], "mark-paid")).status_code == 200
    assert (await invoice_action(client, void["id"], "void")).status_code == 200
    for invoice, status in ((paid, "paid"), (void, "void")):
        body = assert_problem(
            await invoice_action(client, invoice["id"], "mark-uncollectible"), 409, "invalid_state"
        )
        assert body["current_status"] == status


# --------------------------------------------------------------------------- 404s


@pytest.mark.parametrize("action", ["void", "mark-paid", "mark-uncollectible"])
async def test_actions_on_an_unknown_invoice_are_404(
    client: httpx.AsyncClient, action: str
) -> None:
    missing = uuid.uuid4()
    body = assert_problem(await invoice_action(client, str(missing), action), 404, "not_found")
    assert str(missing) in body["detail"]


async def test_get_unknown_invoice_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/v1/invoices/{uuid.uuid4()}"), 404, "not_found")
    malformed = assert_problem(await client.get("/v1/invoices/INV-000001"), 422, "validation_error")
    assert malformed["param"] == "invoice_id"


# --------------------------------------------------------------------------- get and list


async def test_get_invoice_with_its_lines(client: httpx.AsyncClient) -> None:
    _, account = await customer_on_clock(
        client, "2025-01-10T12:00:00Z", amount=1250, plan={"name": "Team"}
    )
    sub = await subscribe(client, account["id"], quantity=4)
    listed = await only_invoice(client, sub["id"])
    got = (await client.get(f"/v1/invoices/{listed['id']}")).json()
    assert got == listed
    assert (got["account_id"], got["subscription_id"], got["currency"]) == (
        account["id"],
        sub["id"],
        "USD",
    )
    [line] = got["lines"]
    # Four seats at $12.50, a month in advance: 4 x 1250 = 5000.
    assert (line["kind"], line["quantity"], line["unit_amount"], line["amount"]) == (
        "subscription",
        "4",
        1250,
        5000,
    )
    assert line["description"] == "Team × 4 (2025-01-10 to 2025-02-09)"  # noqa: RUF001
    assert (got["subtotal"], got["total"], got["amount_due"]) == (5000, 5000, 5000)


async def billing_history(client: httpx.AsyncClient) -> dict[str, Any]:
    """Two accounts on one clock and three invoices:

    INV-000001  account A, sub A, 2025-01-10T12:00Z, then marked paid
    INV-000002  account B, sub B, 2025-02-01T00:00Z, open
    INV-000003  account A, sub A's renewal, 2025-02-10T00:00Z, open
    """
    clock, a = await customer_on_clock(
        client, "2025-01-10T12:00:00Z", amount=3000, email="a@example.com"
    )
    b = await account_on_clock(client, clock["id"], email="b@example.com")
    sub_a = await subscribe(client, a["id"])
    await advance(client, clock["id"], "2025-02-01T00:00:00Z")
    sub_b = await subscribe(client, b["id"])
    await advance(client, clock["id"], "2025-02-15T00:00:00Z")
    first, third = await invoices_of(client, sub_a["id"])
    [second] = await invoices_of(client, sub_b["id"])
    assert (await invoice_action(client, first["id"], "mark-paid")).status_code == 200
    assert [first["number"], second["number"], third["number"]] == [
        "INV-000001",
        "INV-000002",
        "INV-000003",
    ]
    assert [first["created_at"], second["created_at"], third["created_at"]] == [
        "2025-01-10T12:00:00Z",
        "2025-02-01T00:00:00Z",
        "2025-02-10T00:00:00Z",
    ]
    return {"a": a, "b": b, "sub_a": sub_a, "sub_b": sub_b, "ids": [None, first, second, third]}


async def numbers(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/v1/invoices", params=params)
    assert response.status_code == 200, response.text
    return [i["number"] for i in response.json()["data"]]


async def test_list_invoices_filters(client: httpx.AsyncClient) -> None:
    h = await billing_history(client)
    # Newest first.
    assert await numbers(client) == ["INV-000003", "INV-000002", "INV-000001"]
    assert await numbers(client, account_id=h["a"]["id"]) == ["INV-000003", "INV-000001"]
    assert await numbers(client, account_id=h["b"]["id"]) == ["INV-000002"]
    assert await numbers(client, subscription_id=h["sub_b"]["id"]) == ["INV-000002"]
    assert await numbers(client, status="paid") == ["INV-000001"]
    assert await numbers(client, status="open") == ["INV-000003", "INV-000002"]
    assert await numbers(client, status="void") == []
    assert await numbers(client, account_id=h["a"]["id"], status="open") == ["INV-000003"]
    assert await numbers(client, account_id=str(uuid.uuid4())) == []


async def test_list_invoices_by_creation_date(client: httpx.AsyncClient) -> None:
    await billing_history(client)
    # created_gte is inclusive, created_lt exclusive: INV-000002 was created at exactly Feb 1.
    assert await numbers(client, created_gte="2025-02-01T00:00:00Z") == [
        "INV-000003",
        "INV-000002",
    ]
    assert await numbers(client, created_lt="2025-02-01T00:00:00Z") == ["INV-000001"]
    assert await numbers(
        client, created_gte="2025-02-01T00:00:00Z", created_lt="2025-02-10T00:00:00Z"
    ) == ["INV-000002"]
    # The same instant written with an offset: 01:00 at UTC+1 is 00:00 UTC.
    assert await numbers(client, created_gte="2025-02-01T01:00:00+01:00") == [
        "INV-000003",
        "INV-000002",
    ]
    assert await numbers(client, created_gte="2025-03-01T00:00:00Z") == []


async def test_list_invoices_rejects_bad_filters(client: httpx.AsyncClient) -> None:
    bad_status = assert_problem(
        await client.get("/v1/invoices", params={"status": "overdue"}), 422, "validation_error"
    )
    assert bad_status["param"] == "status"
    bad_date = assert_problem(
        await client.get("/v1/invoices", params={"created_gte": "last week"}),
        422,
        "validation_error",
    )
    assert bad_date["param"] == "created_gte"


async def test_list_invoices_cursor_pagination(client: httpx.AsyncClient) -> None:
    h = await billing_history(client)
    first = (await client.get("/v1/invoices", params={"limit": 2})).json()
    assert [i["number"] for i in first["data"]] == ["INV-000003", "INV-000002"]
    assert first["has_more"] is True
    after = first["data"][-1]["id"]
    second = (await client.get("/v1/invoices", params={"limit": 2, "starting_after": after})).json()
    assert [i["number"] for i in second["data"]] == ["INV-000001"]
    assert second["has_more"] is False
    # The cursor combines with filters.
    page = (
        await client.get(
            "/v1/invoices",
            params={"limit": 1, "account_id": h["a"]["id"]},
        )
    ).json()
    assert ([i["number"] for i in page["data"]], page["has_more"]) == (["INV-000003"], True)
    rest = (
        await client.get(
            "/v1/invoices",
            params={
                "limit": 1,
                "account_id": h["a"]["id"],
                "starting_after": page["data"][0]["id"],
            },
        )
    ).json()
    assert ([i["number"] for i in rest["data"]], rest["has_more"]) == (["INV-000001"], False)
    unknown = assert_problem(
        await client.get("/v1/invoices", params={"starting_after": str(uuid.uuid4())}),
        422,
        "validation_error",
    )
    assert unknown["param"] == "starting_after"


# --------------------------------------------------------------------------- numbering


def number_values(invoices: list[dict[str, Any]]) -> list[int]:
    return sorted(int(i["number"].removeprefix("INV-")) for i in invoices)


async def all_invoices(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    page = (await client.get("/v1/invoices", params={"limit": 100})).json()
    assert page["has_more"] is False
    found: list[dict[str, Any]] = page["data"]
    return found


async def test_invoice_numbers_are_gap_free_across_concurrent_subscriptions(
    client: httpx.AsyncClient,
) -> None:
    clock = await create_test_clock(client, "2025-01-10T12:00:00Z")
    await simple_plan(client, amount=3000)
    accounts = [
        await account_on_clock(client, clock["id"], email=f"c{n}@example.com") for n in range(10)
    ]
    subs = await asyncio.gather(*(subscribe(client, a["id"]) for a in accounts))
    assert len({s["id"] for s in subs}) == 10
    invoices = await all_invoices(client)
    assert len(invoices) == 10
    # Ten finalizations racing for the counter: 1..10, each exactly once.
    assert number_values(invoices) == list(range(1, 11))
    # And the renewals of all ten, finalized in one batch by the clock, continue at 11..20.
    await advance(client, clock["id"], "2025-02-10T00:00:00Z")
    assert number_values(await all_invoices(client)) == list(range(1, 21))


async def test_invoice_numbers_stay_contiguous_after_a_rolled_back_finalization(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, account = await customer_on_clock(client, "2025-01-10T12:00:00Z", amount=3000)
    first = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    assert first["number"] == "INV-000001"

    draft = DraftInvoice(
        account_id=uuid.UUID(account["id"]),
        currency="USD",
        billing_reason="manual",
        created_at=datetime(2025, 1, 10, 12, 0, tzinfo=UTC),
        lines=(DraftLine(kind="one_off", description="Setup fee", amount=500),),
    )
    async with runtime.sessions() as session:
        [doomed] = await finalize(session, [draft], number_prefix="INV-")
        # The number was taken inside the transaction ...
        assert doomed.number == "INV-000002"
        await session.rollback()
    # ... and given back with it: nothing of the doomed invoice is left, and the next invoice
    # gets INV-000002, so the sequence has no hole.
    second = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    assert second["number"] == "INV-000002"
    assert number_values(await all_invoices(client)) == [1, 2]
    assert all(i["id"] != str(doomed.id) for i in await all_invoices(client))


async def test_invoice_number_prefix_is_configurable(make_app: AppFactory) -> None:
    app: FastAPI = make_app(invoice_number_prefix="ACME-")
    async with http_client(app, await new_api_key(app, Role.BILLING_ADMIN)) as c:
        _, account = await customer_on_clock(c, "2025-01-10T12:00:00Z", amount=3000)
        invoice = await only_invoice(c, (await subscribe(c, account["id"]))["id"])
    assert invoice["number"] == "ACME-000001"


# --------------------------------------------------------------------------- credit on void


async def test_void_invoice_creates_credit(client: httpx.AsyncClient) -> None:
    clock, account = await customer_on_clock(client, "2025-01-10T12:00:00Z", amount=3000)
    grant = await grant_credit(client, account["id"], 1000, reason="Goodwill")
    invoice = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    # $30.00 less the $10.00 credit: 2000 due; the balance is spent.
    assert (invoice["credits_applied"], invoice["amount_due"]) == (1000, 2000)
    assert (await credits_of(client, account["id"]))["balances"] == {"USD": 0}

    await advance(client, clock["id"], "2025-01-11T08:00:00Z")
    assert (await invoice_action(client, invoice["id"], "void")).status_code == 200
    after = await credits_of(client, account["id"])
    # The $10.00 goes back to the balance, as a return on the same grant.
    assert after["balances"] == {"USD": 1000}
    returned = [e for e in after["ledger"] if e["kind"] == "void_return"]
    assert [(e["amount"], e["grant_id"], e["invoice_id"], e["created_at"]) for e in returned] == [
        (1000, grant["id"], invoice["id"], "2025-01-11T08:00:00Z")
    ]
    # The voided invoice itself keeps what it recorded.
    voided = (await client.get(f"/v1/invoices/{invoice['id']}")).json()
    assert (voided["status"], voided["credits_applied"]) == ("void", 1000)
    # The returned credit is spendable again: the next invoice takes it.
    again = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    assert (again["credits_applied"], again["amount_due"]) == (1000, 2000)
    assert (await credits_of(client, account["id"]))["balances"] == {"USD": 0}


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("role", [Role.FINANCE_VIEWER, Role.SUPPORT_REP])
async def test_read_only_roles_can_read_invoices_but_not_change_them(
    client: httpx.AsyncClient, app: FastAPI, role: Role
) -> None:
    invoice = await open_invoice(client)
    async with http_client(app, await new_api_key(app, role)) as limited:
        assert (await limited.get("/v1/invoices")).status_code == 200
        got = await limited.get(f"/v1/invoices/{invoice['id']}")
        assert (got.status_code, got.json()["number"]) == (200, "INV-000001")
        for action in ("void", "mark-paid", "mark-uncollectible"):
            body = assert_problem(
                await invoice_action(limited, invoice["id"], action), 403, "forbidden"
            )
            assert body["required_permission"] == "invoices:write"
    assert (await client.get(f"/v1/invoices/{invoice['id']}")).json()["status"] == "open"


async def test_billing_admin_can_void(client: httpx.AsyncClient, app: FastAPI) -> None:
    invoice = await open_invoice(client)
    async with http_client(app, await new_api_key(app, Role.BILLING_ADMIN)) as admin:
        assert (await invoice_action(admin, invoice["id"], "void")).status_code == 200


# --------------------------------------------------------------------------- idempotency


@pytest.mark.parametrize(
    ("action", "status"),
    [("void", "void"), ("mark-paid", "paid"), ("mark-uncollectible", "uncollectible")],
)
async def test_invoice_actions_replay_with_the_same_idempotency_key(
    client: httpx.AsyncClient, action: str, status: str
) -> None:
    invoice = await open_invoice(client)
    headers = {"Idempotency-Key": f"{action}-{invoice['id']}"}
    first = await invoice_action(client, invoice["id"], action, headers=headers)
    assert (first.status_code, first.json()["status"]) == (200, status)
    # Without the key a second call is a 409; with it, the first answer is replayed.
    replay = await invoice_action(client, invoice["id"], action, headers=headers)
    assert replay.status_code == 200, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()


async def test_void_replay_returns_credit_once(client: httpx.AsyncClient) -> None:
    _, account = await customer_on_clock(client, "2025-01-10T12:00:00Z", amount=3000)
    await grant_credit(client, account["id"], 1000)
    invoice = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    headers = {"Idempotency-Key": "void-once"}
    for _ in range(2):
        response = await invoice_action(client, invoice["id"], "void", headers=headers)
        assert response.status_code == 200, response.text
    ledger = (await credits_of(client, account["id"]))["ledger"]
    assert sorted(e["kind"] for e in ledger) == ["application", "grant", "void_return"]
    assert (await credits_of(client, account["id"]))["balances"] == {"USD": 1000}
