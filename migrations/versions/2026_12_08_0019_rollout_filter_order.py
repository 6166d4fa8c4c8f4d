"""rollouts: the model and checkpoint filter indexes also keep id order

The rollout list filters by model and/or checkpoint and pages by id (`WHERE project_id = ? AND
model = ? [AND checkpoint = ?] ORDER BY id LIMIT 51`, and the capped count over the same rows).
With (project_id, model) and (project_id, checkpoint) PostgreSQL walked the primary key and
filtered: 80 ms and 100,170 rows removed for a checkpoint's first page at a million rollouts.
With id appended it reads the matching rows in id order from the index: 0.15 ms, 150 rows read.
The same prefixes still serve the filter values' skip scan (rollouts.browse.distinct_values).

Revision ID: 0019_rollout_filter_order
Revises: 0018_drift_sample_lean_keys
Create Date: 2026-12-08 00:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019_rollout_filter_order"
down_revision: str | None = "0018_drift_sample_lean_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for column in ("model", "checkpoint"):
        op.drop_index(f"ix_rollout_project_{column}", table_name="rollout")
        op.create_index(f"ix_rollout_project_{column}", "rollout", ["project_id", column, "id"])


def downgrade() -> None:
    for column in ("model", "checkpoint"):
        op.drop_index(f"ix_rollout_project_{column}", table_name="rollout")
        op.create_index(f"ix_rollout_project_{column}", "rollout", ["project_id", column])
