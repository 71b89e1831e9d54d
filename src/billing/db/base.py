"""Declarative base shared by every domain's models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, MetaData
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        uuid.UUID: UUID(as_uuid=True),
        dict[str, Any]: JSONB,
    }


def import_all_models() -> None:
    """Import every module that declares tables, so Base.metadata is complete."""
    from billing.accounts import models as _accounts  # noqa: F401
    from billing.auth import models as _auth  # noqa: F401
    from billing.catalog import models as _catalog  # noqa: F401
    from billing.clock import models as _clock  # noqa: F401
    from billing.credits import models as _credits  # noqa: F401
    from billing.dunning import models as _dunning  # noqa: F401
    from billing.events import models as _events  # noqa: F401
    from billing.http import idempotency as _idempotency  # noqa: F401
    from billing.invoicing import models as _invoicing  # noqa: F401
    from billing.notifications import models as _notifications  # noqa: F401
    from billing.payments import models as _payments  # noqa: F401
    from billing.subscriptions import models as _subscriptions  # noqa: F401
    from billing.tax import models as _tax  # noqa: F401
    from billing.usage import models as _usage  # noqa: F401
    from billing.webhooks import models as _webhooks  # noqa: F401
    from billing.worker import models as _worker  # noqa: F401
