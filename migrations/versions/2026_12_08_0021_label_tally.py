"""labels: a per-rubric counter of submitted-label writes kept by triggers (label_tally)

Every figure computed from labels (a run's agreement, its disagreement index, slices, the
leaderboard, a training run's signals) is keyed by the labels it read. The key was their count,
latest id and latest change, aggregated on every page: a sequential scan of the rubric's 20,020
labels, 7.5–9.6 ms of PostgreSQL per page, five times on the leaderboard (EXPLAIN ANALYZE,
`bench/pages.py`). `label_tally` holds, per rubric, how many times its submitted labels were
written (inserted, changed, deleted; saving a draft does not count: no figure reads drafts); the
key reads one row by primary key (`WHERE rubric_id = ?`), or the project's few rows by
`ix_label_tally_project_id` (`WHERE project_id = ?`, the drift signals' key).

Triggers keep it, so every writer counts (the app, bulk imports, COPY, cascades):
PostgreSQL statement-level triggers with transition tables (one upsert per statement);
SQLite row-level triggers. Deletes only raise existing counters (a cascade from a rubric or
project being deleted finds nothing left to raise). Existing labels are counted once here.

Revision ID: 0021_label_tally
Revises: 0020_stored_figures
Create Date: 2026-12-08 01:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_label_tally"
down_revision: str | None = "0020_stored_figures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Submitted labels only: every figure reads submitted labels, so saving a draft changes no key.
_UPSERT = """
        INSERT INTO label_tally (rubric_id, project_id, changes)
        SELECT rv.rubric_id, rv.project_id, count(*)
        FROM ({written}) AS w JOIN rubric_version rv ON rv.id = w.rubric_version_id
        GROUP BY rv.rubric_id, rv.project_id
        ORDER BY rv.rubric_id
        ON CONFLICT (rubric_id) DO UPDATE SET changes = label_tally.changes + EXCLUDED.changes;
"""
_NEW = "SELECT rubric_version_id FROM new_rows WHERE status = 'submitted'"
_OLD = "SELECT rubric_version_id FROM old_rows WHERE status = 'submitted'"
# An updated row counts once when it was or is submitted (as SQLite's row trigger counts it).
_CHANGED = (
    "SELECT n.rubric_version_id FROM new_rows n JOIN old_rows o ON o.id = n.id "
    "WHERE n.status = 'submitted' OR o.status = 'submitted'"
)

_POSTGRES_FUNCTION = f"""
CREATE FUNCTION label_tally_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_UPSERT.format(written=_NEW)}
    ELSIF TG_OP = 'UPDATE' THEN
        {_UPSERT.format(written=_CHANGED)}
    ELSE
        UPDATE label_tally AS t SET changes = t.changes + c.n
        FROM (
            SELECT rv.rubric_id, count(*) AS n
            FROM ({_OLD}) AS w JOIN rubric_version rv ON rv.id = w.rubric_version_id
            GROUP BY rv.rubric_id
        ) AS c
        WHERE t.rubric_id = c.rubric_id;
    END IF;
    RETURN NULL;
END
$$
"""

_POSTGRES_TRIGGERS = (
    "CREATE TRIGGER label_tally_insert AFTER INSERT ON label "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION label_tally_count()",
    "CREATE TRIGGER label_tally_update AFTER UPDATE ON label REFERENCING OLD TABLE AS old_rows "
    "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION label_tally_count()",
    "CREATE TRIGGER label_tally_delete AFTER DELETE ON label "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION label_tally_count()",
)

_SQLITE_RAISE = """
    INSERT INTO label_tally (rubric_id, project_id, changes)
    SELECT rubric_id, project_id, 1 FROM rubric_version WHERE id = NEW.rubric_version_id
    ON CONFLICT (rubric_id) DO UPDATE SET changes = changes + 1;
"""

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER label_tally_insert AFTER INSERT ON label "
    f"WHEN NEW.status = 'submitted' BEGIN {_SQLITE_RAISE} END",
    "CREATE TRIGGER label_tally_update AFTER UPDATE ON label "
    f"WHEN NEW.status = 'submitted' OR OLD.status = 'submitted' BEGIN {_SQLITE_RAISE} END",
    "CREATE TRIGGER label_tally_delete AFTER DELETE ON label WHEN OLD.status = 'submitted' BEGIN "
    "UPDATE label_tally SET changes = changes + 1 WHERE rubric_id = "
    "(SELECT rubric_id FROM rubric_version WHERE id = OLD.rubric_version_id); END",
)


def upgrade() -> None:
    op.create_table(
        "label_tally",
        sa.Column("rubric_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("changes", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_label_tally_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rubric_id"],
            ["rubric.id"],
            name=op.f("fk_label_tally_rubric_id_rubric"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rubric_id", name=op.f("pk_label_tally")),
    )
    with op.batch_alter_table("label_tally", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_label_tally_project_id"), ["project_id"])
    op.execute(
        "INSERT INTO label_tally (rubric_id, project_id, changes) "
        "SELECT rv.rubric_id, rv.project_id, count(*) FROM label "
        "JOIN rubric_version rv ON rv.id = label.rubric_version_id "
        "WHERE label.status = 'submitted' GROUP BY rv.rubric_id, rv.project_id"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        for statement in _POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    for name in ("insert", "update", "delete"):
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS label_tally_{name} ON label")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS label_tally_{name}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS label_tally_count()")
    with op.batch_alter_table("label_tally", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_tally_project_id"))
    op.drop_table("label_tally")
