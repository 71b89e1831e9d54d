"""payments, refunds, credit notes, the sandbox gateway's ledger and dunning

Revision ID: 0007
Revises: 0008
Create Date: 2026-11-28 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUS = "status IN ('pending', 'succeeded', 'failed', 'unknown')"
_IN_FLIGHT = sa.text("status IN ('pending', 'unknown')")


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("invoice_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("payment_method_id", sa.UUID(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("gateway_transaction_id", sa.String(length=255), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("failure_message", sa.String(length=500), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_STATUS, name=op.f("ck_payments_status")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount",
            name=op.f("ck_payments_amount_refunded"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_payments_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_payments_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["payment_method_id"],
            ["payment_methods.id"],
            name=op.f("fk_payments_payment_method_id_payment_methods"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payments_idempotency_key")),
        sa.UniqueConstraint("invoice_id", "attempt_number", name="uq_payments_invoice_attempt"),
    )
    op.create_index(
        "uq_payments_one_in_flight",
        "payments",
        ["invoice_id"],
        unique=True,
        postgresql_where=_IN_FLIGHT,
    )
    op.create_index("ix_payments_account_id_created_at", "payments", ["account_id", "created_at"])
    op.create_index("ix_payments_created_at_id", "payments", ["created_at", "id"])
    op.create_index(
        "ix_payments_next_retry_at",
        "payments",
        ["next_retry_at"],
        postgresql_where=sa.text("next_retry_at IS NOT NULL"),
    )
    op.create_index(
        "ix_payments_in_flight_updated_at",
        "payments",
        ["updated_at"],
        postgresql_where=_IN_FLIGHT,
    )

    op.create_table(
        "refunds",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("payment_id", sa.UUID(), nullable=False),
        sa.Column("invoice_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("gateway_refund_id", sa.String(length=255), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_STATUS, name=op.f("ck_refunds_status")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_refunds_amount_positive")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_refunds_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_refunds_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_refunds_idempotency_key")),
    )
    op.create_index("ix_refunds_payment_id", "refunds", ["payment_id"])

    op.create_table(
        "credit_notes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("invoice_id", sa.UUID(), nullable=False),
        sa.Column("payment_id", sa.UUID(), nullable=False),
        sa.Column("refund_id", sa.UUID(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_credit_notes_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_credit_notes_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_credit_notes_payment_id_payments")
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_credit_notes_refund_id_refunds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_notes")),
        sa.UniqueConstraint("refund_id", name=op.f("uq_credit_notes_refund_id")),
    )
    op.create_index(
        "ix_credit_notes_account_id_created_at", "credit_notes", ["account_id", "created_at"]
    )

    op.create_table(
        "sandbox_charges",
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("charge_transaction_id", sa.String(length=64), nullable=True),
        sa.Column("payment_method", sa.String(length=255), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_sandbox_charges")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_sandbox_charges_transaction_id")),
    )

    op.create_table(
        "stripe_webhook_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_webhook_events")),
    )

    op.create_table(
        "dunning_cases",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("anchor_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_step_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.String(length=16), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_dunning_cases_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dunning_cases")),
    )
    op.create_index(
        "uq_dunning_cases_one_open",
        "dunning_cases",
        ["account_id"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_index(
        "ix_dunning_cases_next_step_at",
        "dunning_cases",
        ["next_step_at"],
        postgresql_where=sa.text("closed_at IS NULL"),
    )

    op.create_table(
        "dunning_steps",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("case_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("days_overdue", sa.Integer(), nullable=False),
        sa.Column("invoice_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_dunning_steps_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["dunning_cases.id"], name=op.f("fk_dunning_steps_case_id_dunning_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dunning_steps")),
        sa.UniqueConstraint("case_id", "step", name="uq_dunning_steps_case_step"),
    )
    op.create_index(
        "ix_dunning_steps_account_id_created_at", "dunning_steps", ["account_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("dunning_steps")
    op.drop_table("dunning_cases")
    op.drop_table("stripe_webhook_events")
    op.drop_table("sandbox_charges")
    op.drop_table("credit_notes")
    op.drop_table("refunds")
    op.drop_table("payments")
