"""drift import at scale: rollouts made from drift samples stay out of the full-text index

- rollout.from_drift: the rollout was made from a drift sample (app/drift). Existing ones are
  marked from drift_sample.rollout_id.
- ix_rollout_fts becomes partial (WHERE NOT from_drift). Computing to_tsvector('english') of a
  million training-time responses and inserting them into the GIN index was ~80% of a drift
  import's database time (100k samples: 49 s of COPY into rollout with the index, 10 s without);
  drift samples are found through their training run (steps, buckets, signals, audits), and a
  text search of the project's rollouts covers the imported ones. The expression is unchanged
  (app/rollouts/models.py FTS_VECTOR); searches add the same predicate (rollouts/search.py).

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
        op.execute(f"CREATE INDEX {INDEX} ON rollout USING gin (({EXPRESSION})) WHERE NOT from_drift")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
        op.execute(f"CREATE INDEX {INDEX} ON rollout USING gin (({EXPRESSION}))")
    with op.batch_alter_table("rollout") as batch:
        batch.drop_column("from_drift")
