"""What crosses the API boundary for training runs, drift series and signals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.drift.models import DriftSample, TrainingRun
from app.rollouts.models import Rollout


class TrainingRunCreate(BaseModel):
    name: str = Field(max_length=200, description="the `training_run` its records carry")
    export_bundle_id: int | None = Field(None, description="the export bundle the run used")
    base_model: str | None = Field(None, max_length=300)
    notes: str = Field("", max_length=20_000)


class TrainingRunPublic(BaseModel):
    id: int
    project_id: int
    name: str
    export_bundle_id: int | None
    base_model: str | None
    notes: str
    synthetic: bool = Field(description="demo data with scripted rewards, not from an LLM")
    sample_count: int
    step_min: int | None
    step_max: int | None
    has_step_map: bool
    created_at: datetime

    @classmethod
    def of(cls, run: TrainingRun) -> TrainingRunPublic:
        return cls(
            id=run.id or 0,
            project_id=run.project_id,
            name=run.name,
            export_bundle_id=run.export_bundle_id,
            base_model=run.base_model,
            notes=run.notes,
            synthetic=run.synthetic,
            sample_count=run.sample_count,
            step_min=run.step_min,
            step_max=run.step_max,
            has_step_map=bool(run.step_map),
            created_at=run.created_at,
        )


class S3ImportRequest(BaseModel):
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = Field("", max_length=1024)
    skip_invalid: bool = False


class StepMapResult(BaseModel):
    log_rows: int
    samples_placed: int


class BucketPublic(BaseModel):
    """One step bucket. Rates are shares 0..1; null where nothing was measured."""

    step_start: int
    step_end: int = Field(description="inclusive")
    n: int
    reward_mean: float | None
    reward_sd: float | None = None
    reward_p10: float | None = None
    reward_p50: float | None = None
    reward_p90: float | None = None
    length_mean: float | None = Field(description="response length, characters")
    length_sd: float | None = None
    length_p90: float | None = None
    reward_length_spearman: float | None = None
    judge_error_rate: float | None
    neutral_rate: float | None
    gate_rate: float | None
    judge_addressed_rate: float | None
    judge_addressed: int
    quotes: int
    ungrounded_share: float | None
    latency_mean_ms: float | None
    groups: int = Field(description="GRPO groups with 2+ samples in the bucket")
    zero_spread_share: float | None
    criteria: dict[str, dict[str, Any]] = Field(
        description="criterion -> {mean, n, binary}; for pass/fail criteria the mean is the "
        "pass rate"
    )
    components: dict[str, dict[str, Any]] = Field(description="component -> {pass_rate, mean, n}")


class SeriesPublic(BaseModel):
    training_run: TrainingRunPublic
    bucket_width: int | None
    unstepped: int = Field(description="samples without a step (not in any bucket)")
    buckets: list[BucketPublic]


class SignalPublic(BaseModel):
    kind: str = Field(
        description="agreement_drop, reward_without_quality, length_hacking, "
        "criterion_divergence, grounding_decay, judge_addressed_text, judge_failing or "
        "signal_collapse"
    )
    onset_step: int | None = Field(description="first step of the bucket where it began")
    severity: str | None = Field(description="low, medium or high")
    evidence: dict[str, Any]


class ThresholdsPublic(BaseModel):
    """The project's signal thresholds (docs/drift.md, "Signals"): in force, and the defaults."""

    values: dict[str, float]
    defaults: dict[str, float]
    changed: list[str] = Field(description="the thresholds the project set")


class ExampleSamplePublic(BaseModel):
    """One drift sample shown as an example of a signal (its rollout holds the full text)."""

    id: int
    record_id: str
    step: int | None
    reward: float
    judge_status: str
    judge_criteria: dict[str, Any]
    response_chars: int
    judge_addressed: bool
    quotes_ungrounded: int | None
    prompt_key: str | None
    group_id: str | None
    rollout_id: int | None
    response: str | None = Field(description="the response the policy wrote (from the rollout)")

    @classmethod
    def of(cls, sample: DriftSample, rollouts: dict[int, Rollout]) -> ExampleSamplePublic:
        rollout = rollouts.get(sample.rollout_id or 0)
        return cls(
            id=sample.id or 0,
            record_id=sample.record_id,
            step=sample.step,
            reward=sample.reward,
            judge_status=sample.judge_status,
            judge_criteria=sample.judge_criteria,
            response_chars=sample.response_chars,
            judge_addressed=sample.judge_addressed,
            quotes_ungrounded=sample.quotes_ungrounded,
            prompt_key=sample.prompt_key,
            group_id=sample.group_id,
            rollout_id=sample.rollout_id,
            response=rollout.response if rollout is not None else None,
        )


class SignalExamplePublic(BaseModel):
    """A late sample that shows the signal, beside an early sample of the same prompt (if any)."""

    late: ExampleSamplePublic
    early: ExampleSamplePublic | None


class SignalExamplesPublic(BaseModel):
    kind: str
    fired: bool
    onset_step: int | None
    examples: list[SignalExamplePublic] = Field(description="empty when the signal did not fire")
