"""event data as json: written once, read whole, never searched inside

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-21 08:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ALTER COLUMN data TYPE json USING data::json")


def downgrade() -> None:
    op.execute("ALTER TABLE events ALTER COLUMN data TYPE jsonb USING data::jsonb")
