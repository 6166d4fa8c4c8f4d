"""Tables for training runs and the drift samples their reward functions recorded.

A training run collects the samples one policy-training job's reward function recorded
(INTERFACES.md §8). Each sample is also a Rollout of the project (so queues, the gold set and
disagreement review can use it); the reward, the judge's outcome and the figures computed at
import (length, judge-addressed text, grounding of quoted excerpts) stay on the sample, in typed
columns, so the dashboard aggregates them in SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import BigIntType, JSONType
from app.drift.kinds import DriftSource, JudgeStatus, sql_in


class TrainingRun(SQLModel, table=True):
    """One policy-training job whose reward function recorded drift samples."""

    __tablename__ = "training_run"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200, description="the `training_run` of its records")
    export_bundle_id: int | None = Field(
        default=None, foreign_key="export_bundle.id", index=True, ondelete="SET NULL"
    )
    base_model: str | None = Field(default=None, max_length=300)
    notes: str = Field(default="")
    synthetic: bool = Field(default=False, description="demo data: every page says so")
    # The training job's step/time log ([[iso time, step], ...] in time order), when uploaded:
    # samples without a step (Nova) get the step of the last logged time at or before theirs.
    step_map: list[Any] | None = Field(default=None, sa_type=JSONType)
    # Kept by the import, read by the dashboard without scanning the samples.
    sample_count: int = Field(default=0, sa_type=BigIntType)
    step_min: int | None = None
    step_max: int | None = None
    # Bumped whenever samples are added; cached series are valid for one data_version.
    data_version: int = 0
    series_cache: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DriftSample(SQLModel, table=True):
    """One scored rollout recorded during training (one §8 record)."""

    __tablename__ = "drift_sample"
    __table_args__ = (
        UniqueConstraint("training_run_id", "record_id"),
        # The dashboard's bucketed aggregates, the time-to-step mapping and GRPO group spread.
        Index("ix_drift_sample_run_step", "training_run_id", "step"),
        Index("ix_drift_sample_run_recorded", "training_run_id", "recorded_at"),
        Index("ix_drift_sample_run_group", "training_run_id", "group_id"),
        # An early sample of the same prompt, shown beside a late one on a signal's card.
        Index("ix_drift_sample_run_prompt", "training_run_id", "prompt_key", "step"),
        CheckConstraint(f"source IN ({sql_in(DriftSource)})", name="source"),
        CheckConstraint(f"judge_status IN ({sql_in(JudgeStatus)})", name="judge_status"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    # The training run's project, copied for queries by project. Not a foreign key, nor is
    # import_id: each key is checked row by row on insert, and at a million samples per import
    # those checks were a third of the database's time (migration 0017). Both follow the
    # training run, whose key is checked and whose deletion (or its project's) removes them.
    project_id: int
    training_run_id: int = Field(foreign_key="training_run.id", ondelete="CASCADE")
    record_id: str = Field(max_length=200, description="the record's `id`: import is idempotent")
    content_hash: str = Field(max_length=64, description="same id, other content: a conflict")
    # The rollout made from the record (source "drift:<run>"), written just before the sample
    # in the same transaction. Not a foreign key (migration 0018): the key's row-by-row check
    # cost each sample a look-up, and the only deletion of these rollouts (an import's undo)
    # removes the samples first.
    rollout_id: int | None = Field(default=None, index=True, sa_type=BigIntType)
    step: int | None = Field(default=None, description="recorded, or mapped from the time")
    step_mapped: bool = Field(default=False, description="step derived from the step/time CSV")
    recorded_at: datetime
    source: str = Field(default=DriftSource.other.value, max_length=20, description="DriftSource")
    bundle_hash: str | None = Field(default=None, max_length=100)
    sample_id: str | None = Field(default=None, max_length=200)
    group_id: str | None = Field(default=None, max_length=200)
    prompt_key: str | None = Field(
        default=None, max_length=64, description="hash of the prompt (messages + documents)"
    )
    reward: float
    components: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONType, description="{component: score 0..1}"
    )
    # {component: passed} when the record said so, else derived at import (score >= 0.5).
    components_passed: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    gated_by: str | None = Field(default=None, max_length=100)
    judge_status: str = Field(
        default=JudgeStatus.absent.value, max_length=20, description="JudgeStatus"
    )
    judge_criteria: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONType, description="{criterion: number (bool as 0/1)}"
    )
    judge_aggregate: float | None = None
    neutral_reward: bool = Field(default=False, description="the judge failed: neutral reward")
    latency_ms: float | None = None
    attempts: int | None = None
    error: str | None = Field(default=None, sa_type=Text)
    # Computed at import by pure functions (app/drift/measures.py).
    response_chars: int = 0
    judge_addressed: bool = False
    quotes_total: int | None = Field(default=None, description="None: no target document")
    quotes_ungrounded: int | None = Field(default=None, description="not in the target document")
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONType, sa_column_kwargs={"name": "metadata"}
    )
    # Not indexed (migration 0018): an import's undo finds its samples within the training run.
    import_id: int | None = Field(default=None, description="not a foreign key")
    created_at: datetime = Field(default_factory=utcnow)
