"""Multi-currency invoicing and tax over HTTP with test clocks. Amounts are computed by hand:
tax per line = amount x percentage / 100, rounded half up once."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from tests.conftest import AppFactory, Sql, http_client, new_api_key
from tests.factories.billing import (
    account_on_clock,
    advance,
    create_test_clock,
    invoices_of,
    simple_plan,
    subscribe,
)

NBSP = "\xa0"
VALID_DE_VAT = "DE136695976"
VALID_FR_VAT = "FR40303265045"


async def tax_rate(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/tax-rates", json=body)
    assert response.status_code == 201, response.text
    rate: dict[str, Any] = response.json()
    return rate


async def german_vat(client: httpx.AsyncClient, percentage: str = "19", **extra: Any) -> Any:
    return await tax_rate(
        client,
        country="DE",
        name="VAT",
        percentage=percentage,
        effective_from=extra.pop("effective_from", "2020-01-01"),
        **extra,
    )


async def german_customer(
    client: httpx.AsyncClient, plan: dict[str, Any] | None = None, **account: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(clock, account): a test clock at 2025-03-10 09:00 UTC, German VAT at 19 %, the 27,00 €
    monthly plan "pro" (with the extra fields in `plan`), and an account in Germany paying in
    EUR (with the extra fields in `account`)."""
    clock = await create_test_clock(client, "2025-03-10T09:00:00Z")
    await german_vat(client)
    await simple_plan(client, amount=2700, currency="EUR", **(plan or {}))
    customer = await account_on_clock(
        client, clock["id"], currency="EUR", address={"country": "DE"}, **account
    )
    return clock, customer


def tax_summary(invoice: dict[str, Any]) -> tuple[Any, ...]:
    return (
        invoice["subtotal"],
        invoice["tax"],
        invoice["total"],
        invoice["amount_due"],
        invoice["tax_status"],
        invoice["tax_note"],
    )


def per_rate(invoice: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (t["name"], t["country"], t["region"], t["percentage"], t["taxable_amount"], t["amount"])
        for t in invoice["taxes"]
    ]


async def test_create_eur_account(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/accounts",
        json={
            "email": "einkauf@example.de",
            "name": "Beispiel GmbH",
            "currency": "eur",
            "locale": "de-DE",
            "timezone": "Europe/Berlin",
            "address": {"country": "DE", "city": "Berlin"},
            "tax_ids": [{"type": "eu_vat", "value": "de 136 695 976"}],
        },
    )
    assert response.status_code == 201, response.text
    account = response.json()
    assert (account["currency"], account["locale"]) == ("EUR", "de_DE")
    # Stored compact, as tax authorities and Stripe write it.
    assert account["tax_ids"] == [{"type": "eu_vat", "value": VALID_DE_VAT}]


async def test_invalid_eu_vat_id_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/accounts",
        json={
            "email": "a@example.de",
            "tax_ids": [
                {"type": "eu_vat", "value": VALID_DE_VAT},
                {"type": "eu_vat", "value": "DE136695977"},  # wrong check digit
            ],
        },
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["param"] == "tax_ids.1.value"
    assert "check digit" in problem["detail"]
    # Other tax id types are stored as given.
    ok = await client.post(
        "/v1/accounts",
        json={"email": "b@example.com", "tax_ids": [{"type": "us_ein", "value": "12-3456789"}]},
    )
    assert ok.status_code == 201
    account = ok.json()
    patched = await client.patch(
        f"/v1/accounts/{account['id']}", json={"tax_ids": [{"type": "eu_vat", "value": "FR1"}]}
    )
    assert patched.status_code == 422
    assert patched.json()["param"] == "tax_ids.0.value"


async def test_invoice_in_eur(client: httpx.AsyncClient) -> None:
    _, account = await german_customer(client, plan={"name": "Pro"}, locale="de_DE")
    sub = await subscribe(client, account["id"], quantity=2)
    [invoice] = await invoices_of(client, sub["id"])
    assert invoice["currency"] == "EUR"
    # 2 x 27,00 = 54,00; VAT 19 %: 54,00 x 0.19 = 10,26; total 64,26.
    assert tax_summary(invoice) == (5400, 1026, 6426, 6426, "taxed", None)
    assert per_rate(invoice) == [("VAT", "DE", None, "19", 5400, 1026)]
    [line] = invoice["lines"]
    assert (line["amount"], line["tax_amount"], line["tax_percentage"]) == (5400, 1026, "19")
    assert line["amount_formatted"] == f"54,00{NBSP}€"
    assert invoice["subtotal_formatted"] == f"54,00{NBSP}€"
    assert invoice["tax_formatted"] == f"10,26{NBSP}€"
    assert invoice["total_formatted"] == f"64,26{NBSP}€"
    assert invoice["amount_due_formatted"] == f"64,26{NBSP}€"
    assert invoice["taxes"][0]["amount_formatted"] == f"10,26{NBSP}€"


async def test_payment_in_eur(client: httpx.AsyncClient) -> None:
    _, account = await german_customer(client, locale="de_DE")
    sub = await subscribe(client, account["id"])
    [invoice] = await invoices_of(client, sub["id"])
    # 27,00 + 19 % (5,13) = 32,13.
    assert invoice["amount_due"] == 3213
    attach = await client.post(
        f"/v1/accounts/{account['id']}/payment-methods", json={"token": "pm_card_visa"}
    )
    assert attach.status_code == 201
    paying = await client.post(f"/v1/invoices/{invoice['id']}/pay")
    assert paying.status_code == 201, paying.text
    payment = paying.json()
    assert (payment["status"], payment["currency"], payment["amount"]) == ("succeeded", "EUR", 3213)
    paid = (await client.get(f"/v1/invoices/{invoice['id']}")).json()
    assert (paid["status"], paid["currency"], paid["amount_paid"], paid["amount_remaining"]) == (
        "paid",
        "EUR",
        3213,
        0,
    )
    assert paid["amount_remaining_formatted"] == f"0,00{NBSP}€"
    assert paid["tax"] == 513  # stored, not recomputed


async def test_currency_formatting(client: httpx.AsyncClient) -> None:
    clock = await create_test_clock(client, "2025-03-10T09:00:00Z")
    await simple_plan(client, code="jp", amount=1234567, currency="JPY")
    await simple_plan(client, code="bh", amount=1500, currency="BHD")
    await simple_plan(client, code="us", amount=9331, currency="USD")
    japan = await account_on_clock(client, clock["id"], currency="JPY", locale="ja_JP")
    bahrain = await account_on_clock(client, clock["id"], currency="BHD", locale="en_US")
    us = await account_on_clock(client, clock["id"], currency="USD")
    cases = [
        (japan, "jp", "￥1,234,567"),  # zero decimals
        (bahrain, "bh", "BHD1.500"),  # three decimals: 1500 fils = 1.500 BD
        (us, "us", "$93.31"),
    ]
    for account, plan, expected in cases:
        sub = await subscribe(client, account["id"], plan_code=plan)
        [invoice] = await invoices_of(client, sub["id"])
        assert invoice["total_formatted"] == expected
        assert invoice["lines"][0]["amount_formatted"] == expected
    # Credit balances too, in the account's locale.
    await client.post("/v1/credits", json={"account_id": japan["id"], "amount": 500})
    credits = (await client.get(f"/v1/accounts/{japan['id']}/credits")).json()
    assert credits["balances_formatted"] == {"JPY": "￥500"}


async def test_credit_in_another_currency_never_pays_an_invoice(
    client: httpx.AsyncClient,
) -> None:
    clock = await create_test_clock(client, "2025-03-10T09:00:00Z")
    await simple_plan(client, amount=3000, currency="USD")
    account = await account_on_clock(client, clock["id"], currency="USD")
    granted = await client.post(
        "/v1/credits", json={"account_id": account["id"], "amount": 5000, "currency": "EUR"}
    )
    assert granted.status_code == 201
    sub = await subscribe(client, account["id"])
    [invoice] = await invoices_of(client, sub["id"])
    # The EUR credit is refused for the USD invoice: nothing applied, all 30.00 due.
    assert (invoice["currency"], invoice["credits_applied"], invoice["amount_due"]) == (
        "USD",
        0,
        3000,
    )
    credits = (await client.get(f"/v1/accounts/{account['id']}/credits")).json()
    assert credits["balances"] == {"EUR": 5000}


async def test_calculate_tax_for_jurisdiction(client: httpx.AsyncClient) -> None:
    clock = await create_test_clock(client, "2025-03-10T09:00:00Z")
    await tax_rate(
        client, country="US", region="CA", name="Sales tax", percentage="7.25",
        effective_from="2025-01-01",
    )  # fmt: skip
    await tax_rate(
        client, country="US", name="Federal test tax", percentage="1",
        effective_from="2025-01-01",
    )  # fmt: skip
    await simple_plan(client, amount=2900)
    california = await account_on_clock(
        client, clock["id"], address={"country": "US", "region": "CA"}
    )
    texas = await account_on_clock(client, clock["id"], address={"country": "US", "region": "TX"})
    nowhere = await account_on_clock(client, clock["id"])
    sub = await subscribe(client, california["id"], quantity=3)
    [invoice] = await invoices_of(client, sub["id"])
    # 3 x 29.00 = 87.00; CA 7.25 %: 8700 x 0.0725 = 630.75 -> 631 (half up); the region's
    # rate wins over the country's.
    assert tax_summary(invoice) == (8700, 631, 9331, 9331, "taxed", None)
    assert per_rate(invoice) == [("Sales tax", "US", "CA", "7.25", 8700, 631)]
    assert invoice["total_formatted"] == "$93.31"
    # Texas has no rate of its own: the country's 1 % (29.00 x 0.01 = 0.29).
    [tx_invoice] = await invoices_of(client, (await subscribe(client, texas["id"]))["id"])
    assert tax_summary(tx_invoice) == (2900, 29, 2929, 2929, "taxed", None)
    # No address: no tax.
    [none] = await invoices_of(client, (await subscribe(client, nowhere["id"]))["id"])
    assert tax_summary(none) == (2900, 0, 2900, 2900, "none", None)
    assert none["taxes"] == []


async def test_tax_exempt_account(client: httpx.AsyncClient) -> None:
    _, account = await german_customer(client, tax_exempt="exempt")
    sub = await subscribe(client, account["id"])
    [invoice] = await invoices_of(client, sub["id"])
    assert tax_summary(invoice) == (2700, 0, 2700, 2700, "exempt", "Tax exempt")
    assert invoice["taxes"] == []
    assert invoice["lines"][0]["tax_amount"] == 0


async def test_patch_tax_exempt_applies_from_the_next_invoice(client: httpx.AsyncClient) -> None:
    clock, account = await german_customer(client)
    sub = await subscribe(client, account["id"])
    patched = await client.patch(f"/v1/accounts/{account['id']}", json={"tax_exempt": "exempt"})
    assert patched.status_code == 200
    assert patched.json()["tax_exempt"] == "exempt"
    await advance(client, clock["id"], "2025-04-10T00:00:00Z")
    first, renewal = await invoices_of(client, sub["id"])
    # 27,00 x 0.19 = 5,13 on the invoice finalized before the change, which stays as it was.
    assert tax_summary(first) == (2700, 513, 3213, 3213, "taxed", None)
    assert tax_summary(renewal) == (2700, 0, 2700, 2700, "exempt", "Tax exempt")
    back = await client.patch(f"/v1/accounts/{account['id']}", json={"tax_exempt": "none"})
    assert back.json()["tax_exempt"] == "none"
    await advance(client, clock["id"], "2025-05-10T00:00:00Z")
    third = (await invoices_of(client, sub["id"]))[-1]
    assert tax_summary(third) == (2700, 513, 3213, 3213, "taxed", None)


async def test_eu_vat_reverse_charge(make_app: AppFactory) -> None:
    app: FastAPI = make_app(seller_country="DE")
    async with http_client(app, await new_api_key(app)) as client:
        clock = await create_test_clock(client, "2025-03-10T09:00:00Z")
        await german_vat(client)
        await tax_rate(
            client, country="FR", name="TVA", percentage="20", effective_from="2020-01-01"
        )
        await simple_plan(client, amount=10000, currency="EUR")

        async def invoice_for(**fields: Any) -> dict[str, Any]:
            account = await account_on_clock(client, clock["id"], currency="EUR", **fields)
            [invoice] = await invoices_of(client, (await subscribe(client, account["id"]))["id"])
            return invoice

        # French business with a valid VAT id, German seller: reverse charge, 0 %, the note.
        b2b_abroad = await invoice_for(
            address={"country": "FR"}, tax_ids=[{"type": "eu_vat", "value": VALID_FR_VAT}]
        )
        assert tax_summary(b2b_abroad) == (
            10000,
            0,
            10000,
            10000,
            "reverse_charge",
            "Reverse charge",
        )
        # A German business pays German VAT: 100,00 x 0.19 = 19,00.
        b2b_home = await invoice_for(
            address={"country": "DE"}, tax_ids=[{"type": "eu_vat", "value": VALID_DE_VAT}]
        )
        assert tax_summary(b2b_home) == (10000, 1900, 11900, 11900, "taxed", None)
        # A French consumer (no VAT id) pays French VAT: 100,00 x 0.20 = 20,00.
        b2c_abroad = await invoice_for(address={"country": "FR"})
        assert tax_summary(b2c_abroad) == (10000, 2000, 12000, 12000, "taxed", None)
        assert per_rate(b2c_abroad) == [("TVA", "FR", None, "20", 10000, 2000)]
        # tax_exempt=reverse works without any VAT id logic.
        marked = await invoice_for(address={"country": "FR"}, tax_exempt="reverse")
        assert tax_summary(marked)[4:] == ("reverse_charge", "Reverse charge")


async def test_without_seller_country_no_automatic_reverse_charge(
    client: httpx.AsyncClient,
) -> None:
    clock = await create_test_clock(client, "2025-03-10T09:00:00Z")
    await tax_rate(client, country="FR", name="TVA", percentage="20", effective_from="2020-01-01")
    await simple_plan(client, amount=10000, currency="EUR")
    account = await account_on_clock(
        client,
        clock["id"],
        currency="EUR",
        address={"country": "FR"},
        tax_ids=[{"type": "eu_vat", "value": VALID_FR_VAT}],
    )
    [invoice] = await invoices_of(client, (await subscribe(client, account["id"]))["id"])
    assert tax_summary(invoice) == (10000, 2000, 12000, 12000, "taxed", None)


async def test_auto_update_on_rate_change(client: httpx.AsyncClient) -> None:
    clock = await create_test_clock(client, "2025-05-15T09:00:00Z")
    old = await german_vat(client, "19", effective_from="2025-01-01")
    await simple_plan(client, amount=2700, currency="EUR")
    account = await account_on_clock(
        client, clock["id"], currency="EUR", timezone="Europe/Berlin", address={"country": "DE"}
    )
    sub = await subscribe(client, account["id"])
    # A cut to 16 % from Jul 1 (local date), announced in May: a new rate, no code change.
    new = await german_vat(client, "16", effective_from="2025-07-01")
    await advance(client, clock["id"], "2025-07-16T00:00:00Z")
    invoices = await invoices_of(client, sub["id"])
    # May 15 and Jun 15: 27,00 x 0.19 = 5,13; Jul 15: 27,00 x 0.16 = 4,32.
    assert [(i["period_start"], i["tax"], i["total"]) for i in invoices] == [
        ("2025-05-15", 513, 3213),
        ("2025-06-15", 513, 3213),
        ("2025-07-15", 432, 3132),
    ]
    assert [i["taxes"][0]["tax_rate_id"] for i in invoices] == [old["id"], old["id"], new["id"]]
    # The first invoice was finalized before the change and is never recomputed.
    first = (await client.get(f"/v1/invoices/{invoices[0]['id']}")).json()
    assert (first["tax"], first["taxes"][0]["percentage"]) == (513, "19")
    # A temporary cut (as in Germany in 2020): ending it on Aug 1 brings the 19 % back, since
    # the older rate is still in force; 27,00 x 0.19 = 5,13.
    ended = await client.patch(f"/v1/tax-rates/{new['id']}", json={"effective_to": "2025-08-01"})
    assert ended.status_code == 200
    await advance(client, clock["id"], "2025-08-16T00:00:00Z")
    august = (await invoices_of(client, sub["id"]))[-1]
    assert tax_summary(august) == (2700, 513, 3213, 3213, "taxed", None)
    assert august["taxes"][0]["tax_rate_id"] == old["id"]
    # Ending the last rate: no German rate applies any more.
    await client.patch(f"/v1/tax-rates/{old['id']}", json={"effective_to": "2025-09-01"})
    await advance(client, clock["id"], "2025-09-16T00:00:00Z")
    september = (await invoices_of(client, sub["id"]))[-1]
    assert tax_summary(september) == (2700, 0, 2700, 2700, "none", None)


async def test_downgrade_moves_the_tax_on_the_credit_to_the_balance(
    client: httpx.AsyncClient,
) -> None:
    clock = await create_test_clock(client, "2025-01-01T10:00:00Z")
    await tax_rate(
        client, country="US", name="Sales tax", percentage="10", effective_from="2020-01-01"
    )
    await simple_plan(client, code="max", amount=9900)
    await simple_plan(client, code="pro", amount=2900)
    account = await account_on_clock(client, clock["id"], address={"country": "US"})
    sub = await subscribe(client, account["id"], plan_code="max")
    await advance(client, clock["id"], "2025-01-10T10:00:00Z")
    response = await client.patch(
        f"/v1/subscriptions/{sub['id']}", json={"plan_code": "pro", "proration": "immediate"}
    )
    assert response.status_code == 200, response.text
    prorated = (await invoices_of(client, sub["id"]))[-1]
    # 22 of 31 days: unused max -7026 (tax -702.6 -> -703), pro +2058 (tax 205.8 -> 206);
    # net -4968 goes to credit with its tax: 703 - 206 = 497. Invoice tax 0, total 0.
    assert [(line["kind"], line["amount"], line["tax_amount"]) for line in prorated["lines"]] == [
        ("proration", -7026, -703),
        ("proration", 2058, 206),
        ("credit_balance", 4968, 497),
    ]
    assert tax_summary(prorated) == (0, 0, 0, 0, "taxed", None)
    assert per_rate(prorated) == [("Sales tax", "US", None, "10", -4968, -497)]
    credits = (await client.get(f"/v1/accounts/{account['id']}/credits")).json()
    # 4968 net + 497 tax = 5465.
    assert credits["balances"] == {"USD": 5465}


async def test_tax_rate_api(client: httpx.AsyncClient) -> None:
    rate = await german_vat(client, "19", effective_from="2025-01-01", description="Standard")
    assert (rate["object"], rate["percentage"], rate["inclusive"]) == ("tax_rate", "19", False)
    assert (await client.get(f"/v1/tax-rates/{rate['id']}")).json() == rate
    await tax_rate(client, country="FR", name="TVA", percentage="20", effective_from="2025-01-01")
    listed = (await client.get("/v1/tax-rates", params={"country": "de"})).json()
    assert [r["id"] for r in listed["data"]] == [rate["id"]]
    base = {"country": "DE", "name": "VAT", "percentage": "19", "effective_from": "2025-01-01"}
    bad = [
        (base | {"country": "de"}, "country"),
        (base | {"percentage": "101"}, "percentage"),
        ({k: v for k, v in base.items() if k != "effective_from"}, "effective_from"),
    ]
    for body, param in bad:
        response = await client.post("/v1/tax-rates", json=body)
        assert response.status_code == 422, body
        assert response.json()["param"] == param
    inclusive = await client.post(
        "/v1/tax-rates",
        json={
            "country": "DE",
            "name": "VAT",
            "percentage": "19",
            "effective_from": "2025-01-01",
            "inclusive": True,
        },
    )
    assert inclusive.status_code == 422
    backwards = await client.patch(
        f"/v1/tax-rates/{rate['id']}", json={"effective_to": "2024-12-31"}
    )
    assert (backwards.status_code, backwards.json()["param"]) == (422, "effective_to")


async def test_tax_of_a_finalized_invoice_is_frozen(client: httpx.AsyncClient, sql: Sql) -> None:
    _, account = await german_customer(client)
    [invoice] = await invoices_of(client, (await subscribe(client, account["id"]))["id"])
    tampering = [
        "UPDATE invoice_taxes SET amount = 0 WHERE invoice_id = :id",
        "DELETE FROM invoice_taxes WHERE invoice_id = :id",
        "UPDATE invoices SET tax_status = 'exempt' WHERE id = :id",
        "UPDATE invoices SET tax_note = 'Reverse charge' WHERE id = :id",
        "UPDATE invoice_lines SET tax_amount = 0 WHERE invoice_id = :id",
        "INSERT INTO invoice_taxes (id, invoice_id, position, name, percentage, inclusive, "
        "taxable_amount, amount) VALUES (gen_random_uuid(), :id, 1, 'X', 1, false, 1, 1)",
    ]
    for statement in tampering:
        with pytest.raises(DBAPIError, match="finalized"):
            await sql(statement, id=uuid.UUID(invoice["id"]))
    again = (await client.get(f"/v1/invoices/{invoice['id']}")).json()
    assert (again["tax"], again["tax_status"], per_rate(again)) == (
        513,
        "taxed",
        [("VAT", "DE", None, "19", 2700, 513)],
    )
