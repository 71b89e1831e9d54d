"""Finalizing invoices in bulk: numbers, credit, rows, lines and events in the caller's
transaction. The API (one invoice) and the worker (a batch) share this one code path.

Set-based on purpose: a batch of N invoices costs a handful of statements, not N round trips.
The gap-free number counter is locked last, just before the caller commits, so concurrent
finalizers (two workers, the API) queue on it only briefly.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.credits.ledger import available_grants, lock_accounts
from billing.credits.models import CreditEntry
from billing.credits.schemas import CreditEntryRead
from billing.db.bulk import bulk_insert
from billing.events.models import Event
from billing.events.outbox import event_row
from billing.invoicing.models import Invoice, InvoiceLine, InvoiceTax
from billing.invoicing.rules import DraftInvoice, Grant, draw_credit, format_number
from billing.invoicing.schemas import (
    InvoiceLineRead,
    InvoiceRead,
    InvoiceStatus,
    InvoiceTaxRead,
    formatting,
)
from billing.observability.metrics import INVOICES_GENERATED
from billing.tax.batch import tax_drafts

COUNTER = "invoices"

_BUMP = text(
    "UPDATE invoice_number_counters SET value = value + :n WHERE name = :name RETURNING value"
)
# Lines, tax rows and credit applications are written before their invoice, which is written
# once, numbered and final, after the number lock: their foreign keys wait for it until commit.
DEFER_INVOICE_REFERENCES = text(
    "SET CONSTRAINTS fk_invoice_lines_invoice_id_invoices, "
    "fk_invoice_taxes_invoice_id_invoices, fk_credit_entries_invoice_id_invoices DEFERRED"
)


async def finalize(
    session: AsyncSession, drafts: Sequence[DraftInvoice], *, number_prefix: str
) -> list[InvoiceRead]:
    """Apply credit to, number and write `drafts` as finalized invoices, with their events.

    Call it last in the transaction: it takes the invoice-number lock, held until commit.
    """
    if not drafts:
        return []
    for draft in drafts:
        if draft.subtotal < 0:
            raise ValueError("an invoice cannot be negative; grant the difference as credit")

    invoice_ids = [uuid.uuid4() for _ in drafts]
    # Tax first, once for the batch (rates load once); stored with the invoice, never redone.
    taxes, profiles = await tax_drafts(session, drafts, invoice_ids)
    payable = {
        (d.account_id, d.currency)
        for d, t in zip(drafts, taxes, strict=True)
        if d.subtotal + t.total > 0
    }
    await lock_accounts(session, {account for account, _ in payable})
    grants = await available_grants(session, payable, max(d.created_at for d in drafts))

    invoices: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    tax_rows: list[dict[str, Any]] = []
    credits: list[dict[str, Any]] = []
    tax_credits: list[dict[str, Any]] = []
    created_events: list[dict[str, Any]] = []
    drafted: list[tuple[DraftInvoice, InvoiceRead, dict[str, Any]]] = []

    for draft, invoice_id, invoice_tax in zip(drafts, invoice_ids, taxes, strict=True):
        at = draft.created_at
        key = (draft.account_id, draft.currency)
        fmt = formatting(draft.currency, profiles[draft.account_id].locale)
        subtotal = draft.subtotal
        tax = invoice_tax.total
        total = subtotal + tax
        draws = draw_credit(total, grants.get(key, []))
        if draws:
            # Keep the balances current for the next invoice of the same account.
            used = dict(draws)
            grants[key] = [Grant(g.id, g.remaining - used.get(g.id, 0)) for g in grants[key]]
        applied = sum(amount for _, amount in draws)
        amount_due = total - applied
        row = {
            "id": invoice_id,
            "number": None,
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
            "tax_status": invoice_tax.status.value,
            "tax_note": invoice_tax.note,
        }
        invoices.append(row)
        line_reads = []
        for position, (line, line_tax) in enumerate(
            zip(draft.lines, invoice_tax.lines, strict=True)
        ):
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
                "tax_amount": line_tax.amount,
                "tax_rate_id": line_tax.rate.id if line_tax.rate else None,
                "tax_percentage": line_tax.rate.percentage if line_tax.rate else None,
            }
            lines.append(line_row)
            line_reads.append(InvoiceLineRead.model_validate(line_row | fmt))
        tax_reads = []
        for position, part in enumerate(invoice_tax.breakdown):
            tax_row = {
                "id": uuid.uuid4(),
                "invoice_id": invoice_id,
                "position": position,
                "tax_rate_id": part.rate.id,
                "name": part.rate.name,
                "country": part.rate.country,
                "region": part.rate.region,
                "percentage": part.rate.percentage,
                "inclusive": False,
                "taxable_amount": part.taxable_amount,
                "amount": part.amount,
            }
            tax_rows.append(tax_row)
            tax_reads.append(InvoiceTaxRead.model_validate(tax_row | fmt))
        if invoice_tax.moved_to_credit:
            # The tax on the part of a downgrade moved to the credit balance goes there too.
            tax_credits.append(
                {
                    "id": uuid.uuid4(),
                    "account_id": draft.account_id,
                    "currency": draft.currency,
                    "kind": "grant",
                    "amount": invoice_tax.moved_to_credit,
                    "grant_id": None,
                    "invoice_id": invoice_id,
                    "reason": "Tax on the amount moved to the credit balance",
                    "expires_at": None,
                    "created_at": at,
                }
            )
        credits.extend(
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
            for grant_id, amount in draws
        )
        read = InvoiceRead.model_validate(row | fmt | {"lines": line_reads, "taxes": tax_reads})
        # Serialized once: the finalized payload below only changes a few fields of it.
        created = read.model_dump(mode="json")
        drafted.append((draft, read, created))
        created_events.append(event_row("invoice.created", draft.account_id, created, at))

    await session.execute(DEFER_INVOICE_REFERENCES)
    await bulk_insert(session, InvoiceLine, lines)
    await bulk_insert(session, InvoiceTax, tax_rows)
    await bulk_insert(session, CreditEntry, credits + tax_credits)
    created_events.extend(
        event_row(
            "credit.granted",
            entry["account_id"],
            CreditEntryRead.model_validate(entry).model_dump(mode="json"),
            entry["created_at"],
        )
        for entry in tax_credits
    )
    await bulk_insert(session, Event, created_events)

    # From here to the caller's commit the counter row is locked: keep it short.
    top = (await session.execute(_BUMP, {"n": len(drafts), "name": COUNTER})).scalar_one()
    first = int(top) - len(drafts) + 1
    reads: list[InvoiceRead] = []
    events: list[dict[str, Any]] = []
    for offset, (draft, read, created) in enumerate(drafted):
        status = InvoiceStatus.PAID if read.amount_due == 0 else InvoiceStatus.OPEN
        at = read.created_at
        changes = {
            "number": format_number(number_prefix, first + offset),
            "status": status,
            "finalized_at": at,
            "paid_at": at if status is InvoiceStatus.PAID else None,
        }
        invoices[offset] |= changes | {"status": status.value}
        final = read.model_copy(update=changes)
        reads.append(final)
        stamp = created["created_at"]
        data = created | {
            "number": changes["number"],
            "status": status.value,
            "finalized_at": stamp,
            "paid_at": stamp if status is InvoiceStatus.PAID else None,
        }
        events.append(event_row("invoice.finalized", draft.account_id, data, at))
        if status is InvoiceStatus.PAID:
            events.append(event_row("invoice.paid", draft.account_id, data, at))
        if final.credits_applied:
            credit = {
                "object": "credit_application",
                "invoice_id": str(final.id),
                "account_id": str(draft.account_id),
                "currency": draft.currency,
                "amount": final.credits_applied,
            }
            events.append(event_row("credit.applied", draft.account_id, credit, at))
    await bulk_insert(session, Invoice, invoices)
    await bulk_insert(session, Event, events)
    INVOICES_GENERATED.inc(len(reads))
    return reads
