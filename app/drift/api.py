"""JSON routes for training runs, drift sample imports, series and signals (/api/v1)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile, status
from starlette.responses import Response

from app.auth.dependencies import DriftImporter, ProjectReader, SessionDep
from app.drift import service as drift_service
from app.drift.deps import ProjectTrainingRun
from app.drift.schemas import (
    BucketPublic,
    ExampleSamplePublic,
    S3ImportRequest,
    SeriesPublic,
    SignalExamplePublic,
    SignalExamplesPublic,
    SignalPublic,
    StepMapResult,
    ThresholdsPublic,
    TrainingRunCreate,
    TrainingRunPublic,
)
from app.drift.signal_types import DriftThresholds, SignalKind
from app.rollouts import service as rollout_service
from app.rollouts.schemas import ImportPublic
from app.web.csv_safe import csv_response

router = APIRouter(prefix="/api/v1", tags=["drift"])
RUNS = "/projects/{project_id}/training-runs"


@router.get(RUNS, response_model=list[TrainingRunPublic])
def list_training_runs(session: SessionDep, ctx: ProjectReader) -> list[TrainingRunPublic]:
    """The project's training runs, newest first."""
    runs = drift_service.list_training_runs(session, ctx.project_id)
    return [TrainingRunPublic.of(run) for run in runs]


@router.post(RUNS, response_model=TrainingRunPublic, status_code=status.HTTP_201_CREATED)
def create_training_run(
    session: SessionDep, ctx: DriftImporter, body: TrainingRunCreate
) -> TrainingRunPublic:
    """A training run collects the drift samples one training job's reward function recorded."""
    run = drift_service.create_training_run(
        session,
        ctx.project,
        ctx.user,
        name=body.name,
        export_bundle_id=body.export_bundle_id,
        base_model=body.base_model,
        notes=body.notes,
    )
    return TrainingRunPublic.of(run)


@router.get(RUNS + "/{run_id}", response_model=TrainingRunPublic)
def get_training_run(
    session: SessionDep, ctx: ProjectReader, run: ProjectTrainingRun
) -> TrainingRunPublic:
    return TrainingRunPublic.of(run)


@router.post(
    RUNS + "/{run_id}/imports",
    response_model=ImportPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a drift sample file (JSONL, gzip accepted) to import",
)
def import_samples(
    request: Request,
    session: SessionDep,
    ctx: DriftImporter,
    run: ProjectTrainingRun,
    file: Annotated[UploadFile, File(description="§8 drift records, JSONL or JSONL.gz")],
    skip_invalid: Annotated[bool, Form()] = False,
) -> ImportPublic:
    """Queue the file's import; poll `/api/v1/projects/{project_id}/imports/{id}`. Idempotent:
    a record id already stored with the same content is skipped."""
    job = drift_service.create_drift_import(
        session,
        request.app.state.settings,
        ctx.project,
        run,
        ctx.user,
        filename=file.filename or "samples.jsonl",
        source=file.file,
        skip_invalid=skip_invalid,
    )
    return rollout_service.import_public(session, job)


@router.post(
    RUNS + "/{run_id}/imports/s3",
    response_model=ImportPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Import every drift sample object under an S3 prefix",
)
def import_samples_from_s3(
    request: Request,
    session: SessionDep,
    ctx: DriftImporter,
    run: ProjectTrainingRun,
    body: S3ImportRequest,
) -> ImportPublic:
    """The worker reads the objects with the server's own AWS credentials (environment or IAM)."""
    job = drift_service.create_drift_import(
        session,
        request.app.state.settings,
        ctx.project,
        run,
        ctx.user,
        filename="s3",
        s3={"bucket": body.bucket, "prefix": body.prefix},
        skip_invalid=body.skip_invalid,
    )
    return rollout_service.import_public(session, job)


@router.put(RUNS + "/{run_id}/step-map", response_model=StepMapResult)
def upload_step_map(
    session: SessionDep,
    ctx: DriftImporter,
    run: ProjectTrainingRun,
    file: Annotated[UploadFile, File(description="CSV with columns step and timestamp")],
) -> StepMapResult:
    """Map the time of samples recorded without a step (Nova) to the training step."""
    text = file.file.read(20 * 1024 * 1024).decode("utf-8", errors="replace")
    mapping, placed = drift_service.set_step_map(session, run, ctx.user, text)
    return StepMapResult(log_rows=len(mapping.times), samples_placed=placed)


@router.get(RUNS + "/{run_id}/series", response_model=SeriesPublic)
def get_series(
    session: SessionDep, ctx: ProjectReader, run: ProjectTrainingRun, buckets: int = 20
) -> SeriesPublic:
    """Per step bucket: reward (mean, p10/p50/p90), length, criteria, components, rates."""
    data = drift_service.series(session, run, target_buckets=max(1, min(buckets, 200)))
    return SeriesPublic(
        training_run=TrainingRunPublic.of(run),
        bucket_width=data.plan.width if data.plan else None,
        unstepped=drift_service.unstepped_count(session, run),
        buckets=[BucketPublic.model_validate(b) for b in data.buckets],
    )


@router.get(
    RUNS + "/{run_id}/series.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_series_csv(session: SessionDep, ctx: ProjectReader, run: ProjectTrainingRun) -> Response:
    """The same series as CSV, one row per bucket (criteria and components as columns)."""
    data = drift_service.series(session, run)
    return csv_response(drift_service.series_rows(data), f"training-run-{run.id}-series.csv")


@router.get(RUNS + "/{run_id}/signals", response_model=list[SignalPublic])
def get_signals(
    session: SessionDep, ctx: ProjectReader, run: ProjectTrainingRun
) -> list[SignalPublic]:
    """Signals that fired, each with its onset step, severity and evidence (numbers, test)."""
    results = drift_service.signals(session, ctx.project, run)
    return [SignalPublic(**r.public()) for r in results if r.fired]


@router.get(RUNS + "/{run_id}/signals/{kind}/examples", response_model=SignalExamplesPublic)
def get_signal_examples(
    session: SessionDep, ctx: ProjectReader, run: ProjectTrainingRun, kind: SignalKind
) -> SignalExamplesPublic:
    """The samples a signal's card shows: late samples that show it (most telling first), each
    with the earliest sample of the same prompt from before the onset when there is one."""
    result = next(r for r in drift_service.signals(session, ctx.project, run) if r.kind == kind)
    pairs = drift_service.signal_examples(session, run, result)
    samples = [p.late for p in pairs] + [p.early for p in pairs if p.early is not None]
    rollouts = drift_service.rollouts_of(session, samples)
    return SignalExamplesPublic(
        kind=kind.value,
        fired=result.fired,
        onset_step=result.onset_step,
        examples=[
            SignalExamplePublic(
                late=ExampleSamplePublic.of(p.late, rollouts),
                early=ExampleSamplePublic.of(p.early, rollouts) if p.early else None,
            )
            for p in pairs
        ],
    )


def _thresholds(project: Any) -> ThresholdsPublic:
    return ThresholdsPublic(
        values=drift_service.thresholds(project).as_dict(),
        defaults=DriftThresholds().as_dict(),
        changed=sorted(drift_service.stored_thresholds(project)),
    )


@router.get("/projects/{project_id}/drift-thresholds", response_model=ThresholdsPublic)
def get_thresholds(ctx: ProjectReader) -> ThresholdsPublic:
    """The project's signal thresholds (each signal's test and effect size)."""
    return _thresholds(ctx.project)


@router.put("/projects/{project_id}/drift-thresholds", response_model=ThresholdsPublic)
def put_thresholds(
    session: SessionDep, ctx: DriftImporter, body: dict[str, float]
) -> ThresholdsPublic:
    """Set the project's signal thresholds: those given; the others go back to their defaults."""
    drift_service.save_thresholds(session, ctx.project, ctx.user, dict(body), strict=True)
    return _thresholds(ctx.project)
