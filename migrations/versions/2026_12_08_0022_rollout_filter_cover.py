"""rollouts: the model and checkpoint filter indexes carry the other filter columns (PostgreSQL)

The filtered rollout list (`model = ? AND checkpoint = ? AND step >= ?`, in id order) and its
count capped at 10,001 walked `ix_rollout_project_checkpoint` and read every candidate row from
the table to check model and step: 40,004 heap rows and 66 ms for the capped count at a million
rollouts (EXPLAIN ANALYZE). With `INCLUDE (model, step)` (and `INCLUDE (checkpoint, step)` on the
model index) both are index-only scans: 5.5 ms, no heap fetch. SQLite has no INCLUDE; its
indexes stay as they are.

Revision ID: 0022_rollout_filter_cover
Revises: 0021_label_tally
Create Date: 2026-12-08 02:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022_rollout_filter_cover"
down_revision: str | None = "0021_label_tally"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COVER = {"model": ["checkpoint", "step"], "checkpoint": ["model", "step"]}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column, include in _COVER.items():
        op.drop_index(f"ix_rollout_project_{column}", table_name="rollout")
        op.create_index(
            f"ix_rollout_project_{column}",
            "rollout",
            ["project_id", column, "id"],
            postgresql_include=include,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in _COVER:
        op.drop_index(f"ix_rollout_project_{column}", table_name="rollout")
        op.create_index(f"ix_rollout_project_{column}", "rollout", ["project_id", column, "id"])
