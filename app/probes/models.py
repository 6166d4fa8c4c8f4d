"""Tables for probe runs (a hackability check before export) and their rewritten rollouts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import BigIntType, JSONType


class ProbeRunStatus(StrEnum):
    """queued (rewrites not made yet) -> judging (its judge run works) -> completed | failed |
    cancelled. A completed run holds its report."""

    QUEUED = "queued"
    JUDGING = "judging"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ProbeRun(SQLModel, table=True):
    """Probes of one rubric version x judge configuration x reward configuration, on a
    selection of rollouts (by default the gold set's development split), scored by the
    composite reward that ships. `config_hash` names exactly what was measured: the export gate
    only accepts a run whose hash matches what is exported."""

    __tablename__ = "probe_run"
    __table_args__ = (Index("ix_probe_run_project_hash", "project_id", "config_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    rubric_version_id: int = Field(foreign_key="rubric_version.id", index=True)
    judge_config_id: int | None = Field(
        default=None, foreign_key="judge_config.id", ondelete="SET NULL"
    )
    judge_run_id: int | None = Field(default=None, foreign_key="judge_run.id", ondelete="SET NULL")
    status: str = Field(default=ProbeRunStatus.QUEUED.value, max_length=20, index=True)
    seed: int = Field(default=0, sa_type=BigIntType)
    probes: list[str] = Field(default_factory=list, sa_type=JSONType)
    custom: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    thresholds: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    selection: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    config_hash: str = Field(default="", max_length=64)
    reward_revision: int | None = None
    # The composite reward as it was when the run started: the report scores with exactly this.
    reward_config: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    items_total: int = 0
    report: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    message: str = Field(default="")
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class ProbeItem(SQLModel, table=True):
    """One rewritten rollout: which probe and variant made it from which original. The original
    is never changed; the rewrite is a rollout of its own (source_file "probe-run:<id>")."""

    __tablename__ = "probe_item"
    __table_args__ = (Index("ix_probe_item_run_probe", "probe_run_id", "probe"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    probe_run_id: int = Field(foreign_key="probe_run.id", ondelete="CASCADE")
    probe: str = Field(max_length=40)
    variant: str = Field(default="", max_length=40)
    original_rollout_id: int = Field(
        foreign_key="rollout.id", index=True, ondelete="CASCADE", sa_type=BigIntType
    )
    rollout_id: int = Field(foreign_key="rollout.id", ondelete="CASCADE", sa_type=BigIntType)
    note: str = Field(default="")
