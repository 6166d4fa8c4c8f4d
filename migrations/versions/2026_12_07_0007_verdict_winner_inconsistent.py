"""verdict winner wide enough for "inconsistent"

A pairwise verdict imported already combined over both presentation orders may be
"inconsistent" (the orders named different winners, MT-Bench's "tie (inconsistent)"): it is
stored as such, distinct from a real tie, so the column grows from 4 to 20 characters.

Revision ID: 0007_verdict_winner_inconsistent
Revises: 0008_probes
Create Date: 2026-12-07 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_verdict_winner_inconsistent"
down_revision: str | None = "0008_probes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("verdict") as batch:
        batch.alter_column(
            "winner",
            existing_type=sa.String(length=4),
            type_=sa.String(length=20),
            existing_nullable=True,
        )


def downgrade() -> None:
    # An "inconsistent" verdict does not fit the old column: it goes back to MT-Bench's tie.
    op.execute("UPDATE verdict SET winner = 'tie' WHERE length(winner) > 4")
    with op.batch_alter_table("verdict") as batch:
        batch.alter_column(
            "winner",
            existing_type=sa.String(length=20),
            type_=sa.String(length=4),
            existing_nullable=True,
        )
