"""Tables for expert labels, annotation queues, disagreement resolutions and gold sets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import BigIntType, JSONType


class AnnotationQueue(SQLModel, table=True):
    __tablename__ = "annotation_queue"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    kind: str = Field(default="labeling", max_length=20, description="labeling | audit")
    rubric_version_id: int = Field(foreign_key="rubric_version.id")
    overlap: int = Field(default=1, description="how many experts label each item")
    selection: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    closed: bool = False


class QueueAssignee(SQLModel, table=True):
    __tablename__ = "queue_assignee"
    __table_args__ = (UniqueConstraint("queue_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    queue_id: int = Field(foreign_key="annotation_queue.id", index=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")


class QueueItem(SQLModel, table=True):
    __tablename__ = "queue_item"
    __table_args__ = (UniqueConstraint("queue_id", "subject_key"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    queue_id: int = Field(foreign_key="annotation_queue.id", index=True, ondelete="CASCADE")
    rollout_id: int = Field(foreign_key="rollout.id", index=True, sa_type=BigIntType)
    pair_id: int | None = Field(default=None, foreign_key="rollout_pair.id", sa_type=BigIntType)
    subject_key: str = Field(max_length=40, description="r:<rollout id> or p:<pair id>")
    position: int = 0
    labels_done: int = 0


class Label(SQLModel, table=True):
    """An expert's answer for one rollout (or pair) under one rubric version."""

    __table_args__ = (
        UniqueConstraint("subject_key", "rubric_version_id", "annotator_key"),
        Index("ix_label_project_rollout", "project_id", "rollout_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    rollout_id: int = Field(foreign_key="rollout.id", sa_type=BigIntType)
    pair_id: int | None = Field(default=None, foreign_key="rollout_pair.id", sa_type=BigIntType)
    subject_key: str = Field(max_length=40, description="r:<rollout id> or p:<pair id>")
    rubric_version_id: int = Field(foreign_key="rubric_version.id", index=True)
    queue_id: int | None = Field(
        default=None, foreign_key="annotation_queue.id", ondelete="SET NULL"
    )
    annotator_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    annotator_key: str = Field(
        max_length=320, description="user:<id> or an imported annotator name"
    )
    annotator_name: str = Field(default="", max_length=320)
    values: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    critiques: dict[str, str] = Field(default_factory=dict, sa_type=JSONType)
    overall_critique: str = Field(default="")
    # Audit queues ask reviewers whether the sample deserved the reward it got in training.
    deserved: str | None = Field(default=None, max_length=8, description="Deserved")
    preference: str | None = Field(default=None, max_length=4, description="A | B | tie")
    shown_order: str = Field(default="", max_length=2)
    status: str = Field(default="draft", max_length=20, description="draft | submitted")
    source: str = Field(default="ui", max_length=20, description="ui | import | api")
    revision: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    submitted_at: datetime | None = None


class LabelRevision(SQLModel, table=True):
    """History of a submitted label: every change keeps the previous values."""

    __tablename__ = "label_revision"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    label_id: int = Field(
        foreign_key="label.id", index=True, ondelete="CASCADE", sa_type=BigIntType
    )
    revision: int
    snapshot: dict[str, Any] = Field(sa_type=JSONType)
    changed_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    reason: str = Field(default="")
    changed_at: datetime = Field(default_factory=utcnow)


class DisagreementResolution(SQLModel, table=True):
    __tablename__ = "disagreement_resolution"
    __table_args__ = (UniqueConstraint("run_id", "label_id", "criterion"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    run_id: int = Field(foreign_key="judge_run.id", index=True, ondelete="CASCADE")
    label_id: int = Field(foreign_key="label.id", ondelete="CASCADE", sa_type=BigIntType)
    rollout_id: int = Field(foreign_key="rollout.id", sa_type=BigIntType)
    criterion: str = Field(max_length=80, description="criterion key, or _aggregate")
    resolution: str = Field(max_length=30, description="judge_wrong|label_wrong|ambiguous")
    note: str = Field(default="")
    resolved_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    resolved_at: datetime = Field(default_factory=utcnow)


class GoldItem(SQLModel, table=True):
    """A labeled rollout in the judge's regression suite."""

    __tablename__ = "gold_item"
    __table_args__ = (UniqueConstraint("project_id", "rollout_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    rollout_id: int = Field(foreign_key="rollout.id", sa_type=BigIntType)
    split: str = Field(default="development", max_length=20, description="development | test")
    expectation: str = Field(default="", max_length=20, description="good | bad")
    note: str = Field(default="")
    added_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    added_at: datetime = Field(default_factory=utcnow)


class LabelTally(SQLModel, table=True):
    """How many times the submitted labels under a rubric (any of its versions) were written: a
    counter that database triggers on `label` raise with every insert, update and delete of a
    submitted label (migration 0021; drafts are read by no figure), so every writer counts, bulk
    imports and cascades included. Figures computed from labels are keyed by it: reading one row
    by key replaces counting a run's labels (20,000 rows) on every page."""

    __tablename__ = "label_tally"

    rubric_id: int = Field(foreign_key="rubric.id", primary_key=True, ondelete="CASCADE")
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    changes: int = Field(default=0, sa_type=BigIntType)
