"""rollout full-text search index (PostgreSQL only)

A GIN index on the searchable text of each rollout: its response and its input messages'
contents, each capped so one huge rollout cannot exceed tsvector's 1 MB limit. The expression
must stay identical to app/rollouts/models.py FTS_VECTOR, or searches stop using the index
(tests/integration/rollouts/test_search.py checks the query plan). SQLite searches with LIKE.

Revision ID: 0002_rollout_fts
Revises: 0001
Create Date: 2026-11-22 17:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_rollout_fts"
down_revision: str | None = "0001"
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
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE INDEX {INDEX} ON rollout USING gin (({EXPRESSION}))")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
