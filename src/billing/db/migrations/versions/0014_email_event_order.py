"""email messages keep their event's seq: sent in the order of their events

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-21 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("email_messages", sa.Column("event_seq", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("email_messages", "event_seq")
