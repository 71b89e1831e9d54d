"""usage billed in parts

Revision ID: 0010
Revises: 0005
Create Date: 2026-11-21 07:19:04.132881
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "subscriptions", sa.Column("usage_from", sa.DateTime(timezone=True), nullable=True)
    )
    op.drop_constraint(
        op.f("uq_usage_billed_periods_period"), "usage_billed_periods", type_="unique"
    )
    op.create_unique_constraint(
        "uq_usage_billed_periods_window", "usage_billed_periods", ["subscription_id", "start_at"]
    )


def downgrade() -> None:
    op.drop_constraint("uq_usage_billed_periods_window", "usage_billed_periods", type_="unique")
    op.create_unique_constraint(
        op.f("uq_usage_billed_periods_period"),
        "usage_billed_periods",
        ["subscription_id", "period_start"],
        postgresql_nulls_not_distinct=False,
    )
    op.drop_column("subscriptions", "usage_from")
