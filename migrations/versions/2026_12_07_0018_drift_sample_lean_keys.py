"""drift samples: no row-by-row key check on the rollout, no index on the import

Every drift sample is written by COPY right after the rollout made from it, in the same
transaction, so `drift_sample.rollout_id` points at an existing rollout by construction; the
foreign key made PostgreSQL look that rollout up again for each sample (about 4 µs of the
database's ~40 µs per sample in a COPY of 100k samples). The only deletion of rollouts made
from samples is the drift import's undo, which removes the samples first; deleting a project
removes its training runs' samples through the training run's key. The index on rollout_id
stays (joins from labels and audits to samples use it).

`ix_drift_sample_import_id` served only that undo: it now deletes the import's samples within
its training run (the run's indexes find them), and each sample no longer pays an index entry.

Revision ID: 0018_drift_sample_lean_keys
Revises: 0015_reward_preview_jobs
Create Date: 2026-12-07 23:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_drift_sample_lean_keys"
down_revision: str | None = "0015_reward_preview_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("drift_sample") as batch:
        batch.drop_constraint("fk_drift_sample_rollout_id_rollout", type_="foreignkey")
        batch.drop_index("ix_drift_sample_import_id")


def downgrade() -> None:
    op.execute(
        "UPDATE drift_sample SET rollout_id = NULL WHERE rollout_id IS NOT NULL "
        "AND rollout_id NOT IN (SELECT id FROM rollout)"
    )
    with op.batch_alter_table("drift_sample") as batch:
        batch.create_index("ix_drift_sample_import_id", ["import_id"])
        batch.create_foreign_key(
            "fk_drift_sample_rollout_id_rollout",
            "rollout",
            ["rollout_id"],
            ["id"],
            ondelete="SET NULL",
        )
