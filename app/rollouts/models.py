"""Tables for rollouts (policy outputs), preference pairs and import jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import BigIntType, JSONType


class Rollout(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        Index("ix_rollout_project_step", "project_id", "step"),
        Index("ix_rollout_project_group", "project_id", "group_key"),
        Index("ix_rollout_project_model", "project_id", "model"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
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
    """A durable import job: the uploaded file is parsed by a worker, not in the request."""

    __tablename__ = "rollout_import"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    filename: str = Field(max_length=500)
    stored_path: str = Field(default="", max_length=1000)
    size_bytes: int = 0
    format: str = Field(default="auto", max_length=20)
    options: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    skip_invalid: bool = False
    status: str = Field(default="queued", max_length=20, index=True)
    bytes_read: int = 0
    lines_read: int = 0
    inserted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    invalid: int = 0
    problems: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    message: str = Field(default="")
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
