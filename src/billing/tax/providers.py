"""Tax providers: what invoice finalization calls once per batch of invoices.

* `builtin` (default): rates from the `tax_rates` table, loaded with one query per batch, then
  the pure engine (`tax.engine`).
* `stripe`: Stripe Tax through the official SDK (`client.v1.tax.calculations.create`), one
  calculation per invoice, run concurrently. Stripe decides rates and exemptions from the
  address, tax ids and `taxability_override`; the lines' tax comes back per line item.

Either way the result is an `InvoiceTax` per invoice, stored on the invoice and never
recomputed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.http.errors import DomainError
from billing.tax.engine import (
    CREDIT_BALANCE,
    EXEMPT_NOTE,
    REVERSE_CHARGE_NOTE,
    InvoiceTax,
    LineTax,
    Rate,
    TaxLine,
    TaxProfile,
    TaxStatus,
    calculate,
    finish,
    no_tax,
)
from billing.tax.models import TaxRate

SESSION_KEY = "tax_provider"


@dataclass(frozen=True, slots=True)
class TaxRequest:
    """One invoice to tax: whose, in which currency, on which local date, which lines."""

    profile: TaxProfile
    currency: str
    on: date
    lines: tuple[TaxLine, ...]
    reference: str  # our invoice id: an idempotency key and a reference at the provider


class TaxProvider(Protocol):
    name: str

    async def calculate(
        self, session: AsyncSession, requests: Sequence[TaxRequest]
    ) -> list[InvoiceTax]: ...

    async def aclose(self) -> None: ...


def _rate(row: TaxRate) -> Rate:
    return Rate(
        id=row.id,
        name=row.name,
        country=row.country,
        region=row.region,
        percentage=row.percentage,
        effective_from=row.effective_from,
        effective_to=row.effective_to,
    )


class BuiltinTaxProvider:
    name = "builtin"

    def __init__(self, *, seller_country: str | None = None) -> None:
        self.seller_country = seller_country

    async def load_rates(self, session: AsyncSession, countries: set[str]) -> list[Rate]:
        if not countries:
            return []
        rows = await session.scalars(
            select(TaxRate)
            .where(TaxRate.country.in_(sorted(countries)))
            .order_by(TaxRate.created_at, TaxRate.id)
        )
        return [_rate(row) for row in rows]

    async def calculate(
        self, session: AsyncSession, requests: Sequence[TaxRequest]
    ) -> list[InvoiceTax]:
        countries = {r.profile.country for r in requests if r.profile.country is not None}
        rates = await self.load_rates(session, countries)
        return [
            calculate(r.profile, r.lines, rates, on=r.on, seller_country=self.seller_country)
            for r in requests
        ]

    async def aclose(self) -> None:
        return None


class TaxProviderError(DomainError):
    """The external tax provider failed: nothing is finalized (the transaction rolls back);
    the API answers 503 and the worker retries on its next tick."""

    code = "service_unavailable"


_OVERRIDES = {"exempt": "customer_exempt", "reverse": "reverse_charge"}


class StripeTaxProvider:
    name = "stripe"

    def __init__(self, *, api_key: str, api_base: str | None = None, timeout: float = 30.0):
        if not api_key:
            raise ValueError("the stripe tax provider needs a secret key (STRIPE_SECRET_KEY)")
        self._http_client = stripe.HTTPXClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            http_client=self._http_client,
            max_network_retries=2,
        )

    async def calculate(
        self, session: AsyncSession, requests: Sequence[TaxRequest]
    ) -> list[InvoiceTax]:
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, request: TaxRequest) -> InvoiceTax:
        profile = request.profile
        # Stripe taxes positive amounts: a negative line is sent as its absolute value and its
        # tax negated, which is exactly what half-up rounding per line gives.
        sent = [
            i
            for i, line in enumerate(request.lines)
            if line.kind != CREDIT_BALANCE and line.amount != 0
        ]
        if profile.country is None or not sent:
            return no_tax(request.lines, TaxStatus.NONE, None)
        address: dict[str, str] = {"country": profile.country}
        if profile.region:
            address["state"] = profile.region
        customer: dict[str, Any] = {"address": address, "address_source": "billing"}
        if profile.tax_ids:
            customer["tax_ids"] = [{"type": t, "value": v} for t, v in profile.tax_ids]
        if profile.tax_exempt in _OVERRIDES:
            customer["taxability_override"] = _OVERRIDES[profile.tax_exempt]
        params: dict[str, Any] = {
            "currency": request.currency.lower(),
            "customer_details": customer,
            "line_items": [
                {
                    "amount": abs(request.lines[i].amount),
                    "reference": f"line_{i}",
                    "tax_behavior": "exclusive",
                }
                for i in sent
            ],
            "expand": ["line_items"],
        }
        try:
            calc = await self._client.v1.tax.calculations.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"tax-{request.reference}"},
            )
        except stripe.StripeError as exc:
            raise TaxProviderError(
                f"Stripe Tax failed ({exc.user_message or exc}); retry the request."
            ) from exc
        return _from_stripe(request.lines, sent, calc.to_dict())

    async def aclose(self) -> None:
        await self._http_client.close_async()  # type: ignore[no-untyped-call]


def _line_rate(item: dict[str, Any]) -> Rate | None:
    components = item.get("tax_breakdown") or []
    taxed = [c for c in components if c.get("tax_rate_details")]
    if not taxed:
        return None
    details = [c["tax_rate_details"] for c in taxed]
    jurisdiction = taxed[0].get("jurisdiction") or {}
    return Rate(
        id=None,
        name=" + ".join(str(d.get("display_name") or d.get("tax_type") or "Tax") for d in details),
        country=jurisdiction.get("country"),
        region=jurisdiction.get("state"),
        percentage=sum((Decimal(str(d["percentage_decimal"])) for d in details), Decimal(0)),
    )


def _from_stripe(lines: Sequence[TaxLine], sent: Sequence[int], calc: dict[str, Any]) -> InvoiceTax:
    items = {item["reference"]: item for item in calc["line_items"]["data"]}
    reasons = {
        component.get("taxability_reason")
        for item in items.values()
        for component in item.get("tax_breakdown") or []
    }
    if "customer_exempt" in reasons:
        return no_tax(lines, TaxStatus.EXEMPT, EXEMPT_NOTE)
    if "reverse_charge" in reasons:
        return no_tax(lines, TaxStatus.REVERSE_CHARGE, REVERSE_CHARGE_NOTE)
    taxes = [LineTax(0, None) for _ in lines]
    for i in sent:
        item = items[f"line_{i}"]
        sign = -1 if lines[i].amount < 0 else 1
        rate = _line_rate(item)
        taxes[i] = LineTax(sign * int(item["amount_tax"]), rate)
    if not any(t.amount for t in taxes):
        return no_tax(lines, TaxStatus.NONE, None)
    return finish(TaxStatus.TAXED, lines, taxes)


def tax_provider(
    name: str,
    *,
    seller_country: str | None,
    stripe_secret_key: str | None,
    stripe_api_base: str | None,
) -> TaxProvider:
    if name == "stripe":
        return StripeTaxProvider(api_key=stripe_secret_key or "", api_base=stripe_api_base)
    return BuiltinTaxProvider(seller_country=seller_country)


def provider_of(session: AsyncSession) -> TaxProvider:
    """The provider the session's runtime configured (sessions made without one, like the
    bench's, get the built-in engine without a seller country)."""
    provider = session.info.get(SESSION_KEY)
    return provider if provider is not None else BuiltinTaxProvider()


def profile_of(row: Mapping[str, Any]) -> TaxProfile:
    """The tax profile of an account row (a mapping: an asyncpg Record, a dict)."""
    address = row["address"] or {}
    return TaxProfile(
        account_id=row["id"],
        country=address.get("country"),
        region=address.get("region"),
        tax_exempt=row["tax_exempt"],
        tax_ids=tuple((t["type"], t["value"]) for t in row["tax_ids"] or ()),
        timezone=row["timezone"],
        locale=row["locale"],
    )
