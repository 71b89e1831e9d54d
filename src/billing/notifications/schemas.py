from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class EmailRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: Literal["email"] = "email"
    id: uuid.UUID
    account_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    template: str
    recipient: str
    subject: str
    # queued | sent | logged (no SMTP server configured) | failed (gave up; see last_error)
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None
    created_at: datetime
