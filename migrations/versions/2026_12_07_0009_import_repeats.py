"""rollout import: count of lines that repeat an earlier line of the same file

Revision ID: 0009_import_repeats
Revises: 0012_scale_indexes
Create Date: 2026-12-07 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_import_repeats"
down_revision: str | None = "0012_scale_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rollout_import") as batch:
        batch.add_column(sa.Column("repeats", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("rollout_import") as batch:
        batch.drop_column("repeats")
