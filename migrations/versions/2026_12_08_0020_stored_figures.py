"""stored figures: whole-run figures kept per data version, and the worker's refresh requests

The agreement page of a run of a million verdicts read the run's whole-run sums and its 20,000
labelled subjects again after every restart (5.4 s p95 for the first visit, all 16 clients
waiting). `stored_figure` keeps each computed result under the digest of its data version, so the
first visit reads one row by the unique digest index (`WHERE digest = ?`). The (run, kind, id)
indexes serve the clean-up that keeps each run's newest entries of a kind (`WHERE judge_run_id = ?
AND kind = ? ORDER BY id DESC LIMIT 8`). `figure_refresh` holds one request per run for the
worker (a label changed, the run finished); it is read by its primary key and, in full, when the
worker looks for the longest-waiting request (a handful of rows).

Revision ID: 0020_stored_figures
Revises: 0019_rollout_filter_order
Create Date: 2026-12-08 01:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0020_stored_figures"
down_revision: str | None = "0019_rollout_filter_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "figure_refresh",
        sa.Column("judge_run_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("lease_expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["judge_run_id"],
            ["judge_run.id"],
            name=op.f("fk_figure_refresh_judge_run_id_judge_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("judge_run_id", name=op.f("pk_figure_refresh")),
    )
    op.create_table(
        "stored_figure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("judge_run_id", sa.Integer(), nullable=True),
        sa.Column("training_run_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["judge_run_id"],
            ["judge_run.id"],
            name=op.f("fk_stored_figure_judge_run_id_judge_run"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["training_run_id"],
            ["training_run.id"],
            name=op.f("fk_stored_figure_training_run_id_training_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_figure")),
    )
    with op.batch_alter_table("stored_figure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stored_figure_digest"), ["digest"], unique=True)
        batch_op.create_index("ix_stored_figure_judge_run", ["judge_run_id", "kind", "id"])
        batch_op.create_index("ix_stored_figure_training_run", ["training_run_id", "kind", "id"])


def downgrade() -> None:
    with op.batch_alter_table("stored_figure", schema=None) as batch_op:
        batch_op.drop_index("ix_stored_figure_training_run")
        batch_op.drop_index("ix_stored_figure_judge_run")
        batch_op.drop_index(batch_op.f("ix_stored_figure_digest"))
    op.drop_table("stored_figure")
    op.drop_table("figure_refresh")
