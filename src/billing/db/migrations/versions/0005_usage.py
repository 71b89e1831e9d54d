"""usage metering

Revision ID: 0005
Revises: 0009
Create Date: 2026-11-21 07:00:00.000000

Chained on 0003 until the subscription changes migration (0004) is on this branch; it is
re-chained on 0004 when both are merged.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("subscription_id", sa.UUID(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Numeric(32, 12), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("properties", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("unique_value", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_events")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_usage_events_idempotency_key")),
    )
    op.create_table(
        "usage_rollups",
        sa.Column("subscription_id", sa.UUID(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Numeric(), nullable=False),
        sa.Column("peak", sa.Numeric(32, 12), nullable=False),
        sa.Column("latest_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latest_id", sa.BigInteger(), nullable=False),
        sa.Column("latest_value", sa.Numeric(32, 12), nullable=False),
        sa.PrimaryKeyConstraint(
            "subscription_id", "metric", "bucket", name=op.f("pk_usage_rollups")
        ),
    )
    op.create_table(
        "usage_rollup_values",
        sa.Column("subscription_id", sa.UUID(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "subscription_id", "metric", "bucket", "value", name=op.f("pk_usage_rollup_values")
        ),
    )
    op.create_table(
        "usage_rollup_state",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("rolled_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_rollup_state")),
    )
    op.execute("INSERT INTO usage_rollup_state (id, rolled_through) VALUES (1, 0)")
    op.create_table(
        "usage_billed_periods",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("subscription_id", sa.UUID(), nullable=False),
        sa.Column("plan_id", sa.UUID(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("billed", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("billed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("supplementals", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_usage_billed_periods_plan_id_plans")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_usage_billed_periods_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_billed_periods")),
        sa.UniqueConstraint(
            "subscription_id", "period_start", name="uq_usage_billed_periods_period"
        ),
    )
    op.create_index(
        "ix_usage_billed_periods_due",
        "usage_billed_periods",
        ["next_check_at"],
        unique=False,
        postgresql_where=sa.text("pending_since IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_usage_billed_periods_due",
        table_name="usage_billed_periods",
        postgresql_where=sa.text("pending_since IS NOT NULL"),
    )
    op.drop_table("usage_billed_periods")
    op.drop_table("usage_rollup_state")
    op.drop_table("usage_rollup_values")
    op.drop_table("usage_rollups")
    op.drop_table("usage_events")
