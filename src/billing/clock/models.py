from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base


class TestClock(Base):
    """A simulated "now" for the accounts attached to it; advanced only through the API."""

    __tablename__ = "test_clocks"
    __test__ = False  # not a pytest test class

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str | None] = mapped_column(String(200))
    frozen_time: Mapped[datetime]
    created_at: Mapped[datetime]
