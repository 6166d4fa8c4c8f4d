"""Tables for rollouts (policy outputs), preference pairs, import jobs and their problems."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import BigIntType, JSONType

# The searchable text of a rollout on PostgreSQL: its response and its input messages' contents,
# each capped so one huge rollout cannot pass tsvector's 1 MB limit. Stored, on PostgreSQL only,
# in the generated column `rollout.search_vector` with the GIN index `ix_rollout_search_vector`
# (migration 0016_rollout_search_vector): computed once on write, never per row of a search.
# Rollouts made from drift samples get no vector (FTS_INDEXED is false for them, so the column is
# NULL): indexing a million training-time responses was four fifths of a drift import's database
# time (migration 0017_drift_import_scale), and the samples are found through their training run.
# The column is not in the model below (the ORM never loads it); searches name it
# (app/rollouts/search.py) and migrations/env.py keeps `alembic check` off it.
SEARCH_VECTOR_COLUMN = "search_vector"
SEARCH_VECTOR_INDEX = "ix_rollout_search_vector"
FTS_VECTOR = (
    "to_tsvector('english'::regconfig, "
    "(\"left\"(response::text, 100000) || ' '::text) || "
    'regexp_replace("left"(jsonb_path_query_array(input_messages, '
    "'$[*].\"content\"'::jsonpath)::text, 20000), '\\\\[nrt]'::text, ' '::text, 'g'::text))"
)

# The rows the full-text index holds (and so the rows a text search can find).
FTS_INDEXED = "NOT from_drift"


class Rollout(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        Index("ix_rollout_project_step", "project_id", "step"),
        Index("ix_rollout_project_group", "project_id", "group_key"),
        # The model and checkpoint filters, in id order for the list's keyset pages; the
        # prefixes give the filter values by a skip scan (rollouts.browse.distinct_values).
        # On PostgreSQL each also carries the other filter columns, so a filtered page and its
        # capped count are index-only scans (migration 0022).
        Index(
            "ix_rollout_project_model",
            "project_id",
            "model",
            "id",
            postgresql_include=["checkpoint", "step"],
        ),
        Index(
            "ix_rollout_project_checkpoint",
            "project_id",
            "checkpoint",
            "id",
            postgresql_include=["model", "step"],
        ),
        # Keyset pagination walks a project's rollouts in id order; also serves project_id alone.
        Index("ix_rollout_project_order", "project_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE")
    external_id: str = Field(max_length=200)
    content_hash: str = Field(max_length=64)
    input_messages: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    target_document: str | None = None
    reference_documents: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    reference_answer: Any | None = Field(default=None, sa_type=JSONType)
    response: str = Field(default="")
    model: str | None = Field(default=None, max_length=200)
    checkpoint: str | None = Field(default=None, max_length=200)
    step: int | None = None
    group_key: str | None = Field(default=None, max_length=200)
    source_file: str | None = Field(default=None, max_length=500)
    source_line: int | None = None
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONType, sa_column_kwargs={"name": "metadata"}
    )
    import_id: int | None = Field(
        default=None, foreign_key="rollout_import.id", index=True, ondelete="SET NULL"
    )
    created_at: datetime = Field(default_factory=utcnow)
    # Made from a drift sample (app/drift): shown and labelled like any rollout, but not in the
    # full-text index, so a text search does not find it (see FTS_INDEXED).
    from_drift: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class RolloutPair(SQLModel, table=True):
    """Two responses to one input, for preference judging."""

    __tablename__ = "rollout_pair"
    __table_args__ = (UniqueConstraint("project_id", "rollout_a_id", "rollout_b_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    rollout_a_id: int = Field(foreign_key="rollout.id", ondelete="CASCADE", sa_type=BigIntType)
    rollout_b_id: int = Field(foreign_key="rollout.id", ondelete="CASCADE", sa_type=BigIntType)
    created_at: datetime = Field(default_factory=utcnow)


class RolloutImport(SQLModel, table=True):
    """A durable import job: the uploaded file is parsed by a worker, not in the request.

    status: awaiting_mapping (a CSV waiting for its column mapping) -> queued -> validating
    (the whole file is checked first) -> importing -> done; or rejected (the file, or some of
    its lines, cannot be imported and nothing was stored) or failed (an internal error).
    """

    __tablename__ = "rollout_import"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    filename: str = Field(max_length=500)
    stored_path: str = Field(default="", max_length=1000)
    size_bytes: int = Field(default=0, sa_type=BigIntType)
    format: str = Field(default="auto", max_length=20)
    options: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    skip_invalid: bool = False
    status: str = Field(default="queued", max_length=20, index=True)
    bytes_read: int = Field(default=0, sa_type=BigIntType, description="in the current phase")
    lines_read: int = Field(default=0, description="in the current phase")
    inserted: int = 0
    duplicates: int = 0
    repeats: int = Field(
        default=0,
        sa_column_kwargs={"server_default": "0"},
        description="of the duplicates, lines repeating an earlier line of the same file",
    )
    conflicts: int = 0
    invalid: int = Field(default=0, description="lines with at least one problem")
    problem_count: int = 0
    pairs: int = Field(default=0, description="preference pairs created")
    resume_line: int = Field(default=0, description="every line up to this one is stored")
    attempts: int = 0
    message: str = Field(default="")
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RolloutImportProblem(SQLModel, table=True):
    """One problem found in an import: a bad line, a conflict, or why the file was refused."""

    __tablename__ = "rollout_import_problem"
    __table_args__ = (Index("ix_rollout_import_problem_import_line", "import_id", "line"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    import_id: int = Field(foreign_key="rollout_import.id", ondelete="CASCADE")
    kind: str = Field(max_length=20, description="invalid | conflict | duplicate | file")
    line: int | None = None
    field: str | None = Field(default=None, max_length=300)
    message: str = Field(default="")
