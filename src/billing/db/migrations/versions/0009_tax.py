"""tax rates, tax on invoices and lines

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-21 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _invoices_guard(extra_columns: str) -> str:
    # 0003's guard, with the tax treatment frozen too when `extra_columns` names it.
    return f"""
    CREATE OR REPLACE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
                NEW.created_at, NEW.finalized_at{extra_columns.replace("X.", "NEW.")})
               IS DISTINCT FROM
               (OLD.number, OLD.account_id, OLD.subscription_id, OLD.currency,
                OLD.billing_reason, OLD.cycle_key, OLD.period_start, OLD.period_end,
                OLD.subtotal, OLD.tax, OLD.total, OLD.credits_applied, OLD.amount_due,
                OLD.created_at, OLD.finalized_at{extra_columns.replace("X.", "OLD.")})
        ) THEN
            RAISE EXCEPTION 'invoice % is finalized: its amounts and lines cannot change', OLD.id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$
    """


# An invoice's tax rows are frozen with it, exactly like its lines.
TAX_ROWS_IMMUTABILITY = [
    """
    CREATE FUNCTION invoice_taxes_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        invoice_status text;
    BEGIN
        SELECT status INTO invoice_status FROM invoices WHERE id = OLD.invoice_id;
        IF invoice_status IS DISTINCT FROM 'draft' THEN
            RAISE EXCEPTION 'the taxes of a finalized invoice cannot be changed or removed'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF TG_OP = 'UPDATE' AND NEW.invoice_id <> OLD.invoice_id THEN
            RAISE EXCEPTION 'a tax row cannot move to another invoice'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END $$
    """,
    """
    CREATE TRIGGER invoice_taxes_immutable BEFORE UPDATE OR DELETE ON invoice_taxes
    FOR EACH ROW EXECUTE FUNCTION invoice_taxes_guard()
    """,
    """
    CREATE FUNCTION invoice_taxes_insert_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (
            SELECT 1 FROM new_taxes t LEFT JOIN invoices i ON i.id = t.invoice_id
            WHERE i.status IS DISTINCT FROM 'draft'
        ) THEN
            RAISE EXCEPTION 'taxes cannot be added to a finalized invoice'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER invoice_taxes_insert_immutable AFTER INSERT ON invoice_taxes
    REFERENCING NEW TABLE AS new_taxes
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_taxes_insert_guard()
    """,
]
DROP_TAX_ROWS_IMMUTABILITY = [
    "DROP TRIGGER invoice_taxes_insert_immutable ON invoice_taxes",
    "DROP FUNCTION invoice_taxes_insert_guard()",
    "DROP TRIGGER invoice_taxes_immutable ON invoice_taxes",
    "DROP FUNCTION invoice_taxes_guard()",
]


def upgrade() -> None:
    op.create_table(
        "tax_rates",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("country", sa.CHAR(length=2), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("percentage", sa.Numeric(precision=7, scale=4), nullable=False),
        sa.Column("inclusive", sa.Boolean(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to > effective_from",
            name=op.f("ck_tax_rates_effective_range"),
        ),
        sa.CheckConstraint(
            "percentage >= 0 AND percentage <= 100", name=op.f("ck_tax_rates_percentage")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tax_rates")),
    )
    op.create_index("ix_tax_rates_country", "tax_rates", ["country"], unique=False)
    op.create_index("ix_tax_rates_created_at_id", "tax_rates", ["created_at", "id"], unique=False)
    op.create_table(
        "invoice_taxes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("invoice_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("tax_rate_id", sa.UUID(), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("country", sa.CHAR(length=2), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("percentage", sa.Numeric(precision=7, scale=4), nullable=False),
        sa.Column("inclusive", sa.Boolean(), nullable=False),
        sa.Column("taxable_amount", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_taxes_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["tax_rate_id"], ["tax_rates.id"], name=op.f("fk_invoice_taxes_tax_rate_id_tax_rates")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_taxes")),
    )
    op.create_index(
        "ix_invoice_taxes_invoice_id_position",
        "invoice_taxes",
        ["invoice_id", "position"],
        unique=False,
    )
    op.add_column(
        "invoice_lines",
        sa.Column("tax_amount", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column("invoice_lines", sa.Column("tax_rate_id", sa.UUID(), nullable=True))
    op.add_column(
        "invoice_lines",
        sa.Column("tax_percentage", sa.Numeric(precision=7, scale=4), nullable=True),
    )
    op.create_foreign_key(
        op.f("fk_invoice_lines_tax_rate_id_tax_rates"),
        "invoice_lines",
        "tax_rates",
        ["tax_rate_id"],
        ["id"],
    )
    op.add_column(
        "invoices",
        sa.Column("tax_status", sa.String(length=16), server_default="none", nullable=False),
    )
    op.add_column("invoices", sa.Column("tax_note", sa.String(length=200), nullable=True))
    op.execute(_invoices_guard(", X.tax_status, X.tax_note"))
    for statement in TAX_ROWS_IMMUTABILITY:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_TAX_ROWS_IMMUTABILITY:
        op.execute(statement)
    op.execute(_invoices_guard(""))
    op.drop_column("invoices", "tax_note")
    op.drop_column("invoices", "tax_status")
    op.drop_constraint(
        op.f("fk_invoice_lines_tax_rate_id_tax_rates"), "invoice_lines", type_="foreignkey"
    )
    op.drop_column("invoice_lines", "tax_percentage")
    op.drop_column("invoice_lines", "tax_rate_id")
    op.drop_column("invoice_lines", "tax_amount")
    op.drop_index("ix_invoice_taxes_invoice_id_position", table_name="invoice_taxes")
    op.drop_table("invoice_taxes")
    op.drop_index("ix_tax_rates_created_at_id", table_name="tax_rates")
    op.drop_index("ix_tax_rates_country", table_name="tax_rates")
    op.drop_table("tax_rates")
