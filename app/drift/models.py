"""Samples taken during training, kept for audit of judge drift and reward hacking."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import BigIntType


class DriftSample(SQLModel, table=True):
    __tablename__ = "drift_sample"
    __table_args__ = (Index("ix_drift_sample_project_step", "project_id", "step"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    rollout_id: int = Field(foreign_key="rollout.id", sa_type=BigIntType)
    verdict_id: int | None = Field(default=None, foreign_key="verdict.id", sa_type=BigIntType)
    step: int
    reward: float | None = None
    stratum: str = Field(default="", max_length=80)
    audit_status: str = Field(
        default="pending", max_length=20, description="pending|agree|disagree"
    )
    audited_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    audit_note: str = Field(default="")
    sampled_at: datetime = Field(default_factory=utcnow)
    audited_at: datetime | None = None
