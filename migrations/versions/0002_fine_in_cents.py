"""loans.fine (float) becomes loans.fine_cents (integer)

A schema change that carries data: every fine is converted, not dropped.

What it loses, pinned by tests/test_migrations.py:
* upgrade rounds to whole cents, half away from zero: a fine of 0.125 becomes 13 cents;
* upgrade turns a missing fine (NULL) into 0 cents;
* downgrade is otherwise exact: fine_cents / 100, so 13 cents come back as 0.13.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "loans",
        sa.Column("fine_cents", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    # numeric rounding is half away from zero; float rounding would be platform-dependent
    op.execute("UPDATE loans SET fine_cents = round(fine::numeric * 100) WHERE fine IS NOT NULL")
    op.drop_column("loans", "fine")


def downgrade() -> None:
    op.add_column("loans", sa.Column("fine", sa.Float(), nullable=True))
    op.execute("UPDATE loans SET fine = fine_cents / 100.0")
    op.drop_column("loans", "fine_cents")
