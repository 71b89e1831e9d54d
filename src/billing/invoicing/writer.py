"""Finalizing invoices in bulk: numbers, credit, rows, lines and events in the caller's
transaction. The API (one invoice) and the worker (a batch) share this one code path.

Set-based on purpose: a batch of N invoices costs a handful of statements, not N round trips.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.credits.ledger import available_grants, lock_accounts
from billing.credits.models import CreditEntry
from billing.events.models import Event
from billing.invoicing.models import Invoice, InvoiceLine
from billing.invoicing.rules import DraftInvoice, draw_credit, format_number
from billing.invoicing.schemas import InvoiceLineRead, InvoiceRead, InvoiceStatus
from billing.observability.metrics import INVOICES_GENERATED

COUNTER = "invoices"

_BUMP = text(
    "UPDATE invoice_number_counters SET value = value + :n WHERE name = :name RETURNING value"
)
_FINALIZE = text(
    """
    UPDATE invoices AS i
    SET status = d.status, finalized_at = d.at,
        paid_at = CASE WHEN d.status = 'paid' THEN d.at ELSE NULL END
    FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:ats AS timestamptz[]))
        AS d(id, status, at)
    WHERE i.id = d.id
    """
)


async def finalize(
    session: AsyncSession, drafts: Sequence[DraftInvoice], *, number_prefix: str
) -> list[InvoiceRead]:
    """Number, apply credit to and write `drafts` as finalized invoices, with their events."""
    if not drafts:
        return []
    for draft in drafts:
        if draft.subtotal < 0:
            raise ValueError("an invoice cannot be negative; grant the difference as credit")

    payable = {(d.account_id, d.currency) for d in drafts if d.subtotal > 0}
    await lock_accounts(session, {account for account, _ in payable})
    grants = await available_grants(session, payable, max(d.created_at for d in drafts))

    top = (await session.execute(_BUMP, {"n": len(drafts), "name": COUNTER})).scalar_one()
    first_number = int(top) - len(drafts) + 1

    invoices: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    credits: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    reads: list[InvoiceRead] = []

    for offset, draft in enumerate(drafts):
        invoice_id = uuid.uuid4()
        at = draft.created_at
        subtotal = draft.subtotal
        tax = 0
        total = subtotal + tax
        draws = draw_credit(total, grants.get((draft.account_id, draft.currency), []))
        applied = sum(amount for _, amount in draws)
        if draws:
            # Keep the in-memory balances current for the next invoice of the same account.
            used = dict(draws)
            grants[(draft.account_id, draft.currency)] = [
                type(g)(id=g.id, remaining=g.remaining - used.get(g.id, 0))
                for g in grants[(draft.account_id, draft.currency)]
            ]
        amount_due = total - applied
        status = InvoiceStatus.PAID if amount_due == 0 else InvoiceStatus.OPEN
        row = {
            "id": invoice_id,
            "number": format_number(number_prefix, first_number + offset),
            "account_id": draft.account_id,
            "subscription_id": draft.subscription_id,
            "currency": draft.currency,
            "status": InvoiceStatus.DRAFT.value,
            "billing_reason": draft.billing_reason,
            "cycle_key": draft.cycle_key,
            "period_start": draft.period_start,
            "period_end": draft.period_end,
            "subtotal": subtotal,
            "tax": tax,
            "total": total,
            "credits_applied": applied,
            "amount_due": amount_due,
            "amount_paid": 0,
            "amount_remaining": amount_due,
            "created_at": at,
            "finalized_at": None,
            "due_at": at,
            "paid_at": None,
            "voided_at": None,
            "marked_uncollectible_at": None,
        }
        invoices.append(row)
        line_reads = []
        for position, line in enumerate(draft.lines):
            line_row = {
                "id": uuid.uuid4(),
                "invoice_id": invoice_id,
                "position": position,
                "kind": line.kind,
                "description": line.description,
                "period_start": line.period_start,
                "period_end": line.period_end,
                "quantity": line.quantity,
                "unit_amount": line.unit_amount,
                "unit_amount_decimal": line.unit_amount_decimal,
                "amount": line.amount,
                "details": line.details,
            }
            lines.append(line_row)
            line_reads.append(InvoiceLineRead.model_validate(line_row))
        for grant_id, amount in draws:
            credits.append(
                {
                    "id": uuid.uuid4(),
                    "account_id": draft.account_id,
                    "currency": draft.currency,
                    "kind": "application",
                    "amount": -amount,
                    "grant_id": grant_id,
                    "invoice_id": invoice_id,
                    "reason": None,
                    "expires_at": None,
                    "created_at": at,
                }
            )
        read = InvoiceRead.model_validate(
            row
            | {
                "lines": line_reads,
                "status": status,
                "finalized_at": at,
                "paid_at": at if status is InvoiceStatus.PAID else None,
            }
        )
        reads.append(read)
        data = read.model_dump(mode="json")
        created = data | {
            "status": InvoiceStatus.DRAFT.value,
            "finalized_at": None,
            "paid_at": None,
        }
        events.append(_event("invoice.created", draft.account_id, created, at))
        events.append(_event("invoice.finalized", draft.account_id, data, at))
        if status is InvoiceStatus.PAID:
            events.append(_event("invoice.paid", draft.account_id, data, at))
        if applied:
            events.append(
                _event(
                    "credit.applied",
                    draft.account_id,
                    {
                        "object": "credit_application",
                        "invoice_id": str(invoice_id),
                        "account_id": str(draft.account_id),
                        "currency": draft.currency,
                        "amount": applied,
                    },
                    at,
                )
            )

    await session.execute(insert(Invoice), invoices)
    if lines:
        await session.execute(insert(InvoiceLine), lines)
    if credits:
        await session.execute(insert(CreditEntry), credits)
    await session.execute(
        _FINALIZE,
        {
            "ids": [r.id for r in reads],
            "statuses": [r.status.value for r in reads],
            "ats": [r.created_at for r in reads],
        },
    )
    await session.execute(insert(Event), events)
    INVOICES_GENERATED.inc(len(reads))
    return reads


def _event(type: str, account_id: uuid.UUID, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "type": type,
        "account_id": account_id,
        "data": data,
        "created_at": at,
    }
