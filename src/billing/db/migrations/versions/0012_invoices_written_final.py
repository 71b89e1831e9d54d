"""invoices written final: deferrable foreign keys to invoices, insert guards by inner join

Finalization writes an invoice's lines, tax rows and credit applications first and the
invoice itself last, already numbered, so that it is written once and never updated. The
foreign keys from those rows to `invoices` become deferrable (still checked immediately
unless a transaction defers them), and the statement guards on inserted lines and tax rows
look only at invoices that exist: a row whose invoice does not exist yet is the foreign
key's business, checked at commit.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-21 09:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FOREIGN_KEYS = [
    ("fk_invoice_lines_invoice_id_invoices", "invoice_lines"),
    ("fk_invoice_taxes_invoice_id_invoices", "invoice_taxes"),
    ("fk_credit_entries_invoice_id_invoices", "credit_entries"),
]


def _guard(function: str, rows: str, alias: str, what: str, join: str) -> str:
    condition = "i.status <> 'draft'" if join == "JOIN" else "i.status IS DISTINCT FROM 'draft'"
    return f"""
    CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (
            SELECT 1 FROM {rows} {alias} {join} invoices i ON i.id = {alias}.invoice_id
            WHERE {condition}
        ) THEN
            RAISE EXCEPTION '{what} cannot be added to a finalized invoice'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NULL;
    END $$
    """  # noqa: S608 (names from this module, not input)


def _guards(join: str) -> list[str]:
    return [
        _guard("invoice_lines_insert_guard", "new_lines", "l", "lines", join),
        _guard("invoice_taxes_insert_guard", "new_taxes", "t", "taxes", join),
    ]


def _foreign_keys(deferrable: bool) -> None:
    for name, table in _FOREIGN_KEYS:
        op.drop_constraint(name, table, type_="foreignkey")
        op.create_foreign_key(
            name,
            table,
            "invoices",
            ["invoice_id"],
            ["id"],
            deferrable=deferrable or None,
            initially="IMMEDIATE" if deferrable else None,
        )


def upgrade() -> None:
    _foreign_keys(deferrable=True)
    for statement in _guards("JOIN"):
        op.execute(statement)


def downgrade() -> None:
    for statement in _guards("LEFT JOIN"):
        op.execute(statement)
    _foreign_keys(deferrable=False)
