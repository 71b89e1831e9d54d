"""Invoice use cases for the API: read, list, void, mark paid or uncollectible."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.clock import Clock
from billing.clock.service import account_now
from billing.credits.service import give_back
from billing.events.outbox import record_event
from billing.http.errors import InvalidState, NotFound
from billing.http.pagination import PageParams, paginate
from billing.invoicing.models import Invoice, InvoiceLine, InvoiceTax
from billing.invoicing.schemas import (
    InvoiceLineRead,
    InvoiceRead,
    InvoiceStatus,
    InvoiceTaxRead,
    formatting,
)


def _columns(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in type(row).__table__.columns}


def invoice_read(
    invoice: Invoice, parts: tuple[list[InvoiceLine], list[InvoiceTax]], locale: str
) -> InvoiceRead:
    """The API shape of an invoice; amounts are also formatted in the account's locale."""
    lines, taxes = parts
    fmt = formatting(invoice.currency, locale)
    return InvoiceRead.model_validate(
        {
            **_columns(invoice),
            **fmt,
            "lines": [InvoiceLineRead.model_validate(_columns(line) | fmt) for line in lines],
            "taxes": [InvoiceTaxRead.model_validate(_columns(tax) | fmt) for tax in taxes],
        }
    )


Parts = tuple[list[InvoiceLine], list[InvoiceTax]]


async def _lines(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, Parts]:
    """Lines and tax rows per invoice."""
    found: dict[uuid.UUID, Parts] = defaultdict(lambda: ([], []))
    if ids:
        rows = await session.scalars(
            select(InvoiceLine)
            .where(InvoiceLine.invoice_id.in_(ids))
            .order_by(InvoiceLine.invoice_id, InvoiceLine.position)
        )
        for line in rows:
            found[line.invoice_id][0].append(line)
        taxes = await session.scalars(
            select(InvoiceTax)
            .where(InvoiceTax.invoice_id.in_(ids))
            .order_by(InvoiceTax.invoice_id, InvoiceTax.position)
        )
        for tax in taxes:
            found[tax.invoice_id][1].append(tax)
    return found


async def _locales(session: AsyncSession, account_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not account_ids:
        return {}
    rows = await session.execute(
        select(Account.id, Account.locale).where(Account.id.in_(sorted(account_ids)))
    )
    return {row.id: row.locale for row in rows}


async def _read(session: AsyncSession, invoice: Invoice) -> InvoiceRead:
    locale = (await _locales(session, {invoice.account_id}))[invoice.account_id]
    return invoice_read(invoice, (await _lines(session, [invoice.id]))[invoice.id], locale)


async def get_invoice(session: AsyncSession, *, invoice_id: uuid.UUID) -> InvoiceRead:
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"No invoice {invoice_id}.", param="id")
    return await _read(session, invoice)


async def list_invoices(
    session: AsyncSession,
    *,
    page: PageParams,
    account_id: uuid.UUID | None,
    subscription_id: uuid.UUID | None,
    status: InvoiceStatus | None,
    created_gte: datetime | None,
    created_lt: datetime | None,
) -> tuple[list[InvoiceRead], bool]:
    stmt = select(Invoice)
    if account_id is not None:
        stmt = stmt.where(Invoice.account_id == account_id)
    if subscription_id is not None:
        stmt = stmt.where(Invoice.subscription_id == subscription_id)
    if status is not None:
        stmt = stmt.where(Invoice.status == status.value)
    if created_gte is not None:
        stmt = stmt.where(Invoice.created_at >= created_gte)
    if created_lt is not None:
        stmt = stmt.where(Invoice.created_at < created_lt)
    invoices, has_more = await paginate(session, stmt, Invoice, page)
    lines = await _lines(session, [i.id for i in invoices])
    locales = await _locales(session, {i.account_id for i in invoices})
    return [invoice_read(i, lines[i.id], locales[i.account_id]) for i in invoices], has_more


async def lock_invoice(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice:
    invoice = await session.scalar(
        select(Invoice).where(Invoice.id == invoice_id).with_for_update()
    )
    if invoice is None:
        raise NotFound(f"No invoice {invoice_id}.", param="id")
    return invoice


_OPEN = (InvoiceStatus.OPEN.value, InvoiceStatus.UNCOLLECTIBLE.value)


def _require_open(invoice: Invoice, action: str, *, allowed: tuple[str, ...] = _OPEN) -> None:
    if invoice.status not in allowed:
        raise InvalidState(
            f"Only open invoices can be {action}; this one is {invoice.status}.",
            extra={"current_status": invoice.status},
        )


async def void_invoice(
    session: AsyncSession, *, invoice_id: uuid.UUID, clock: Clock
) -> InvoiceRead:
    invoice = await lock_invoice(session, invoice_id)
    _require_open(invoice, "voided")
    # Lock order: the invoice (above), then its account.
    now = await account_now(session, invoice.account_id, clock, lock_account=True)
    await give_back(session, invoice_id=invoice.id, at=now)
    invoice.status = InvoiceStatus.VOID.value
    invoice.voided_at = now
    return await _commit_with_event(session, invoice, "invoice.voided", now)


async def mark_paid(session: AsyncSession, *, invoice_id: uuid.UUID, clock: Clock) -> InvoiceRead:
    """Record an off-line payment of the whole remaining amount."""
    invoice = await lock_invoice(session, invoice_id)
    _require_open(invoice, "marked paid")
    now = await account_now(session, invoice.account_id, clock)
    invoice.status = InvoiceStatus.PAID.value
    invoice.amount_paid = invoice.amount_due
    invoice.amount_remaining = 0
    invoice.paid_at = now
    return await _commit_with_event(session, invoice, "invoice.paid", now)


async def record_payment(
    session: AsyncSession, *, invoice: Invoice, amount: int, at: datetime
) -> InvoiceRead:
    """Mark a locked open invoice paid by a collected payment, in the caller's transaction
    (the payments domain commits it together with the payment's outcome)."""
    _require_open(invoice, "paid")
    invoice.status = InvoiceStatus.PAID.value
    invoice.amount_paid = min(invoice.amount_due, invoice.amount_paid + amount)
    invoice.amount_remaining = invoice.amount_due - invoice.amount_paid
    invoice.paid_at = at
    await session.flush()
    read = await _read(session, invoice)
    record_event(
        session,
        type="invoice.paid",
        account_id=invoice.account_id,
        data=read.model_dump(mode="json"),
        at=at,
    )
    return read


async def mark_uncollectible(
    session: AsyncSession, *, invoice_id: uuid.UUID, clock: Clock
) -> InvoiceRead:
    invoice = await lock_invoice(session, invoice_id)
    _require_open(invoice, "marked uncollectible", allowed=(InvoiceStatus.OPEN.value,))
    now = await account_now(session, invoice.account_id, clock)
    invoice.status = InvoiceStatus.UNCOLLECTIBLE.value
    invoice.marked_uncollectible_at = now
    return await _commit_with_event(session, invoice, "invoice.marked_uncollectible", now)


async def _commit_with_event(
    session: AsyncSession, invoice: Invoice, type: str, at: datetime
) -> InvoiceRead:
    await session.flush()
    read = await _read(session, invoice)
    record_event(
        session, type=type, account_id=invoice.account_id, data=read.model_dump(mode="json"), at=at
    )
    await session.commit()
    return read
