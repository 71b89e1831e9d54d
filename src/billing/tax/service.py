"""Tax rate use cases: rates are data, created and ended through the API."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.http.errors import NotFound, ValidationFailed
from billing.http.pagination import PageParams, paginate
from billing.tax.models import TaxRate
from billing.tax.schemas import TaxRateCreate, TaxRateRead, TaxRateUpdate


async def create_rate(session: AsyncSession, *, data: TaxRateCreate, clock: Clock) -> TaxRateRead:
    rate = TaxRate(id=uuid.uuid4(), **data.model_dump(), created_at=clock.now())
    session.add(rate)
    await session.commit()
    return TaxRateRead.model_validate(rate)


async def get_rate(session: AsyncSession, *, rate_id: uuid.UUID) -> TaxRateRead:
    rate = await session.get(TaxRate, rate_id)
    if rate is None:
        raise NotFound(f"No tax rate {rate_id}.", param="id")
    return TaxRateRead.model_validate(rate)


async def list_rates(
    session: AsyncSession, *, page: PageParams, country: str | None
) -> tuple[list[TaxRateRead], bool]:
    stmt = select(TaxRate)
    if country is not None:
        stmt = stmt.where(TaxRate.country == country.upper())
    rates, has_more = await paginate(session, stmt, TaxRate, page)
    return [TaxRateRead.model_validate(r) for r in rates], has_more


async def update_rate(
    session: AsyncSession, *, rate_id: uuid.UUID, data: TaxRateUpdate
) -> TaxRateRead:
    rate = await session.scalar(select(TaxRate).where(TaxRate.id == rate_id).with_for_update())
    if rate is None:
        raise NotFound(f"No tax rate {rate_id}.", param="id")
    changes = data.model_dump(exclude_unset=True)
    end = changes.get("effective_to", rate.effective_to)
    if end is not None and end <= rate.effective_from:
        raise ValidationFailed(
            f"effective_to must be after effective_from ({rate.effective_from}).",
            param="effective_to",
        )
    for field, value in changes.items():
        setattr(rate, field, value)
    await session.commit()
    return TaxRateRead.model_validate(rate)
