"""Tables for judge configurations, judge runs, their durable work items and verdicts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import BigIntType, JSONType
from app.judging.status import STATUS_LABELS


class JudgeConfig(SQLModel, table=True):
    """How to call a judge model. Credentials are never stored: only the NAME of an env var."""

    __tablename__ = "judge_config"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    provider: str = Field(max_length=30, description="bedrock | openai_compat | external")
    model_id: str = Field(default="", max_length=300)
    base_url: str | None = Field(default=None, max_length=500)
    api_key_env: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=40)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    concurrency: int = 8
    timeout_s: float = 60.0
    max_attempts: int = 5
    price_input_per_1k: float = 0.0
    price_output_per_1k: float = 0.0
    revision: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class JudgeRun(SQLModel, table=True):
    """One rubric version x one judge configuration x a set of rollouts (or pairs) x k repeats.

    status: a RunStatus (app/judging/status.py): queued -> running -> completed | with_errors |
    failed | cancelled (resume puts it back to queued).
    Counters are kept in step with the verdicts: they change in the transaction that inserts them.
    """

    __tablename__ = "judge_run"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    rubric_version_id: int = Field(foreign_key="rubric_version.id", index=True)
    judge_config_id: int | None = Field(default=None, foreign_key="judge_config.id", index=True)
    judge_snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    kind: str = Field(
        default="standard", max_length=20, description="standard|pairwise|external|batch"
    )
    comparison_key: str | None = Field(default=None, max_length=64, index=True)
    external_judge_name: str | None = Field(default=None, max_length=200)
    selection: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    repeats: int = 1
    status: str = Field(default="queued", max_length=20, index=True)
    items_total: int = 0
    items_done: int = 0
    items_error: int = 0
    input_tokens: int = Field(default=0, sa_type=BigIntType)
    output_tokens: int = Field(default=0, sa_type=BigIntType)
    cost: float = 0.0
    estimated_cost: float | None = None
    batch_job_arn: str | None = Field(default=None, max_length=300)
    # neutral_score (stored for failed verdicts), estimate figures, batch S3 locations...
    settings: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    # Progress rate is measured from this mark (set when the run starts or resumes).
    rate_base_done: int = 0
    rate_base_at: datetime | None = None
    # Run-level lease, for work done on the run as a whole (Bedrock batch submit and poll).
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = None
    next_poll_at: datetime | None = None
    message: str = Field(default="")
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def status_label(self) -> str:
        """The status in words ("with_errors" → "completed with errors")."""
        return STATUS_LABELS.get(self.status, self.status)  # type: ignore[call-overload]


class JudgeWorkItem(SQLModel, table=True):
    """One (run, rollout or pair, repeat, order) to judge: the durable unit of work."""

    __tablename__ = "judge_work_item"
    __table_args__ = (
        UniqueConstraint("run_id", "subject_key", "repeat", "order_shown"),
        Index("ix_judge_work_item_queue", "run_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    run_id: int = Field(foreign_key="judge_run.id", ondelete="CASCADE")
    rollout_id: int = Field(foreign_key="rollout.id", index=True, sa_type=BigIntType)
    pair_id: int | None = Field(default=None, foreign_key="rollout_pair.id", sa_type=BigIntType)
    # "r:<rollout id>" or "p:<pair id>": never NULL, so the unique constraint really holds.
    subject_key: str = Field(max_length=40)
    repeat: int = 0
    order_shown: str = Field(default="", max_length=2, description="AB or BA for pairwise runs")
    status: str = Field(default="pending", max_length=20, description="pending|leased|done")
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = None
    attempts: int = 0


class Verdict(SQLModel, table=True):
    """The judge's parsed answer for one work item; exactly one per item.

    Pairwise runs: `answer` is what the judge said about the order it was shown (`order_shown`);
    `winner` is translated back to the pair's own A (rollout_a) / B (rollout_b) / tie, and
    `normalized` is 1 when A wins, 0 when B wins, 0.5 for a tie.
    parse_status: ok | repaired (after the one repair request) | invalid (the judge's reply never
    matched the schema) | error (the call failed). invalid and error store the run's neutral score.
    """

    __table_args__ = (
        Index("ix_verdict_run_rollout", "run_id", "rollout_id"),
        # A run's verdict pages walk its verdicts in id order (keyset: run_id = ? AND id > ?);
        # without it a later run's pages scanned the primary key past every earlier verdict.
        Index("ix_verdict_run_order", "run_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    run_id: int = Field(foreign_key="judge_run.id", ondelete="CASCADE")
    work_item_id: int | None = Field(
        default=None, foreign_key="judge_work_item.id", unique=True, sa_type=BigIntType
    )
    rollout_id: int = Field(foreign_key="rollout.id", index=True, sa_type=BigIntType)
    pair_id: int | None = Field(default=None, foreign_key="rollout_pair.id", sa_type=BigIntType)
    repeat: int = 0
    order_shown: str = Field(default="", max_length=2)
    answer: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    scores: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    aggregate: float | None = None
    normalized: float | None = None
    # A, B, tie, or "inconsistent" (a verdict imported combined over both orders)
    winner: str | None = Field(default=None, max_length=20)
    raw_text: str = Field(default="")
    parse_status: str = Field(default="ok", max_length=20, description="ok|repaired|invalid|error")
    error: str | None = None
    latency_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 0
    judge_name: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
