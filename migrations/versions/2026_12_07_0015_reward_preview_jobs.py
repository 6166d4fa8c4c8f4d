"""reward preview jobs: a large preview is computed by the worker with progress

- reward_preview_job: the selection, status, progress (done / total), the result as JSON.
- ix_reward_preview_job_queue (status, id): the worker claims the oldest queued job
  (`status = 'queued' ORDER BY id LIMIT 1`).

Revision ID: 0015_reward_preview_jobs
Revises: 0016_rollout_search_vector
Create Date: 2026-12-07 20:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0015_reward_preview_jobs"
down_revision: str | None = "0016_rollout_search_vector"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "reward_preview_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("selection", _json(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("result", _json(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("lease_owner", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("lease_expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user.id"],
            name=op.f("fk_reward_preview_job_created_by_id_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_reward_preview_job_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["judge_run.id"],
            name=op.f("fk_reward_preview_job_run_id_judge_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_preview_job")),
    )
    op.create_index(op.f("ix_reward_preview_job_project_id"), "reward_preview_job", ["project_id"])
    op.create_index("ix_reward_preview_job_queue", "reward_preview_job", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_reward_preview_job_queue", table_name="reward_preview_job")
    op.drop_index(op.f("ix_reward_preview_job_project_id"), table_name="reward_preview_job")
    op.drop_table("reward_preview_job")
