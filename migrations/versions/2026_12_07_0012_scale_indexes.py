"""indexes for the queries of a million-row project

- ix_verdict_run_order (run_id, id): a judge run's verdict pages walk `run_id = ? AND id > ?
  ORDER BY id`; without it a later run's pages scanned the primary key past every earlier run's
  verdicts (0.8–1 s per page at 1M verdicts).
- ix_rollout_project_checkpoint (project_id, checkpoint): the rollout list's checkpoint filter
  values, read by an index skip scan (rollouts.service.distinct_values) instead of a sequential
  scan of the table on every list request.

Revision ID: 0012_scale_indexes
Revises: 0002_rollout_fts
Create Date: 2026-12-07 17:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_scale_indexes"
down_revision: str | None = "0002_rollout_fts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_verdict_run_order", "verdict", ["run_id", "id"])
    op.create_index("ix_rollout_project_checkpoint", "rollout", ["project_id", "checkpoint"])


def downgrade() -> None:
    op.drop_index("ix_rollout_project_checkpoint", table_name="rollout")
    op.drop_index("ix_verdict_run_order", table_name="verdict")
