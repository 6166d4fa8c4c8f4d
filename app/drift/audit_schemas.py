"""What crosses the API boundary for drift audits, agreement over steps and judge drift checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.agreement.stats import Figure, Proportion
from app.drift.audit_service import AuditRow
from app.drift.check_service import CheckReport
from app.drift.step_agreement import StepAgreement
from app.drift.stratify import DEFAULT_REWARD_QUANTILES, DEFAULT_STEP_BUCKETS, ExtraStratum


class AuditCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1, le=5000, description="samples to draw")
    rubric_version_id: int | None = Field(
        None, description="the version reviewers label with (default: the run's export bundle's)"
    )
    assignee_ids: list[int] = Field(
        default_factory=list, max_length=200, description="reviewers (default: you)"
    )
    overlap: int = Field(1, ge=1, le=20, description="reviewers per sample")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="chosen and recorded if omitted")
    step_buckets: int = Field(DEFAULT_STEP_BUCKETS, ge=1, le=50)
    reward_quantiles: int = Field(DEFAULT_REWARD_QUANTILES, ge=1, le=10)
    extra: ExtraStratum = Field(ExtraStratum.none, description="none | length | criterion")
    criterion: str | None = Field(None, max_length=80, description="with extra=criterion")
    name: str = Field("", max_length=200)


class AuditPublic(BaseModel):
    id: int
    training_run_id: int
    queue_id: int
    queue_name: str
    size: int
    seed: int
    samples: int
    labelled: int = Field(description="samples with as many labels as the overlap asks")
    design: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: AuditRow) -> AuditPublic:
        return cls(
            id=row.audit.id or 0,
            training_run_id=row.audit.training_run_id,
            queue_id=row.queue.id or 0,
            queue_name=row.queue.name,
            size=row.audit.size,
            seed=row.audit.seed,
            samples=row.samples,
            labelled=row.labelled,
            design=row.audit.design,
            created_at=row.audit.created_at,
        )


class ProportionPublic(BaseModel):
    k: int
    n: int
    value: float | None
    ci_low: float | None
    ci_high: float | None
    reason: str | None = None

    @classmethod
    def of(cls, p: Proportion) -> ProportionPublic:
        return cls(k=p.k, n=p.n, value=p.value, ci_low=p.ci_low, ci_high=p.ci_high, reason=p.reason)


class FigurePublic(BaseModel):
    value: float | None
    reason: str | None = None

    @classmethod
    def of(cls, f: Figure) -> FigurePublic:
        return cls(value=f.value, reason=f.reason)


class AgreementBucketPublic(BaseModel):
    step_start: int
    step_end: int
    samples: int
    pairs: int = Field(description="(sample, criterion, reviewer) comparisons")
    agreement: ProportionPublic
    kappa: FigurePublic
    true_positive_rate: ProportionPublic = Field(description="of reviewer fails, judge fails")
    true_negative_rate: ProportionPublic
    human_pass_rate: ProportionPublic
    deserved: ProportionPublic = Field(description="'deserved its reward': yes / (yes + no)")


class EarlyLatePublic(BaseModel):
    early_steps: tuple[int, int]
    late_steps: tuple[int, int]
    early: ProportionPublic
    late: ProportionPublic
    early_samples: int
    late_samples: int
    difference: float | None = Field(description="late minus early agreement")
    p_value: float | None
    test: str


class StepAgreementPublic(BaseModel):
    definition: str
    pairs: int
    samples: int
    buckets: list[AgreementBucketPublic]
    early_late: EarlyLatePublic | None

    @classmethod
    def of(cls, result: StepAgreement | None) -> StepAgreementPublic:
        from app.drift import step_agreement

        doc = " ".join((step_agreement.__doc__ or "").split())
        if result is None:
            return cls(definition=doc, pairs=0, samples=0, buckets=[], early_late=None)
        buckets = [
            AgreementBucketPublic(
                step_start=b.step_start,
                step_end=b.step_end,
                samples=b.samples,
                pairs=b.n,
                agreement=ProportionPublic.of(b.figures.agreement),
                kappa=FigurePublic.of(b.figures.kappa),
                true_positive_rate=ProportionPublic.of(b.figures.true_positive_rate),
                true_negative_rate=ProportionPublic.of(b.figures.true_negative_rate),
                human_pass_rate=ProportionPublic.of(b.human_pass_rate),
                deserved=ProportionPublic.of(b.deserved),
            )
            for b in result.buckets
        ]
        el = result.early_late
        early_late = (
            EarlyLatePublic(
                early_steps=el.early_steps,
                late_steps=el.late_steps,
                early=ProportionPublic.of(el.early),
                late=ProportionPublic.of(el.late),
                early_samples=el.early_samples,
                late_samples=el.late_samples,
                difference=el.difference,
                p_value=el.p_value.value,
                test=el.test,
            )
            if el is not None
            else None
        )
        return cls(
            definition=doc,
            pairs=result.pairs,
            samples=result.samples,
            buckets=buckets,
            early_late=early_late,
        )


class CheckCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    training_run_id: int | None = Field(None, description="the training run it was checked for")


class FigureChangePublic(BaseModel):
    key: str
    name: str
    at_export: float | None
    now: float | None
    change: float | None


class FlipPublic(BaseModel):
    rollout_id: int
    external_id: str
    criterion: str
    at_export: str
    now: str


class DriftCheckPublic(BaseModel):
    id: int
    export_bundle_id: int
    bundle_number: int
    run_id: int
    run_status: str
    finished: bool
    n_at_export: int | None
    n_now: int | None
    export_run_id: int | None
    figures: list[FigureChangePublic]
    flips: list[FlipPublic]
    note: str | None
    created_at: datetime

    @classmethod
    def of(cls, report: CheckReport) -> DriftCheckPublic:
        return cls(
            id=report.check.id or 0,
            export_bundle_id=report.bundle.id or 0,
            bundle_number=report.bundle.number,
            run_id=report.run.id or 0,
            run_status=report.run.status,
            finished=report.finished,
            n_at_export=report.n_at_export,
            n_now=report.n_now,
            export_run_id=report.export_run_id,
            figures=[
                FigureChangePublic(
                    key=f.key, name=f.name, at_export=f.at_export, now=f.now, change=f.change
                )
                for f in report.figures
            ],
            flips=[
                FlipPublic(
                    rollout_id=f.rollout_id,
                    external_id=f.external_id,
                    criterion=f.criterion,
                    at_export=f.at_export,
                    now=f.now,
                )
                for f in report.flips
            ],
            note=report.note,
            created_at=report.check.created_at,
        )
