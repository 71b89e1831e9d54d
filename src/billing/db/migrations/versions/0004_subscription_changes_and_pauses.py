"""subscription changes and pauses

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 06:29:03.796207
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "credit_entries",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
    )
    op.add_column(
        "subscription_history",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
    )
    op.add_column(
        "subscriptions",
        sa.Column("pending_change", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "subscriptions",
        sa.Column("pause_at_period_end", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "subscriptions", sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "subscriptions", sa.Column("resumes_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("subscription_history", "seq")
    op.drop_column("credit_entries", "seq")
    op.drop_column("subscriptions", "resumes_at")
    op.drop_column("subscriptions", "paused_at")
    op.drop_column("subscriptions", "pause_at_period_end")
    op.drop_column("subscriptions", "pending_change")
