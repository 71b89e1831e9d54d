from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class TestClockCreate(BaseModel):
    __test__ = False
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"frozen_time": "2026-01-31T12:00:00Z", "name": "demo"}]},
    )

    frozen_time: AwareDatetime
    name: str | None = Field(default=None, max_length=200)


class TestClockAdvance(BaseModel):
    __test__ = False
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"frozen_time": "2026-03-01T00:00:00Z"}]}
    )

    frozen_time: AwareDatetime


class TestClockRead(BaseModel):
    __test__ = False
    model_config = ConfigDict(from_attributes=True)

    object: str = "test_clock"
    id: uuid.UUID
    name: str | None
    frozen_time: datetime
    created_at: datetime
