from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from billing.auth.keys import Principal
from billing.auth.permissions import Permission
from billing.clock import service
from billing.clock.advance import advance_clock
from billing.clock.schemas import TestClockAdvance, TestClockCreate, TestClockRead
from billing.deps import ClockDep, RuntimeDep, SessionDep, require
from billing.http.errors import NotFound
from billing.runtime import Runtime

router = APIRouter(prefix="/v1/test-clocks", tags=["test clocks"])

TestClocksWrite = Annotated[Principal, Depends(require(Permission.TEST_CLOCKS_WRITE))]


def _enabled(runtime: Runtime) -> None:
    if not runtime.settings.test_clocks_active:
        raise NotFound("Test clocks are disabled here (TEST_CLOCKS_ENABLED=false).")


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a test clock")
async def create_clock(
    body: TestClockCreate,
    session: SessionDep,
    runtime: RuntimeDep,
    clock: ClockDep,
    _: TestClocksWrite,
) -> TestClockRead:
    _enabled(runtime)
    created = await service.create_clock(
        session, frozen_time=body.frozen_time, name=body.name, clock=clock
    )
    return TestClockRead.model_validate(created)


@router.get("/{clock_id}", summary="Get a test clock")
async def get_clock(
    clock_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep, _: TestClocksWrite
) -> TestClockRead:
    _enabled(runtime)
    return TestClockRead.model_validate(await service.get_clock(session, clock_id=clock_id))


@router.post(
    "/{clock_id}/advance",
    summary="Move the clock forward, running every due billing step in time order",
)
async def advance(
    clock_id: uuid.UUID, body: TestClockAdvance, runtime: RuntimeDep, _: TestClocksWrite
) -> TestClockRead:
    _enabled(runtime)
    advanced = await advance_clock(runtime, clock_id=clock_id, target=body.frozen_time)
    return TestClockRead.model_validate(advanced)
