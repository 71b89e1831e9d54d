"""The metered components of a plan version in one currency, cached per process.

Plan versions are immutable (only `active` ever changes), so a version's components can be
kept for the life of the process; ingestion then needs no plan query on its hot path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from billing.catalog.models import MeteredComponent, Plan, plan_price_in

Components = Mapping[str, MeteredComponent]
NONE: Components = MappingProxyType({})
_MAX_CACHED = 10_000
_cache: dict[tuple[uuid.UUID, str], Components] = {}


def _from_prices(prices: Iterable[Mapping[str, Any]], currency: str) -> Components:
    price = plan_price_in(prices, currency)
    return NONE if price is None else MappingProxyType(dict(price.metered))


def _remember(plan_id: uuid.UUID, currency: str, prices: Iterable[Mapping[str, Any]]) -> Components:
    if len(_cache) >= _MAX_CACHED:
        _cache.clear()
    found = _cache[(plan_id, currency)] = _from_prices(prices, currency)
    return found


def metered_components(plan: Plan, currency: str) -> Components:
    """`plan`'s metered components in `currency` (empty if it has none)."""
    found = _cache.get((plan.id, currency))
    return found if found is not None else _remember(plan.id, currency, plan.prices)


async def components_for(
    db: Any, pairs: Iterable[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], Components]:
    """Components per (plan id, currency); reads only the plans not cached yet (`db` is an
    asyncpg connection)."""
    wanted = set(pairs)
    found = {pair: _cache[pair] for pair in wanted if pair in _cache}
    missing = {plan_id for plan_id, _ in wanted - found.keys()}
    if missing:
        rows = await db.fetch(
            "SELECT id, prices FROM plans WHERE id = ANY($1::uuid[])", list(missing)
        )
        prices = {row["id"]: row["prices"] for row in rows}
        for plan_id, currency in wanted - found.keys():
            found[(plan_id, currency)] = _remember(plan_id, currency, prices.get(plan_id, ()))
    return found
