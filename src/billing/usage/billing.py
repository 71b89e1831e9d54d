"""Usage on invoices: the closing period's usage on the renewal invoice, late usage on
supplemental invoices.

The renewal sweep calls `closing_window` for each subscription it moves on (before the row
changes), then `usage_lines` once for the whole batch and `with_usage_lines` to put the lines
on the drafts. Everything is set-based: one aggregation statement for the batch.

`usage_lines` also records each billed period (`usage_billed_periods`) with what it billed.
Late events mark their period pending; the `usage_late` sweep re-prices a pending period and
invoices the difference (at most once per subscription, period and local day). Every newly
billed period starts pending too: an ingestion that read the subscription before the renewal
committed may still be writing events into the closed period, and this second look, taken
after `ingestion_barrier`, bills them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from billing.catalog.models import Aggregation, MeteredComponent, Plan
from billing.core.lifecycle import SubscriptionStatus
from billing.core.periods import BillingPeriod, local_date, local_midnight, period_bounds_utc
from billing.core.pricing import PricingModel, TierLine, price_metric
from billing.credits.service import grant
from billing.db.bulk import bulk_insert, bulk_update
from billing.events.outbox import record_event
from billing.http.types import plain_decimal
from billing.invoicing.rules import DraftInvoice, DraftLine
from billing.invoicing.writer import finalize
from billing.subscriptions.rules import span
from billing.usage.aggregate import MetricWindow, ingestion_barrier, totals
from billing.usage.components import Components, metered_components
from billing.usage.models import UsageBilledPeriod
from billing.usage.rules import Totals, check_aligned

__all__ = [
    "UsageWindow",
    "bill_late_usage",
    "bill_usage_so_far",
    "closing_window",
    "usage_lines",
    "with_usage_lines",
]

LATE_REASON = "usage_late"


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """A subscription period whose usage is billed now, priced with its plan's components."""

    subscription_id: uuid.UUID
    account_id: uuid.UUID
    plan_id: uuid.UUID
    currency: str
    components: Components
    period: BillingPeriod  # local dates
    start_at: datetime  # the instants of its local midnights
    end_at: datetime
    at: datetime  # when it is billed (the renewal's instant)
    # The subscription ends with this period: no renewal invoice to add the lines to.
    final: bool = False


def closing_window(
    sub: Any,
    plan: Plan,
    timezone: str,
    *,
    ending: bool,
    at: datetime,
    until: datetime | None = None,
) -> UsageWindow | None:
    """The usage window of the period `sub` is leaving, read before the step changes the row.

    `ending` is True when the subscription ends with that period (canceled at period end).
    `until` cuts the window short: the usage so far, billed when the plan changes (or the
    subscription pauses or ends) mid-period. The window starts where an earlier cut ended.
    A trial's usage is not billed; a plan without metered components costs nothing here.
    """
    if sub.status != SubscriptionStatus.ACTIVE.value:
        return None
    if sub.current_period_start is None or sub.current_period_end is None:
        return None
    components = metered_components(plan, sub.currency)
    if not components:
        return None
    period = BillingPeriod(sub.current_period_start, sub.current_period_end)
    start_at, end_at = period_bounds_utc(period, timezone)
    usage_from = getattr(sub, "usage_from", None)
    if usage_from is not None and usage_from > start_at:
        start_at = usage_from
    if until is not None:
        end_at = min(end_at, until)
    if start_at >= end_at:
        return None
    return UsageWindow(
        subscription_id=sub.id,
        account_id=sub.account_id,
        plan_id=plan.id,
        currency=sub.currency,
        components=components,
        period=period,
        start_at=start_at,
        end_at=end_at,
        at=at,
        final=ending,
    )


def tier_details(tiers: Sequence[TierLine]) -> list[dict[str, Any]]:
    return [
        {
            "tier": tier.tier_index + 1,
            "from_unit": plain_decimal(tier.from_unit),
            "up_to": None if tier.up_to is None else plain_decimal(tier.up_to),
            "quantity": plain_decimal(tier.quantity),
            "unit_amount_decimal": plain_decimal(tier.unit_amount_decimal),
            "flat_amount": tier.flat_amount,
            "amount": tier.amount,
        }
        for tier in tiers
    ]


@dataclass(frozen=True, slots=True)
class Priced:
    quantity: Decimal
    events: int
    amount: int
    tiers: tuple[TierLine, ...]


def price(component: MeteredComponent, found: Totals) -> Priced:
    quantity = found.value(component.aggregation)
    amount, _, tiers = price_metric(component.price, quantity)
    return Priced(quantity, found.events, amount, tiers)


def metric_windows(
    subscription_id: uuid.UUID, components: Components, start_at: datetime, end_at: datetime
) -> list[MetricWindow]:
    check_aligned(start_at, end_at)
    return [
        MetricWindow(
            subscription_id,
            metric,
            start_at,
            end_at,
            distinct=component.aggregation is Aggregation.UNIQUE_COUNT,
            latest=component.aggregation is Aggregation.LATEST,
        )
        for metric, component in components.items()
    ]


def _line(component: MeteredComponent, priced: Priced, period: BillingPeriod) -> DraftLine:
    price_ = component.price
    return DraftLine(
        kind="usage",
        description=f"{component.metric} usage ({span(period)})",
        amount=priced.amount,
        quantity=priced.quantity,
        unit_amount_decimal=(
            price_.unit_amount_decimal if price_.model is PricingModel.per_unit else None
        ),
        period_start=period.start,
        period_end=period.end,
        details={
            "metric": component.metric,
            "aggregation": component.aggregation.value,
            "model": price_.model.value,
            "events": priced.events,
            "tiers": tier_details(priced.tiers),
        },
    )


def _billed(priced: Priced) -> dict[str, Any]:
    return {"quantity": plain_decimal(priced.quantity), "amount": priced.amount}


async def usage_lines(
    session: AsyncSession, windows: Sequence[UsageWindow]
) -> dict[uuid.UUID, list[DraftLine]]:
    """Price each window's usage: one invoice line per metric, with tier detail.

    Records every window as billed (in the caller's transaction), so late events for it are
    accepted within the late window and billed later as the difference.
    """
    if not windows:
        return {}
    wanted = [
        mw
        for w in windows
        for mw in metric_windows(w.subscription_id, w.components, w.start_at, w.end_at)
    ]
    found = iter(await totals(session, wanted))
    lines: dict[uuid.UUID, list[DraftLine]] = {}
    billed_periods: list[dict[str, Any]] = []
    for window in windows:
        billed: dict[str, Any] = {}
        for component in window.components.values():
            priced = price(component, next(found))
            lines.setdefault(window.subscription_id, []).append(
                _line(component, priced, window.period)
            )
            billed[component.metric] = _billed(priced)
        billed_periods.append(
            {
                "id": uuid.uuid4(),
                "subscription_id": window.subscription_id,
                "plan_id": window.plan_id,
                "currency": window.currency,
                "period_start": window.period.start,
                "period_end": window.period.end,
                "start_at": window.start_at,
                "end_at": window.end_at,
                "billed": billed,
                "billed_at": window.at,
                # Looked at again once ingestions in flight have ended (see the module doc).
                "pending_since": window.at,
                "next_check_at": window.at,
                "supplementals": 0,
            }
        )
    await bulk_insert(session, UsageBilledPeriod, billed_periods)
    return lines


async def bill_usage_so_far(
    session: AsyncSession, sub: Any, plan: Plan, timezone: str, *, at: datetime
) -> list[DraftLine]:
    """Price the current period's usage up to `at` under `plan` (the plan in force), record it
    as billed, and move the subscription's usage window on to `at`."""
    window = closing_window(sub, plan, timezone, ending=False, at=at, until=at)
    if window is None:
        return []
    lines = (await usage_lines(session, [window])).get(sub.id, [])
    sub.usage_from = at
    return lines


def with_usage_lines(
    drafts: Sequence[DraftInvoice],
    windows: Sequence[UsageWindow],
    lines: Mapping[uuid.UUID, Sequence[DraftLine]],
) -> list[DraftInvoice]:
    """Add usage lines to the subscriptions' renewal drafts.

    A subscription that ends with the period has no renewal draft: its usage gets a final
    invoice of its own (none when it all comes to zero).
    """
    result = list(drafts)
    position = {d.subscription_id: i for i, d in enumerate(result)}
    for window in windows:
        usage = tuple(lines.get(window.subscription_id, ()))
        if not usage:
            continue
        at = position.get(window.subscription_id)
        if at is not None:
            result[at] = replace(result[at], lines=result[at].lines + usage)
        elif any(line.amount for line in usage):
            result.append(
                DraftInvoice(
                    account_id=window.account_id,
                    currency=window.currency,
                    billing_reason="subscription_cycle",
                    created_at=window.at,
                    lines=usage,
                    subscription_id=window.subscription_id,
                    cycle_key=f"usage:{int(window.start_at.timestamp())}",
                    period_start=window.period.start,
                    period_end=window.period.end,
                )
            )
    return result


# --------------------------------------------------------------------------- late usage

_PENDING = """
    SELECT p.id, p.subscription_id, p.plan_id, p.currency, p.period_start, p.period_end,
           p.start_at, p.end_at, p.billed, p.next_check_at, p.supplementals,
           s.account_id, a.timezone
    FROM usage_billed_periods p
    JOIN subscriptions s ON s.id = p.subscription_id
    JOIN accounts a ON a.id = s.account_id
    WHERE p.pending_since IS NOT NULL AND p.next_check_at <= :as_of AND {clock}
    ORDER BY p.next_check_at
    LIMIT :limit
"""


def _pending(test_clock_id: uuid.UUID | None, *, claim: bool) -> Any:
    clock = "a.test_clock_id IS NULL" if test_clock_id is None else "a.test_clock_id = :clock"
    statement = _PENDING.format(clock=clock)
    if claim:
        statement += " FOR UPDATE OF p SKIP LOCKED"
    return text(statement)


async def bill_late_usage(
    engine: AsyncEngine,
    session: AsyncSession,
    *,
    as_of: datetime,
    test_clock_id: uuid.UUID | None,
    limit: int,
    number_prefix: str,
) -> int:
    """Re-price a batch of pending billed periods and invoice what changed; then commit.

    One supplemental invoice per period and local day at most: after one, the period is
    next looked at from the following local midnight.
    """
    params = {"as_of": as_of, "limit": limit, "clock": test_clock_id}
    if not (await session.execute(_pending(test_clock_id, claim=False), params)).first():
        await session.rollback()
        return 0
    await session.rollback()
    await ingestion_barrier(engine)
    claimed = (await session.execute(_pending(test_clock_id, claim=True), params)).all()
    if not claimed:
        await session.rollback()
        return 0
    plans = {
        p.id: p
        for p in await session.scalars(
            select(Plan).where(Plan.id.in_({r.plan_id for r in claimed}))
        )
    }
    components = {r.id: metered_components(plans[r.plan_id], r.currency) for r in claimed}
    wanted = [
        mw
        for r in claimed
        for mw in metric_windows(r.subscription_id, components[r.id], r.start_at, r.end_at)
    ]
    found = iter(await totals(session, wanted))

    drafts: list[DraftInvoice] = []
    updates: list[dict[str, Any]] = []
    for row in claimed:
        period = BillingPeriod(row.period_start, row.period_end)
        billed: dict[str, Any] = {}
        lines: list[DraftLine] = []
        for component in components[row.id].values():
            priced = price(component, next(found))
            billed[component.metric] = _billed(priced)
            before = row.billed.get(component.metric, {"quantity": "0", "amount": 0})
            delta = priced.amount - int(before["amount"])
            if delta:
                lines.append(_late_line(component, priced, before, delta, period))
        next_check_at = row.next_check_at
        if lines:
            today = local_date(as_of, row.timezone)
            next_check_at = local_midnight(today + timedelta(days=1), row.timezone)
            subtotal = sum(line.amount for line in lines)
            if subtotal >= 0:
                drafts.append(
                    DraftInvoice(
                        account_id=row.account_id,
                        currency=row.currency,
                        billing_reason=LATE_REASON,
                        created_at=as_of,
                        lines=tuple(lines),
                        subscription_id=row.subscription_id,
                        cycle_key=f"usage:{int(row.start_at.timestamp())}:{today.isoformat()}",
                        period_start=period.start,
                        period_end=period.end,
                    )
                )
            else:  # late events lowered the charge (a `latest` value, a volume tier)
                await grant(
                    session,
                    account_id=row.account_id,
                    currency=row.currency,
                    amount=-subtotal,
                    reason=f"Usage of {span(period)} re-priced after late events",
                    expires_at=None,
                    at=as_of,
                )
        updates.append(
            {
                "id": row.id,
                "billed": billed,
                "pending_since": None,
                "next_check_at": next_check_at,
                "supplementals": row.supplementals + (1 if lines else 0),
            }
        )
    await bulk_update(session, UsageBilledPeriod, updates)
    invoices = await finalize(session, drafts, number_prefix=number_prefix)  # the number lock
    for invoice in invoices:
        record_event(
            session,
            type="usage.late_invoiced",
            account_id=invoice.account_id,
            data={
                "object": "late_usage",
                "subscription_id": str(invoice.subscription_id),
                "invoice": invoice.model_dump(mode="json"),
            },
            at=as_of,
        )
    await session.commit()
    return len(claimed)


def _late_line(
    component: MeteredComponent,
    priced: Priced,
    before: Mapping[str, Any],
    delta: int,
    period: BillingPeriod,
) -> DraftLine:
    billed_quantity = Decimal(before["quantity"])
    return DraftLine(
        kind="usage",
        description=f"{component.metric} late usage ({span(period)})",
        amount=delta,
        quantity=priced.quantity - billed_quantity,
        period_start=period.start,
        period_end=period.end,
        details={
            "metric": component.metric,
            "aggregation": component.aggregation.value,
            "model": component.price.model.value,
            "events": priced.events,
            "billed_quantity": plain_decimal(billed_quantity),
            "billed_amount": int(before["amount"]),
            "quantity": plain_decimal(priced.quantity),
            "amount": priced.amount,
            "tiers": tier_details(priced.tiers),
        },
    )
