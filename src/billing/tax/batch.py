"""The tax step of invoice finalization: one batch of drafts, one provider call."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.periods import local_date
from billing.db.bulk import driver_connection
from billing.invoicing.rules import DraftInvoice
from billing.tax.engine import InvoiceTax, TaxLine, TaxProfile
from billing.tax.providers import TaxRequest, profile_of, provider_of

_PROFILES = """
    SELECT id, address, tax_exempt, tax_ids, timezone, locale FROM accounts WHERE id = ANY($1)
"""


async def load_profiles(
    session: AsyncSession, account_ids: set[uuid.UUID]
) -> dict[uuid.UUID, TaxProfile]:
    db = await driver_connection(session)
    rows = await db.fetch(_PROFILES, sorted(account_ids))
    return {row["id"]: profile_of(row) for row in rows}


async def tax_drafts(
    session: AsyncSession, drafts: Sequence[DraftInvoice], invoice_ids: Sequence[uuid.UUID]
) -> tuple[list[InvoiceTax], dict[uuid.UUID, TaxProfile]]:
    """Tax every draft with the session's provider: rates load once for the whole batch.

    A rate applies by the local date (account time zone) on which the invoice is finalized.
    """
    profiles = await load_profiles(session, {d.account_id for d in drafts})
    requests = [
        TaxRequest(
            profile=profiles[d.account_id],
            currency=d.currency,
            on=local_date(d.created_at, profiles[d.account_id].timezone),
            lines=tuple(TaxLine(line.kind, line.amount) for line in d.lines),
            reference=str(invoice_id),
        )
        for d, invoice_id in zip(drafts, invoice_ids, strict=True)
    ]
    return await provider_of(session).calculate(session, requests), profiles
