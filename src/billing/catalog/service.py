"""Plan catalog use cases: create plans and versions, (de)activate, look up, resolve.

Every change commits here, together with its `plan.*` event (transactional outbox).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Plan
from billing.catalog.schemas import (
    PlanCreate,
    PlanRead,
    PlanVersionCreate,
    PriceIn,
    interval_errors,
    plan_errors,
    price_list_errors,
)
from billing.clock import Clock
from billing.core.periods import Interval
from billing.events.outbox import record_event
from billing.http.errors import Conflict, InvalidState, NotFound, ValidationFailed
from billing.http.pagination import PageParams, paginate_direct

__all__ = [
    "AVERAGE_DAYS_PER_MONTH",
    "create_plan",
    "create_version",
    "get_plan_by_ref",
    "list_plans",
    "list_versions",
    "monthly_amount",
    "months_per_period",
    "resolve_plan_for_subscription",
    "set_active",
]

# The Gregorian year averages 365.2425 days, so a month averages 365.2425 / 12 = 30.436875.
AVERAGE_DAYS_PER_MONTH = Fraction(146097, 4800)
_VERSION_CONSTRAINT = "uq_plans_code_version"
_PLANS = Plan.__table__


# --------------------------------------------------------------------------- changes


async def create_plan(session: AsyncSession, *, data: PlanCreate, clock: Clock) -> Plan:
    """Create version 1 of a new plan code."""
    _raise_for(
        plan_errors(interval=data.interval, interval_count=data.interval_count, prices=data.prices)
    )
    latest = await _latest(session, data.code)
    if latest is not None:
        raise _code_taken(latest.code, latest.version)
    now = clock.now()
    plan = Plan(
        id=uuid.uuid4(),
        code=data.code,
        version=1,
        name=data.name,
        description=data.description,
        interval=data.interval.value,
        interval_count=data.interval_count,
        trial_days=data.trial_days,
        active=data.active,
        prices=_price_documents(data.prices),
        metadata_=data.metadata,
        created_at=now,
    )
    session.add(plan)
    _record(session, "plan.created", plan, now)
    try:
        await session.commit()
    except IntegrityError as exc:
        # Another request created the same code between our check and our insert.
        await session.rollback()
        if not _is_version_clash(exc):
            raise
        raise _code_taken(data.code, None) from exc
    return plan


async def create_version(
    session: AsyncSession, *, code: str, data: PlanVersionCreate, clock: Clock
) -> Plan:
    """Create version N+1 of `code`: given fields replace, omitted ones are copied from N."""
    if data.prices is not None:
        _raise_for(price_list_errors(data.prices))
    latest = await _lock_latest(session, code)
    given = data.model_fields_set
    interval = data.interval if data.interval is not None else latest.interval_unit
    interval_count = (
        data.interval_count if data.interval_count is not None else latest.interval_count
    )
    _raise_for(interval_errors(interval, interval_count))
    now = clock.now()
    plan = Plan(
        id=uuid.uuid4(),
        code=latest.code,
        version=latest.version + 1,
        name=data.name if data.name is not None else latest.name,
        description=data.description if "description" in given else latest.description,
        interval=interval.value,
        interval_count=interval_count,
        trial_days=data.trial_days if data.trial_days is not None else latest.trial_days,
        # A version is made to be sold: it is active unless asked otherwise, even when the
        # previous version was deactivated.
        active=data.active if data.active is not None else True,
        prices=_price_documents(data.prices) if data.prices is not None else latest.prices,
        metadata_=data.metadata if data.metadata is not None else latest.metadata_,
        created_at=now,
    )
    session.add(plan)
    _record(session, "plan.created", plan, now)
    try:
        await session.commit()
    except IntegrityError as exc:
        # The lock on the latest version serializes writers; this is the last line of defence.
        await session.rollback()
        if not _is_version_clash(exc):
            raise
        raise Conflict(
            f"Another version of plan {code!r} was created at the same time. Retry the request.",
            param="code",
        ) from exc
    return plan


async def set_active(
    session: AsyncSession, *, plan_id: uuid.UUID, active: bool, clock: Clock
) -> Plan:
    """(De)activate one version. Inactive versions are hidden from new subscriptions only."""
    plan = await session.get(Plan, plan_id, with_for_update=True)
    if plan is None:
        raise NotFound(f"No plan {plan_id}.", param="plan_id")
    if plan.active != active:
        plan.active = active
        _record(session, "plan.updated", plan, clock.now())
        await session.commit()
    return plan


# --------------------------------------------------------------------------- reads


async def get_plan_by_ref(session: AsyncSession, *, ref: str) -> Plan:
    """A UUID is a version's id; anything else is a code, meaning its latest version."""
    try:
        plan_id = uuid.UUID(ref)
    except ValueError:
        plan = await _latest(session, ref)
    else:
        plan = await session.get(Plan, plan_id)
    if plan is None:
        raise NotFound(f"No plan with id or code {ref!r}.", param="plan_ref")
    return plan


async def list_plans(
    session: AsyncSession,
    *,
    page: PageParams,
    active: bool | None = None,
    code: str | None = None,
) -> tuple[list[PlanRead], bool]:
    """Plan versions, newest first, as API shapes (plain rows: no ORM objects)."""
    where: dict[str, Any] = {}
    if active is not None:
        where["active"] = active
    if code is not None:
        where["code"] = code
    rows, has_more = await paginate_direct(session, _PLANS, page, where=where)
    return [PlanRead.model_validate(dict(row)) for row in rows], has_more


async def list_versions(session: AsyncSession, *, code: str) -> list[Plan]:
    """Every version of `code`, oldest first."""
    stmt = select(Plan).where(Plan.code == code).order_by(Plan.version)
    plans = list((await session.scalars(stmt)).all())
    if not plans:
        raise NotFound(f"No plan with code {code!r}.", param="code")
    return plans


async def resolve_plan_for_subscription(
    session: AsyncSession, *, plan_id: uuid.UUID | None, plan_code: str | None
) -> Plan:
    """The version a new subscription gets: that id (if active) or a code's latest active one."""
    if (plan_id is None) == (plan_code is None):
        raise ValidationFailed("Give either plan_id or plan_code (exactly one).", param="plan")
    if plan_id is not None:
        plan = await session.get(Plan, plan_id)
        if plan is None:
            raise NotFound(f"No plan {plan_id}.", param="plan_id")
        if not plan.active:
            raise InvalidState(
                f"Plan {plan.code!r} version {plan.version} is inactive: it cannot be used for "
                "new subscriptions. Activate it, or pass plan_code to get the latest active "
                "version.",
                param="plan_id",
            )
        return plan
    assert plan_code is not None  # by the exactly-one check above
    plan = await session.scalar(_latest_stmt(plan_code).where(Plan.active.is_(True)).limit(1))
    if plan is None:
        raise NotFound(f"Plan {plan_code!r} has no active version.", param="plan_code")
    return plan


# --------------------------------------------------------------------------- pure math


def months_per_period(interval: Interval, interval_count: int) -> Fraction:
    """Length of one billing period in average months (1 year = 12, 1 day = 1/30.436875)."""
    match Interval(interval):
        case Interval.DAY:
            return interval_count / AVERAGE_DAYS_PER_MONTH
        case Interval.WEEK:
            return 7 * interval_count / AVERAGE_DAYS_PER_MONTH
        case Interval.MONTH:
            return Fraction(interval_count)
        case Interval.YEAR:
            return Fraction(12 * interval_count)


def monthly_amount(plan: Plan, currency: str) -> Fraction:
    """The recurring per-seat amount of `plan` in `currency`, per average month (exact).

    Compares plans with different intervals (upgrade or downgrade?). Usage is not included.
    Raises ValueError if the plan has no price in `currency`.
    """
    price = plan.price_for(currency)
    if price is None:
        raise ValueError(f"plan {plan.code!r} v{plan.version} has no {currency} price")
    return price.unit_amount / months_per_period(plan.interval_unit, plan.interval_count)


# --------------------------------------------------------------------------- helpers


def _raise_for(errors: Sequence[tuple[str, str]]) -> None:
    """One 422 naming every offending field (the first is `param`)."""
    if not errors:
        return
    summary = "; ".join(f"{path}: {message}" for path, message in errors[:5])
    raise ValidationFailed(
        f"Invalid request: {summary}",
        param=errors[0][0],
        extra={"errors": [{"field": path, "message": message} for path, message in errors]},
    )


def _price_documents(prices: Sequence[PriceIn]) -> list[dict[str, object]]:
    # The stored document is exactly what the API returns: canonical strings for decimals.
    return [price.model_dump(mode="json") for price in prices]


def _latest_stmt(code: str) -> Select[Plan]:
    return select(Plan).where(Plan.code == code).order_by(Plan.version.desc())


async def _latest(session: AsyncSession, code: str) -> Plan | None:
    return await session.scalar(_latest_stmt(code).limit(1))


async def _lock_latest(session: AsyncSession, code: str) -> Plan:
    """Lock the latest version of `code`, so concurrent new versions queue up behind us."""
    while True:
        latest = await session.scalar(
            _latest_stmt(code).limit(1).with_for_update().execution_options(populate_existing=True)
        )
        if latest is None:
            raise NotFound(f"No plan with code {code!r}.", param="code")
        # A statement that waited for the lock still returns the row it picked before waiting
        # (READ COMMITTED); if a newer version committed meanwhile, lock that one instead.
        newest = await session.scalar(select(func.max(Plan.version)).where(Plan.code == code))
        if newest == latest.version:
            return latest


def _code_taken(code: str, latest_version: int | None) -> Conflict:
    version = f" (latest version {latest_version})" if latest_version is not None else ""
    return Conflict(
        f"A plan with code {code!r} exists already{version}. Plan versions are immutable: "
        f"POST /v1/plans/{code}/versions to create a new version.",
        param="code",
    )


def _is_version_clash(exc: IntegrityError) -> bool:
    # asyncpg's error (the DBAPI error's cause) names the violated constraint.
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return getattr(cause, "constraint_name", None) == _VERSION_CONSTRAINT


def _record(session: AsyncSession, type: str, plan: Plan, at: datetime) -> None:
    record_event(
        session,
        type=type,
        account_id=None,
        data=PlanRead.model_validate(plan).model_dump(mode="json"),
        at=at,
    )
