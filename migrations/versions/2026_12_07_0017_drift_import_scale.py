"""drift import at scale: rollouts made from drift samples stay out of the full-text index

- rollout.from_drift: the rollout was made from a drift sample (app/drift). Existing ones are
  marked from drift_sample.rollout_id.
- ix_rollout_fts becomes partial (WHERE NOT from_drift). Computing to_tsvector('english') of a
  million training-time responses and inserting them into the GIN index was ~80% of a drift
  import's database time (100k samples: 49 s of COPY into rollout with the index, 10 s without);
  drift samples are found through their training run (steps, buckets, signals, audits), and a
  text search of the project's rollouts covers the imported ones. The expression is unchanged
  (app/rollouts/models.py FTS_VECTOR); searches add the same predicate (rollouts/search.py).
- drift_sample.project_id and drift_sample.import_id are no longer foreign keys (and the index
  that served the project key's cascade goes): PostgreSQL checks each key row by row, and the
  two checks were about a third of the time of COPYing samples (20k samples: 4.0 s with the
  four keys, 1.6 s with none). Both are copied from the training run and its import job; the
  training run's key stays, and deleting a run (or its project) still removes its samples.

Revision ID: 0017_drift_import_scale
Revises: 0011_drift_audits
Create Date: 2026-12-07 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_drift_import_scale"
down_revision: str | None = "0011_drift_audits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_rollout_fts"
EXPRESSION = (
    "to_tsvector('english'::regconfig, "
    "(\"left\"(response::text, 100000) || ' '::text) || "
    'regexp_replace("left"(jsonb_path_query_array(input_messages, '
    "'$[*].\"content\"'::jsonpath)::text, 20000), '\\\\[nrt]'::text, ' '::text, 'g'::text))"
)


def upgrade() -> None:
    with op.batch_alter_table("rollout") as batch:
        batch.add_column(
            sa.Column("from_drift", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE rollout SET from_drift = "
        + ("true" if op.get_bind().dialect.name == "postgresql" else "1")
        + " WHERE id IN (SELECT rollout_id FROM drift_sample WHERE rollout_id IS NOT NULL)"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
        op.execute(
            f"CREATE INDEX {INDEX} ON rollout USING gin (({EXPRESSION})) WHERE NOT from_drift"
        )
    with op.batch_alter_table("drift_sample") as batch:
        batch.drop_constraint("fk_drift_sample_project_id_project", type_="foreignkey")
        batch.drop_constraint("fk_drift_sample_import_id_rollout_import", type_="foreignkey")
        batch.drop_index("ix_drift_sample_project_id")


def downgrade() -> None:
    with op.batch_alter_table("drift_sample") as batch:
        batch.create_index("ix_drift_sample_project_id", ["project_id"])
        batch.create_foreign_key(
            "fk_drift_sample_import_id_rollout_import",
            "rollout_import",
            ["import_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_foreign_key(
            "fk_drift_sample_project_id_project",
            "project",
            ["project_id"],
            ["id"],
            ondelete="CASCADE",
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
        op.execute(f"CREATE INDEX {INDEX} ON rollout USING gin (({EXPRESSION}))")
    with op.batch_alter_table("rollout") as batch:
        batch.drop_column("from_drift")
