"""operator emails

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21 07:48:21.940044
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("email_messages", "account_id", existing_type=sa.UUID(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM email_messages WHERE account_id IS NULL")
    op.alter_column("email_messages", "account_id", existing_type=sa.UUID(), nullable=False)
