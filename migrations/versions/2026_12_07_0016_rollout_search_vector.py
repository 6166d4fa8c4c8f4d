"""rollout search vector: a stored tsvector column with its own GIN index (PostgreSQL only)

The rollout list's full-text search read `to_tsvector(...)` from an expression index
(0002_rollout_fts). When the planner walked rollouts in id order instead (a search with the
list's `ORDER BY id LIMIT 51`), it recomputed `to_tsvector` on every row it passed: 30 s for a
common word, more than 120 s for a rare one at 1M rollouts. A stored generated column is computed
once, on write; the planner keeps statistics on it (most common lexemes), so it can tell a rare
word (GIN bitmap, then sort the few ids) from a common one (walk the ids, cheap check per row).
Queries: app/rollouts/search.py (`page_query`, `count_query`, `ranked_query`).

Rollouts made from drift samples (`from_drift`, 0017_drift_import_scale) get NULL, not a
vector: to_tsvector is never computed for them on write (CASE evaluates lazily), as the partial
index of 0017 did, and a NULL vector matches no search.

Adding a stored column rewrites the table once (about a minute per million rollouts). The
expression is app/rollouts/models.py FTS_VECTOR, unchanged. SQLite searches with LIKE and gets
nothing here. The column is not part of the SQLModel model (the ORM never reads it);
migrations/env.py tells `alembic check` to leave the column and its index alone.

Revision ID: 0016_rollout_search_vector
Revises: 0017_drift_import_scale
Create Date: 2026-12-07 20:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_rollout_search_vector"
down_revision: str | None = "0017_drift_import_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMN = "search_vector"
INDEX = "ix_rollout_search_vector"
OLD_INDEX = "ix_rollout_fts"
# Identical to app/rollouts/models.py FTS_VECTOR (and to 0002_rollout_fts's index expression).
EXPRESSION = (
    "to_tsvector('english'::regconfig, "
    "(\"left\"(response::text, 100000) || ' '::text) || "
    'regexp_replace("left"(jsonb_path_query_array(input_messages, '
    "'$[*].\"content\"'::jsonpath)::text, 20000), '\\\\[nrt]'::text, ' '::text, 'g'::text))"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"ALTER TABLE rollout ADD COLUMN {COLUMN} tsvector "
        f"GENERATED ALWAYS AS (CASE WHEN NOT from_drift THEN {EXPRESSION} END) STORED"
    )
    op.execute(f"CREATE INDEX {INDEX} ON rollout USING gin ({COLUMN})")
    op.execute(f"DROP INDEX IF EXISTS {OLD_INDEX}")
    op.execute("ANALYZE rollout")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE INDEX IF NOT EXISTS {OLD_INDEX} ON rollout USING gin (({EXPRESSION})) "
        "WHERE NOT from_drift"
    )
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute(f"ALTER TABLE rollout DROP COLUMN IF EXISTS {COLUMN}")
