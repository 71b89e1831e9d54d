"""Usage endpoints. The write paths read the raw body and parse it themselves (one pass over
plain dicts, see `schemas`); their documented request bodies are the same models."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from starlette.responses import Response

from billing.auth.keys import Principal
from billing.auth.permissions import Permission
from billing.deps import ClockDep, RuntimeDep, SessionDep, require
from billing.usage import service
from billing.usage.schemas import (
    UsageBatchCreate,
    UsageBatchRead,
    UsageEventCreate,
    UsageEventRead,
    UsageSummaryRead,
    parse_batch,
    parse_event_json,
)

router = APIRouter(prefix="/v1", tags=["usage"])

UsageWrite = Annotated[Principal, Depends(require(Permission.USAGE_WRITE))]
UsageRead = Annotated[Principal, Depends(require(Permission.USAGE_READ))]


def _body(model: type[UsageEventCreate] | type[UsageBatchCreate]) -> dict[str, Any]:
    # The models have no nested definitions but the event: inline it, so the schema has no
    # reference to resolve.
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    if "events" in schema.get("properties", {}):
        schema["properties"]["events"]["items"] = definitions["UsageEventCreate"]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.post(
    "/usage/batch",
    summary="Record up to 10,000 usage events; each is accepted, a duplicate, or rejected",
    response_model=UsageBatchRead,
    openapi_extra=_body(UsageBatchCreate),
)
async def record_batch(
    request: Request, session: SessionDep, runtime: RuntimeDep, clock: ClockDep, _: UsageWrite
) -> Response:
    events = parse_batch(await request.body())
    answer = await service.record_batch(
        session,
        events,
        clock=clock,
        future_tolerance=runtime.settings.usage_future_tolerance,
        late_days=runtime.settings.usage_late_days,
    )
    return Response(orjson.dumps(answer), media_type="application/json")


@router.post(
    "/usage",
    status_code=status.HTTP_201_CREATED,
    summary="Record one usage event (201 recorded, 200 already recorded)",
    response_model=UsageEventRead,
    openapi_extra=_body(UsageEventCreate),
)
async def record_event(
    request: Request, session: SessionDep, runtime: RuntimeDep, clock: ClockDep, _: UsageWrite
) -> Response:
    event = parse_event_json(await request.body())
    recorded = await service.record_one(
        session,
        event,
        clock=clock,
        future_tolerance=runtime.settings.usage_future_tolerance,
        late_days=runtime.settings.usage_late_days,
    )
    code = status.HTTP_201_CREATED if recorded.status == "accepted" else status.HTTP_200_OK
    return JSONResponse(recorded.model_dump(mode="json"), status_code=code)


@router.get(
    "/subscriptions/{sub_id}/usage",
    summary="A period's usage per metric, and the charge it comes to now",
)
async def usage_summary(
    sub_id: uuid.UUID,
    session: SessionDep,
    _: UsageRead,
    period: Annotated[
        str,
        Query(
            description="`current`, `previous`, or `<start>/<end>`: local dates in the "
            "account's time zone, the end excluded (`2026-03-01/2026-04-01`).",
        ),
    ] = "current",
) -> UsageSummaryRead:
    return await service.usage_summary(session, sub_id=sub_id, period=period)
