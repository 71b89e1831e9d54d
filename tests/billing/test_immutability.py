"""A finalized invoice is frozen by database triggers, whatever client writes to the tables.

These tests tamper with the rows directly (the `sql` fixture) and check that PostgreSQL itself
refuses, while the payment state (status, amount paid) can still move on through the API.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.exc import IntegrityError

from billing.db.engine import raw_connect
from billing.invoicing.writer import DEFER_INVOICE_REFERENCES
from tests.conftest import Sql
from tests.factories.billing import (
    customer_on_clock,
    grant_credit,
    invoice_action,
    only_invoice,
    subscribe,
)


async def finalized(client: httpx.AsyncClient) -> dict[str, Any]:
    """An open invoice: one $30.00 line, $5.00 of credit applied, $25.00 due."""
    _, account = await customer_on_clock(client, "2025-01-10T12:00:00Z", amount=3000)
    await grant_credit(client, account["id"], 500)
    invoice = await only_invoice(client, (await subscribe(client, account["id"]))["id"])
    assert (invoice["status"], invoice["number"]) == ("open", "INV-000001")
    assert (invoice["subtotal"], invoice["credits_applied"], invoice["amount_due"]) == (
        3000,
        500,
        2500,
    )
    return invoice


FROZEN_INVOICE_UPDATES = {
    # 600 - 500 of credit = 100 due: consistent totals, only the amounts differ.
    "subtotal": "UPDATE invoices SET subtotal = 600, total = 600, amount_due = 100, "
    "amount_remaining = 100 WHERE id = :id",
    "total": "UPDATE invoices SET tax = 100, total = 3100, amount_due = 2600, "
    "amount_remaining = 2600 WHERE id = :id",
    "credits_applied": "UPDATE invoices SET credits_applied = 0, amount_due = 3000, "
    "amount_remaining = 3000 WHERE id = :id",
    "number": "UPDATE invoices SET number = 'INV-999999' WHERE id = :id",
    "currency": "UPDATE invoices SET currency = 'EUR' WHERE id = :id",
    "subscription": "UPDATE invoices SET subscription_id = NULL WHERE id = :id",
    "period": "UPDATE invoices SET period_end = period_end + 1 WHERE id = :id",
    "back_to_draft": "UPDATE invoices SET status = 'draft' WHERE id = :id",
    "finalized_at": "UPDATE invoices SET finalized_at = finalized_at + interval '1 day' "
    "WHERE id = :id",
}


@pytest.mark.parametrize("statement", FROZEN_INVOICE_UPDATES.values(), ids=FROZEN_INVOICE_UPDATES)
async def test_finalized_invoice_amounts_and_identity_cannot_change(
    client: httpx.AsyncClient, sql: Sql, statement: str
) -> None:
    invoice = await finalized(client)
    # Each statement keeps the check constraints satisfied, so only the trigger can refuse it.
    with pytest.raises(IntegrityError, match="is finalized"):
        await sql(statement, id=invoice["id"])
    assert (await client.get(f"/v1/invoices/{invoice['id']}")).json() == invoice


async def test_finalized_invoice_cannot_be_deleted(client: httpx.AsyncClient, sql: Sql) -> None:
    invoice = await finalized(client)
    with pytest.raises(IntegrityError, match="is finalized and cannot be deleted"):
        await sql("DELETE FROM invoices WHERE id = :id", id=invoice["id"])
    assert (await client.get(f"/v1/invoices/{invoice['id']}")).status_code == 200


async def test_lines_of_a_finalized_invoice_cannot_change(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    invoice = await finalized(client)
    [line] = invoice["lines"]
    message = "finalized invoice"
    with pytest.raises(IntegrityError, match=message):
        await sql("UPDATE invoice_lines SET amount = 1 WHERE id = :id", id=line["id"])
    with pytest.raises(IntegrityError, match=message):
        await sql("UPDATE invoice_lines SET description = 'Other' WHERE id = :id", id=line["id"])
    with pytest.raises(IntegrityError, match=message):
        await sql("DELETE FROM invoice_lines WHERE id = :id", id=line["id"])
    with pytest.raises(IntegrityError, match=message):
        await sql(
            "INSERT INTO invoice_lines (id, invoice_id, position, kind, description, quantity, "
            "amount, details) VALUES (:line, :id, 1, 'one_off', 'Extra', 1, 100, '{}')",
            line=uuid.uuid4(),
            id=invoice["id"],
        )
    assert (await client.get(f"/v1/invoices/{invoice['id']}")).json()["lines"] == [line]


async def test_a_line_cannot_move_onto_a_finalized_invoice(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    invoice = await finalized(client)
    draft = await draft_invoice(sql, invoice["account_id"])
    # Refused either as a change to the finalized invoice or as a line changing invoice.
    with pytest.raises(IntegrityError, match=r"finalized invoice|cannot move to another invoice"):
        await sql(
            "UPDATE invoice_lines SET invoice_id = :target WHERE invoice_id = :draft",
            target=invoice["id"],
            draft=draft,
        )


async def draft_invoice(sql: Sql, account_id: str) -> uuid.UUID:
    """A draft invoice of $10.00 with one line, written directly (the API never keeps drafts)."""
    invoice_id = uuid.uuid4()
    await sql(
        "INSERT INTO invoices (id, account_id, currency, status, billing_reason, subtotal, tax, "
        "total, credits_applied, amount_due, amount_paid, amount_remaining, created_at) VALUES "
        "(:id, :account, 'USD', 'draft', 'manual', 1000, 0, 1000, 0, 1000, 0, 1000, now())",
        id=invoice_id,
        account=account_id,
    )
    await sql(
        "INSERT INTO invoice_lines (id, invoice_id, position, kind, description, quantity, "
        "amount, details) VALUES (:line, :id, 0, 'one_off', 'Setup', 1, 1000, '{}')",
        line=uuid.uuid4(),
        id=invoice_id,
    )
    return invoice_id


async def test_a_draft_invoice_may_still_change(client: httpx.AsyncClient, sql: Sql) -> None:
    # The guard is about finalized invoices only: the same statements pass on a draft.
    invoice = await finalized(client)
    draft = await draft_invoice(sql, invoice["account_id"])
    await sql(
        "UPDATE invoices SET subtotal = 1500, total = 1500, amount_due = 1500, "
        "amount_remaining = 1500 WHERE id = :id",
        id=draft,
    )
    await sql("UPDATE invoice_lines SET amount = 1500 WHERE invoice_id = :id", id=draft)
    await sql(
        "INSERT INTO invoice_lines (id, invoice_id, position, kind, description, quantity, "
        "amount, details) VALUES (:line, :id, 1, 'one_off', 'Extra', 1, 0, '{}')",
        line=uuid.uuid4(),
        id=draft,
    )
    assert await sql("SELECT sum(amount) FROM invoice_lines WHERE invoice_id = :id", id=draft) == [
        (1500,)
    ]
    await sql("DELETE FROM invoice_lines WHERE invoice_id = :id", id=draft)
    await sql("DELETE FROM invoices WHERE id = :id", id=draft)
    assert await sql("SELECT 1 FROM invoices WHERE id = :id", id=draft) == []


async def test_finalizing_a_draft_then_freezes_it(client: httpx.AsyncClient, sql: Sql) -> None:
    invoice = await finalized(client)
    draft = await draft_invoice(sql, invoice["account_id"])
    await sql(
        "UPDATE invoices SET status = 'open', number = 'INV-000002', finalized_at = now() "
        "WHERE id = :id",
        id=draft,
    )
    with pytest.raises(IntegrityError, match="is finalized"):
        await sql(
            "UPDATE invoices SET subtotal = 0, total = 0, amount_due = 0, "
            "amount_remaining = 0 WHERE id = :id",
            id=draft,
        )


async def test_payment_state_still_moves_on(client: httpx.AsyncClient, sql: Sql) -> None:
    invoice = await finalized(client)
    paid = await invoice_action(client, invoice["id"], "mark-paid")
    assert paid.status_code == 200, paid.text
    # $25.00 was due after the $5.00 credit: all of it is paid, nothing else changed.
    assert (paid.json()["status"], paid.json()["amount_paid"], paid.json()["amount_remaining"]) == (
        "paid",
        2500,
        0,
    )
    frozen = ("number", "subtotal", "total", "credits_applied", "amount_due", "lines")
    assert {k: paid.json()[k] for k in frozen} == {k: invoice[k] for k in frozen}
    # The same holds for a direct write of payment columns only.
    other = await only_invoice(
        client, (await subscribe(client, invoice["account_id"], plan_code="pro"))["id"]
    )
    await sql(
        "UPDATE invoices SET status = 'uncollectible', marked_uncollectible_at = now() "
        "WHERE id = :id",
        id=other["id"],
    )
    assert (await client.get(f"/v1/invoices/{other['id']}")).json()["status"] == "uncollectible"


_ORPHAN_LINE = (
    "INSERT INTO invoice_lines (id, invoice_id, position, kind, description, quantity, "
    "amount, details) VALUES ($1, $2, 0, 'one_off', 'Orphan', 1, 100, '{}')"
)


async def test_rows_written_ahead_of_their_invoice_need_it_by_commit(database_url: str) -> None:
    """Finalization writes lines before their invoice under deferred foreign keys: a line
    whose invoice never comes is still refused, at commit; without deferral, at once."""
    conn = await raw_connect(database_url)
    try:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(_ORPHAN_LINE, uuid.uuid4(), uuid.uuid4())
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(str(DEFER_INVOICE_REFERENCES))
        await conn.execute(_ORPHAN_LINE, uuid.uuid4(), uuid.uuid4())  # accepted for now
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await transaction.commit()
        assert await conn.fetchval("SELECT count(*) FROM invoice_lines") == 0
    finally:
        await conn.close()
