"""notifications: email messages and the outbox cursor of the email fan-out

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_messages",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_email_messages_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_messages")),
        sa.UniqueConstraint("event_id", "template", name="uq_email_messages_event_id_template"),
    )
    op.create_index(
        "ix_email_messages_due",
        "email_messages",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_email_messages_account_id_created_at",
        "email_messages",
        ["account_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "notification_cursors",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("gap_seq", sa.BigInteger(), nullable=True),
        sa.Column("gap_xmax", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_notification_cursors")),
    )
    # Start after the events that already exist: deploying this must not mail the past.
    op.execute(
        "INSERT INTO notification_cursors (name, last_seq) "
        "SELECT 'email', COALESCE(MAX(seq), 0) FROM events"
    )


def downgrade() -> None:
    op.drop_table("notification_cursors")
    op.drop_index("ix_email_messages_account_id_created_at", table_name="email_messages")
    op.drop_index(
        "ix_email_messages_due",
        table_name="email_messages",
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.drop_table("email_messages")
