"""billing engine

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 06:12:58.572935
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A finalized invoice (any status but draft) is a legal document: its amounts, identity and
# lines never change; corrections are new documents. Payment state may still move on.
IMMUTABILITY = [
    """
    CREATE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            IF OLD.status <> 'draft' THEN
                RAISE EXCEPTION 'invoice % is finalized and cannot be deleted', OLD.id
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN OLD;
        END IF;
        IF OLD.status <> 'draft' AND (
            NEW.status = 'draft'
            OR (NEW.number, NEW.account_id, NEW.subscription_id, NEW.currency,
                NEW.billing_reason, NEW.cycle_key, NEW.period_start, NEW.period_end,
                NEW.subtotal, NEW.tax, NEW.total, NEW.credits_applied, NEW.amount_due,
                NEW.created_at, NEW.finalized_at)
               IS DISTINCT FROM
               (OLD.number, OLD.account_id, OLD.subscription_id, OLD.currency,
                OLD.billing_reason, OLD.cycle_key, OLD.period_start, OLD.period_end,
                OLD.subtotal, OLD.tax, OLD.total, OLD.credits_applied, OLD.amount_due,
                OLD.created_at, OLD.finalized_at)
        ) THEN
            RAISE EXCEPTION 'invoice % is finalized: its amounts and lines cannot change', OLD.id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_guard()
    """,
    """
    CREATE FUNCTION invoice_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        invoice_status text;
    BEGIN
        SELECT status INTO invoice_status FROM invoices WHERE id = OLD.invoice_id;
        IF invoice_status IS DISTINCT FROM 'draft' THEN
            RAISE EXCEPTION 'lines of a finalized invoice cannot be changed or removed'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF TG_OP = 'UPDATE' AND NEW.invoice_id <> OLD.invoice_id THEN
            RAISE EXCEPTION 'a line cannot move to another invoice'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END $$
    """,
    """
    CREATE TRIGGER invoice_lines_immutable BEFORE UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION invoice_lines_guard()
    """,
    # Inserts are checked once per statement (a batch of thousands of lines at a time).
    """
    CREATE FUNCTION invoice_lines_insert_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (
            SELECT 1 FROM new_lines l LEFT JOIN invoices i ON i.id = l.invoice_id
            WHERE i.status IS DISTINCT FROM 'draft'
        ) THEN
            RAISE EXCEPTION 'lines cannot be added to a finalized invoice'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER invoice_lines_insert_immutable AFTER INSERT ON invoice_lines
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_lines_insert_guard()
    """,
]
DROP_IMMUTABILITY = [
    "DROP TRIGGER invoice_lines_insert_immutable ON invoice_lines",
    "DROP FUNCTION invoice_lines_insert_guard()",
    "DROP TRIGGER invoice_lines_immutable ON invoice_lines",
    "DROP FUNCTION invoice_lines_guard()",
    "DROP TRIGGER invoices_immutable ON invoices",
    "DROP FUNCTION invoices_guard()",
]


def upgrade() -> None:
    op.create_table(
        "invoice_number_counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_invoice_number_counters")),
    )
    op.create_table(
        "test_clocks",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("frozen_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_clocks")),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("plan_id", sa.UUID(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("cycle_anchor", sa.Date(), nullable=True),
        sa.Column("anchor_day", sa.SmallInteger(), nullable=True),
        sa.Column("period_index", sa.Integer(), nullable=False),
        sa.Column("current_period_start", sa.Date(), nullable=True),
        sa.Column("current_period_end", sa.Date(), nullable=True),
        sa.Column("trial_start", sa.Date(), nullable=True),
        sa.Column("trial_end", sa.Date(), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_action_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_subscriptions_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_subscriptions_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(
        "ix_subscriptions_account_id_created_at",
        "subscriptions",
        ["account_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_subscriptions_created_at_id", "subscriptions", ["created_at", "id"], unique=False
    )
    op.create_index(
        "ix_subscriptions_due",
        "subscriptions",
        ["next_action_at"],
        unique=False,
        postgresql_where=sa.text("next_action_at IS NOT NULL"),
    )
    op.create_index(op.f("ix_subscriptions_plan_id"), "subscriptions", ["plan_id"], unique=False)
    op.create_index(op.f("ix_subscriptions_status"), "subscriptions", ["status"], unique=False)
    op.create_table(
        "invoices",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=True),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("subscription_id", sa.UUID(), nullable=True),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("billing_reason", sa.String(length=32), nullable=False),
        sa.Column("cycle_key", sa.String(length=40), nullable=True),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("subtotal", sa.BigInteger(), nullable=False),
        sa.Column("tax", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("credits_applied", sa.BigInteger(), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("amount_remaining", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("marked_uncollectible_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "amount_due = total - credits_applied", name=op.f("ck_invoices_amount_due")
        ),
        sa.CheckConstraint(
            "amount_remaining = amount_due - amount_paid", name=op.f("ck_invoices_amount_remaining")
        ),
        sa.CheckConstraint(
            "subtotal >= 0 AND tax >= 0 AND credits_applied >= 0 AND amount_due >= 0 "
            "AND amount_paid >= 0 AND amount_remaining >= 0",
            name=op.f("ck_invoices_non_negative"),
        ),
        sa.CheckConstraint("total = subtotal + tax", name=op.f("ck_invoices_total")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_invoices_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_invoices_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
        sa.UniqueConstraint("subscription_id", "cycle_key", name="uq_invoices_subscription_cycle"),
    )
    op.create_index(
        "ix_invoices_account_id_created_at", "invoices", ["account_id", "created_at"], unique=False
    )
    op.create_index("ix_invoices_created_at_id", "invoices", ["created_at", "id"], unique=False)
    op.create_index("ix_invoices_status", "invoices", ["status"], unique=False)
    op.create_index(
        op.f("ix_invoices_subscription_id"), "invoices", ["subscription_id"], unique=False
    )
    op.create_table(
        "subscription_history",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("subscription_id", sa.UUID(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("old", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("new", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_history_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_history")),
    )
    op.create_index(
        "ix_subscription_history_subscription_id_at",
        "subscription_history",
        ["subscription_id", "at"],
        unique=False,
    )
    op.create_table(
        "credit_entries",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("grant_id", sa.UUID(), nullable=True),
        sa.Column("invoice_id", sa.UUID(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind = 'grant' AND grant_id IS NULL AND amount > 0) OR "
            "(kind <> 'grant' AND grant_id IS NOT NULL)",
            name=op.f("ck_credit_entries_grant_shape"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_credit_entries_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["credit_entries.id"],
            name=op.f("fk_credit_entries_grant_id_credit_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_credit_entries_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_entries")),
    )
    op.create_index(
        "ix_credit_entries_account_currency",
        "credit_entries",
        ["account_id", "currency"],
        unique=False,
    )
    op.create_index("ix_credit_entries_grant_id", "credit_entries", ["grant_id"], unique=False)
    op.create_index("ix_credit_entries_invoice_id", "credit_entries", ["invoice_id"], unique=False)
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("invoice_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=38, scale=12), nullable=False),
        sa.Column("unit_amount", sa.BigInteger(), nullable=True),
        sa.Column("unit_amount_decimal", sa.Numeric(precision=38, scale=12), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_lines_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
    )
    op.create_index(
        "ix_invoice_lines_invoice_id_position",
        "invoice_lines",
        ["invoice_id", "position"],
        unique=False,
    )
    op.add_column("accounts", sa.Column("test_clock_id", sa.UUID(), nullable=True))
    op.create_index(op.f("ix_accounts_test_clock_id"), "accounts", ["test_clock_id"], unique=False)
    op.create_foreign_key(
        op.f("fk_accounts_test_clock_id_test_clocks"),
        "accounts",
        "test_clocks",
        ["test_clock_id"],
        ["id"],
    )
    op.execute("INSERT INTO invoice_number_counters (name, value) VALUES ('invoices', 0)")
    for statement in IMMUTABILITY:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_IMMUTABILITY:
        op.execute(statement)
    op.drop_constraint(
        op.f("fk_accounts_test_clock_id_test_clocks"), "accounts", type_="foreignkey"
    )
    op.drop_index(op.f("ix_accounts_test_clock_id"), table_name="accounts")
    op.drop_column("accounts", "test_clock_id")
    op.drop_index("ix_invoice_lines_invoice_id_position", table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_index("ix_credit_entries_invoice_id", table_name="credit_entries")
    op.drop_index("ix_credit_entries_grant_id", table_name="credit_entries")
    op.drop_index("ix_credit_entries_account_currency", table_name="credit_entries")
    op.drop_table("credit_entries")
    op.drop_index("ix_subscription_history_subscription_id_at", table_name="subscription_history")
    op.drop_table("subscription_history")
    op.drop_index(op.f("ix_invoices_subscription_id"), table_name="invoices")
    op.drop_index("ix_invoices_status", table_name="invoices")
    op.drop_index("ix_invoices_created_at_id", table_name="invoices")
    op.drop_index("ix_invoices_account_id_created_at", table_name="invoices")
    op.drop_table("invoices")
    op.drop_index(op.f("ix_subscriptions_status"), table_name="subscriptions")
    op.drop_index(op.f("ix_subscriptions_plan_id"), table_name="subscriptions")
    op.drop_index(
        "ix_subscriptions_due",
        table_name="subscriptions",
        postgresql_where=sa.text("next_action_at IS NOT NULL"),
    )
    op.drop_index("ix_subscriptions_created_at_id", table_name="subscriptions")
    op.drop_index("ix_subscriptions_account_id_created_at", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_table("test_clocks")
    op.drop_table("invoice_number_counters")
