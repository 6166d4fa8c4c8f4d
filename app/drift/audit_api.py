"""JSON routes for reviewers' audits, judge-human agreement over steps and judge drift checks."""

from __future__ import annotations

import io

from fastapi import APIRouter, Request, status

from app.auth.dependencies import (
    DriftAuditCreator,
    DriftImporter,
    JudgeRunner,
    ProjectReader,
    SessionDep,
)
from app.core.errors import InvalidInput
from app.drift import audit_service, check_service
from app.drift import service as drift_service
from app.drift.audit_schemas import (
    AuditCreate,
    AuditPublic,
    CheckCreate,
    DriftCheckPublic,
    StepAgreementPublic,
)
from app.drift.audit_service import AuditDesign
from app.drift.deps import ProjectAudit, ProjectDriftCheck, ProjectTrainingRun
from app.exports.deps import ProjectBundle
from app.rollouts import service as rollout_service
from app.rollouts.schemas import ImportPublic

router = APIRouter(prefix="/api/v1", tags=["drift audits"])
RUN = "/projects/{project_id}/training-runs/{run_id}"


@router.get(RUN + "/audits", response_model=list[AuditPublic])
def list_audits(
    session: SessionDep, ctx: ProjectReader, run: ProjectTrainingRun
) -> list[AuditPublic]:
    """The run's stratified audits with their labelling progress, newest first."""
    return [AuditPublic.of(row) for row in audit_service.list_audits(session, run)]


@router.post(RUN + "/audits", response_model=AuditPublic, status_code=status.HTTP_201_CREATED)
def create_audit(
    session: SessionDep, ctx: DriftAuditCreator, run: ProjectTrainingRun, body: AuditCreate
) -> AuditPublic:
    """Draw a stratified, seeded sample of the run's drift samples as an audit queue."""
    design = AuditDesign(
        size=body.size,
        rubric_version_id=body.rubric_version_id,
        assignee_ids=tuple(body.assignee_ids),
        overlap=body.overlap,
        seed=body.seed,
        step_buckets=body.step_buckets,
        reward_quantiles=body.reward_quantiles,
        extra=body.extra,
        criterion=body.criterion,
        name=body.name,
    )
    audit = audit_service.create_audit(session, ctx.project, run, actor=ctx.user, design=design)
    return AuditPublic.of(audit_service.audit_row(session, audit))


@router.get("/projects/{project_id}/audits/{audit_id}", response_model=AuditPublic)
def get_audit(session: SessionDep, ctx: ProjectReader, audit: ProjectAudit) -> AuditPublic:
    return AuditPublic.of(audit_service.audit_row(session, audit))


@router.get(RUN + "/agreement", response_model=StepAgreementPublic)
def get_agreement(
    session: SessionDep, ctx: ProjectReader, run: ProjectTrainingRun
) -> StepAgreementPublic:
    """Training-time judge against reviewers' audit labels per step bucket, early vs late."""
    return StepAgreementPublic.of(audit_service.step_agreement(session, run))


@router.post(
    "/projects/{project_id}/exports/{bundle_id}/drift-checks",
    response_model=DriftCheckPublic,
    status_code=status.HTTP_202_ACCEPTED,
)
def start_drift_check(
    session: SessionDep, ctx: JudgeRunner, bundle: ProjectBundle, body: CheckCreate | None = None
) -> DriftCheckPublic:
    """Re-judge the locked gold test split with the bundle's exact judge (a durable judge run)."""
    training_run_id = body.training_run_id if body else None
    if training_run_id is not None:
        drift_service.get_training_run(session, ctx.project_id, training_run_id)
    check = check_service.start_check(
        session, ctx.project, bundle, actor=ctx.user, training_run_id=training_run_id
    )
    return DriftCheckPublic.of(check_service.report(session, check, ctx.user))


@router.get("/projects/{project_id}/drift-checks/{check_id}", response_model=DriftCheckPublic)
def get_drift_check(
    session: SessionDep, ctx: ProjectReader, check: ProjectDriftCheck
) -> DriftCheckPublic:
    """The check's judge run status and, once done, the comparison with the export."""
    return DriftCheckPublic.of(check_service.report(session, check, ctx.user))


@router.post(
    "/projects/{project_id}/training-runs/{run}/samples",
    response_model=ImportPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send drift sample records (JSONL body) from a training job",
)
async def post_samples(
    request: Request, session: SessionDep, ctx: DriftImporter, run: str
) -> ImportPublic:
    """What the exported TRL / verl reward functions call (trainer_destination "api"): the body
    is JSONL (gzip accepted), `run` the training run's name (created on first use) or id. The
    import is queued for a worker; lines with problems are skipped and reported on the import."""
    settings = request.app.state.settings
    body = await request.body()
    if len(body) > settings.max_upload_bytes:
        raise InvalidInput("The body is larger than the upload limit; send smaller batches.")
    if not body.strip():
        raise InvalidInput("The body is empty: send one drift sample record per line.")
    project_id = ctx.project_id
    found = (
        drift_service.get_training_run(session, project_id, int(run))
        if run.isdigit()
        else drift_service.find_training_run(session, project_id, run)
    )
    if found is None:
        found = drift_service.create_training_run(session, ctx.project, ctx.user, name=run)
    job = drift_service.create_drift_import(
        session,
        settings,
        ctx.project,
        found,
        ctx.user,
        filename="api-samples.jsonl",
        source=io.BytesIO(body),
        skip_invalid=True,
    )
    return rollout_service.import_public(session, job)
