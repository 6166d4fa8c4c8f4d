"""Tables for reviewers' work on a training run: stratified audits (each one an audit queue of
the labels domain) and judge drift checks (a judge run of the locked gold test split with an
export bundle's rubric version and judge settings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import BigIntType, JSONType


class DriftAudit(SQLModel, table=True):
    """A stratified sample of a training run's drift samples, labelled blind in its queue."""

    __tablename__ = "drift_audit"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    training_run_id: int = Field(foreign_key="training_run.id", index=True, ondelete="CASCADE")
    queue_id: int = Field(foreign_key="annotation_queue.id", index=True, ondelete="CASCADE")
    size: int = Field(description="samples asked for")
    seed: int
    # The design as applied: bucket plan, quantiles, extra stratifier, per-stratum counts.
    design: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


class DriftAuditSample(SQLModel, table=True):
    """One sample of an audit and the stratum it was drawn from."""

    __tablename__ = "drift_audit_sample"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    audit_id: int = Field(foreign_key="drift_audit.id", index=True, ondelete="CASCADE")
    drift_sample_id: int = Field(
        foreign_key="drift_sample.id", index=True, ondelete="CASCADE", sa_type=BigIntType
    )
    rollout_id: int = Field(foreign_key="rollout.id", sa_type=BigIntType)
    stratum: str = Field(max_length=80)


class JudgeDriftCheck(SQLModel, table=True):
    """A re-run of the locked gold test split with an export bundle's exact judge."""

    __tablename__ = "judge_drift_check"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    export_bundle_id: int = Field(foreign_key="export_bundle.id", index=True, ondelete="CASCADE")
    run_id: int = Field(foreign_key="judge_run.id", index=True, ondelete="CASCADE")
    training_run_id: int | None = Field(
        default=None, foreign_key="training_run.id", ondelete="SET NULL"
    )
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
