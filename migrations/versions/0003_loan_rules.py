"""loans: an index for a member's loans; a book is out at most once at a time

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_loans_member_id", "loans", ["member_id"])
    # partial unique index: only loans not yet returned take part
    op.create_index(
        "uq_loans_open_book",
        "loans",
        ["book_id"],
        unique=True,
        postgresql_where=sa.text("returned_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_loans_open_book", table_name="loans")
    op.drop_index("ix_loans_member_id", table_name="loans")
