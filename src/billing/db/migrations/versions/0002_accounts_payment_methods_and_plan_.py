"""accounts payment methods and plan catalog

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 06:09:14.996824
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tax_exempt", sa.String(length=16), nullable=False),
        sa.Column("tax_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("address", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("gateway_customer_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_index("ix_accounts_created_at_id", "accounts", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_accounts_email_lower", "accounts", [sa.literal_column("lower(email)")], unique=False
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("interval_count", sa.Integer(), nullable=False),
        sa.Column("trial_days", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("prices", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "interval IN ('day', 'week', 'month', 'year')", name=op.f("ck_plans_interval_unit")
        ),
        sa.CheckConstraint(
            "interval_count BETWEEN 1 AND 365", name=op.f("ck_plans_interval_count_range")
        ),
        sa.CheckConstraint("trial_days BETWEEN 0 AND 730", name=op.f("ck_plans_trial_days_range")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_plans_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("code", "version", name="uq_plans_code_version"),
    )
    op.create_index("ix_plans_created_at_id", "plans", ["created_at", "id"], unique=False)
    op.create_table(
        "payment_methods",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("gateway_payment_method_id", sa.String(length=255), nullable=False),
        sa.Column("brand", sa.String(length=32), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("exp_month", sa.SmallInteger(), nullable=False),
        sa.Column("exp_year", sa.SmallInteger(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detached_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_payment_methods_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_methods")),
    )
    op.create_index(
        "ix_payment_methods_account_id_created_at",
        "payment_methods",
        ["account_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "uq_payment_methods_one_default",
        "payment_methods",
        ["account_id"],
        unique=True,
        postgresql_where=sa.text("is_default AND detached_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_payment_methods_one_default",
        table_name="payment_methods",
        postgresql_where=sa.text("is_default AND detached_at IS NULL"),
    )
    op.drop_index("ix_payment_methods_account_id_created_at", table_name="payment_methods")
    op.drop_table("payment_methods")
    op.drop_index("ix_plans_created_at_id", table_name="plans")
    op.drop_table("plans")
    op.drop_index("ix_accounts_email_lower", table_name="accounts")
    op.drop_index("ix_accounts_created_at_id", table_name="accounts")
    op.drop_table("accounts")
