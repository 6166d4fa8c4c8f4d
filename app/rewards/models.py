"""The composite reward configuration of a project."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import JSONType


class RewardConfig(SQLModel, table=True):
    __tablename__ = "reward_config"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    name: str = Field(default="default", max_length=200)
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    revision: int = 1
    updated_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    updated_at: datetime = Field(default_factory=utcnow)


class PreviewJobStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class RewardPreviewJob(SQLModel, table=True):
    """A reward preview too large to compute inside a request, done by the worker with progress;
    its result is the preview's summary and rows as JSON (at most MAX_PREVIEW_ROLLOUTS rows)."""

    __tablename__ = "reward_preview_job"
    # The worker claims the oldest queued job: status = 'queued' ORDER BY id.
    __table_args__ = (Index("ix_reward_preview_job_queue", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    run_id: int = Field(foreign_key="judge_run.id", ondelete="CASCADE")
    selection: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    status: str = Field(default=PreviewJobStatus.queued, max_length=20)
    done: int = 0
    total: int = 0
    result: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    error: str | None = None
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = None
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
