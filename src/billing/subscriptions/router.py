from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from billing.auth.keys import Principal
from billing.auth.permissions import Permission
from billing.core.lifecycle import SubscriptionStatus
from billing.deps import ClockDep, RuntimeDep, SessionDep, require
from billing.http.pagination import ListResponse, PageDep
from billing.subscriptions import changes, pause, service
from billing.subscriptions.schemas import (
    HistoryRead,
    PauseRequest,
    SubscriptionCreate,
    SubscriptionRead,
    SubscriptionUpdate,
)

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])

SubscriptionsRead = Annotated[Principal, Depends(require(Permission.SUBSCRIPTIONS_READ))]
SubscriptionsWrite = Annotated[Principal, Depends(require(Permission.SUBSCRIPTIONS_WRITE))]


def actor(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe an account to a plan (the first invoice is finalized at once)",
)
async def create_subscription(
    body: SubscriptionCreate,
    session: SessionDep,
    clock: ClockDep,
    runtime: RuntimeDep,
    principal: SubscriptionsWrite,
) -> SubscriptionRead:
    return await service.create_subscription(
        session,
        data=body,
        clock=clock,
        actor=actor(principal),
        number_prefix=runtime.settings.invoice_number_prefix,
    )


@router.get("", summary="List subscriptions, newest first")
async def list_subscriptions(
    session: SessionDep,
    page: PageDep,
    _: SubscriptionsRead,
    account_id: uuid.UUID | None = None,
    status: SubscriptionStatus | None = None,
    plan_id: uuid.UUID | None = None,
) -> ListResponse[SubscriptionRead]:
    subs, has_more = await service.list_subscriptions(
        session, page=page, account_id=account_id, status=status, plan_id=plan_id
    )
    return ListResponse(data=subs, has_more=has_more)


@router.get("/{sub_id}", summary="Get a subscription")
async def get_subscription(
    sub_id: uuid.UUID, session: SessionDep, _: SubscriptionsRead
) -> SubscriptionRead:
    return await service.get_subscription(session, sub_id=sub_id)


@router.get("/{sub_id}/history", summary="Every change of a subscription, oldest first")
async def subscription_history(
    sub_id: uuid.UUID, session: SessionDep, _: SubscriptionsRead
) -> ListResponse[HistoryRead]:
    rows = await service.history(session, sub_id=sub_id)
    return ListResponse(data=[HistoryRead.model_validate(r) for r in rows], has_more=False)


@router.patch(
    "/{sub_id}",
    summary="Change plan and/or quantity: now with proration, or at the period end",
)
async def change_subscription(
    sub_id: uuid.UUID,
    body: SubscriptionUpdate,
    session: SessionDep,
    clock: ClockDep,
    runtime: RuntimeDep,
    principal: SubscriptionsWrite,
) -> SubscriptionRead:
    return await changes.change_subscription(
        session,
        sub_id=sub_id,
        data=body,
        clock=clock,
        actor=actor(principal),
        number_prefix=runtime.settings.invoice_number_prefix,
    )


@router.delete("/{sub_id}/pending-change", summary="Call off a change scheduled for period end")
async def cancel_pending_change(
    sub_id: uuid.UUID, session: SessionDep, clock: ClockDep, principal: SubscriptionsWrite
) -> SubscriptionRead:
    return await changes.cancel_pending_change(
        session, sub_id=sub_id, clock=clock, actor=actor(principal)
    )


@router.post("/{sub_id}/pause", summary="Pause billing now (unused time credited) or at period end")
async def pause_subscription(
    sub_id: uuid.UUID,
    session: SessionDep,
    clock: ClockDep,
    runtime: RuntimeDep,
    principal: SubscriptionsWrite,
    body: PauseRequest | None = None,
) -> SubscriptionRead:
    return await pause.pause_subscription(
        session,
        sub_id=sub_id,
        data=body or PauseRequest(),
        clock=clock,
        actor=actor(principal),
        pause_max_days=runtime.settings.pause_max_days,
        number_prefix=runtime.settings.invoice_number_prefix,
    )


@router.post("/{sub_id}/resume", summary="Resume now: a new period starts and is invoiced")
async def resume_subscription(
    sub_id: uuid.UUID,
    session: SessionDep,
    clock: ClockDep,
    runtime: RuntimeDep,
    principal: SubscriptionsWrite,
) -> SubscriptionRead:
    return await pause.resume_subscription(
        session,
        sub_id=sub_id,
        clock=clock,
        actor=actor(principal),
        number_prefix=runtime.settings.invoice_number_prefix,
    )


@router.delete(
    "/{sub_id}",
    summary="Cancel: at period end by default, or now (optionally crediting unused time)",
)
async def cancel_subscription(
    sub_id: uuid.UUID,
    session: SessionDep,
    clock: ClockDep,
    runtime: RuntimeDep,
    principal: SubscriptionsWrite,
    immediately: Annotated[bool, Query(description="End the subscription now.")] = False,
    prorate: Annotated[
        bool, Query(description="With immediately: credit the unused part of the period.")
    ] = False,
) -> SubscriptionRead:
    return await service.cancel_subscription(
        session,
        sub_id=sub_id,
        immediately=immediately,
        prorate=prorate,
        clock=clock,
        actor=actor(principal),
        number_prefix=runtime.settings.invoice_number_prefix,
    )
