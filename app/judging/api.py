"""JSON routes for judging (/api/v1): judge configurations, runs, progress, verdicts, imports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from starlette.responses import Response

from app.auth.dependencies import JudgeManager, JudgeRunner, ProjectReader, SessionDep
from app.core.cursor import decode_cursor, encode_cursor
from app.core.ids import Id, NonNegInt64
from app.judging import configs as judge_configs
from app.judging import external as judge_external
from app.judging import launch as judge_launch
from app.judging import progress as judge_progress
from app.judging import service as judge_service
from app.judging.deps import ProjectJudgeConfig, ProjectRun
from app.judging.models import JudgeConfig, JudgeRun, Verdict
from app.judging.schemas import (
    ConnectionCheckPublic,
    ImportResult,
    JudgeConfigInput,
    JudgeConfigPublic,
    JudgeConfigUpdate,
    RunCreate,
    RunEstimate,
    RunPublic,
    VerdictPage,
    VerdictPublic,
)
from app.llm.egress import EgressPolicy
from app.rollouts import service as rollout_service
from app.rollouts.schemas import ImportPublic

router = APIRouter(prefix="/api/v1", tags=["judging"])


def _config(config: JudgeConfig) -> JudgeConfigPublic:
    return JudgeConfigPublic.model_validate(config.model_dump())


def _egress(request: Request) -> EgressPolicy:
    return EgressPolicy.from_settings(request.app.state.settings)


def _run(run: JudgeRun) -> RunPublic:
    progress = judge_progress.run_progress(run)
    return RunPublic.model_validate(
        {
            **run.model_dump(),
            "judge_name": judge_progress.run_judge_name(run),
            "status_label": progress.label,
            "rate_per_s": progress.rate_per_s,
            "eta_s": progress.eta_s,
        }
    )


@router.get("/projects/{project_id}/judge-configs", response_model=list[JudgeConfigPublic])
def list_judge_configs(session: SessionDep, ctx: ProjectReader) -> list[JudgeConfigPublic]:
    """Judge configurations of the project."""
    return [_config(c) for c in judge_configs.list_configs(session, ctx.project_id)]


@router.post(
    "/projects/{project_id}/judge-configs",
    response_model=JudgeConfigPublic,
    status_code=status.HTTP_201_CREATED,
)
def create_judge_config(
    request: Request, body: JudgeConfigInput, session: SessionDep, ctx: JudgeManager
) -> JudgeConfigPublic:
    """Create a judge configuration. `api_key_env` is the NAME of an environment variable the
    operator allows (RS_JUDGE_KEY_* or listed in RS_JUDGE_KEY_VARS); `base_url` must pass the
    outbound-URL policy (docs/configuration.md)."""
    config = judge_configs.create_config(
        session, ctx.project, actor=ctx.user, data=body, egress=_egress(request)
    )
    return _config(config)


@router.get("/projects/{project_id}/judge-configs/{config_id}", response_model=JudgeConfigPublic)
def get_judge_config(
    session: SessionDep, ctx: ProjectReader, config: ProjectJudgeConfig
) -> JudgeConfigPublic:
    return _config(config)


@router.put("/projects/{project_id}/judge-configs/{config_id}", response_model=JudgeConfigPublic)
def update_judge_config(
    request: Request,
    body: JudgeConfigUpdate,
    session: SessionDep,
    ctx: JudgeManager,
    config: ProjectJudgeConfig,
) -> JudgeConfigPublic:
    """Replace a judge configuration; `revision` must be the one you read (else 409)."""
    data = JudgeConfigInput.model_validate(body.model_dump(exclude={"revision"}))
    updated = judge_configs.update_config(
        session,
        ctx.project,
        config,
        actor=ctx.user,
        expected_revision=body.revision,
        data=data,
        egress=_egress(request),
    )
    return _config(updated)


@router.delete(
    "/projects/{project_id}/judge-configs/{config_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
def delete_judge_config(
    session: SessionDep, ctx: JudgeManager, config: ProjectJudgeConfig
) -> Response:
    """Delete an unused judge configuration (one used by runs is kept: 409)."""
    judge_configs.delete_config(session, ctx.project, config, actor=ctx.user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/projects/{project_id}/judge-configs/{config_id}/test-connection",
    response_model=ConnectionCheckPublic,
)
def test_judge_connection(
    session: SessionDep, ctx: JudgeManager, config: ProjectJudgeConfig
) -> ConnectionCheckPublic:
    """Send one tiny request through the judge's provider (no retries, at most 30 s); the
    answer or the error comes back with `ok`. Nothing is stored."""
    check = judge_configs.check_connection(config)
    return ConnectionCheckPublic.model_validate(check, from_attributes=True)


@router.post("/projects/{project_id}/judge-runs/estimate", response_model=RunEstimate)
def estimate_judge_runs(body: RunCreate, session: SessionDep, ctx: JudgeRunner) -> RunEstimate:
    """Tokens and cost of the runs `body` would start (nothing is created)."""
    return judge_service.estimate_runs(session, ctx.project, body)


@router.get("/projects/{project_id}/judge-runs", response_model=list[RunPublic])
def list_judge_runs(
    session: SessionDep,
    ctx: ProjectReader,
    comparison_key: Annotated[str | None, Query(max_length=64)] = None,
) -> list[RunPublic]:
    """Newest first; `comparison_key` lists one cross-judge set."""
    rows = judge_progress.list_runs(session, ctx.project_id, comparison_key=comparison_key)
    return [_run(row.run) for row in rows]


@router.post(
    "/projects/{project_id}/judge-runs",
    response_model=list[RunPublic],
    status_code=status.HTTP_201_CREATED,
)
def create_judge_runs(body: RunCreate, session: SessionDep, ctx: JudgeRunner) -> list[RunPublic]:
    """Queue one run per judge configuration (several: a cross-judge set). Workers do the work."""
    runs = judge_launch.create_runs(session, ctx.project, actor=ctx.user, data=body)
    return [_run(run) for run in runs]


@router.get("/projects/{project_id}/judge-runs/{run_id}", response_model=RunPublic)
def get_judge_run(session: SessionDep, ctx: ProjectReader, run: ProjectRun) -> RunPublic:
    """A run with its progress (done, errors, tokens, cost, rate and time left)."""
    return _run(run)


@router.post("/projects/{project_id}/judge-runs/{run_id}/cancel", response_model=RunPublic)
def cancel_judge_run(session: SessionDep, ctx: JudgeRunner, run: ProjectRun) -> RunPublic:
    return _run(judge_service.cancel_run(session, ctx.project, run, actor=ctx.user))


@router.post("/projects/{project_id}/judge-runs/{run_id}/resume", response_model=RunPublic)
def resume_judge_run(session: SessionDep, ctx: JudgeRunner, run: ProjectRun) -> RunPublic:
    return _run(judge_service.resume_run(session, ctx.project, run, actor=ctx.user))


@router.get("/projects/{project_id}/judge-runs/{run_id}/verdicts", response_model=VerdictPage)
def list_judge_verdicts(
    session: SessionDep,
    ctx: ProjectReader,
    run: ProjectRun,
    cursor: Annotated[
        str | None, Query(max_length=100, description="next_cursor of the previous page")
    ] = None,
    after_id: Annotated[
        NonNegInt64 | None,
        Query(deprecated=True, description="deprecated: use cursor (the old id cursor)"),
    ] = None,
    parse_status: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> VerdictPage:
    """Verdicts in id order; send `next_cursor` back as `cursor` for the next page."""
    after = decode_cursor(cursor) if cursor is not None else after_id
    rows = judge_progress.list_verdicts(
        session, run, after_id=after, parse_status=parse_status, limit=limit + 1
    )
    page: list[Verdict] = rows[:limit]
    last = page[-1].id if len(rows) > limit and page else None
    return VerdictPage(
        items=[VerdictPublic.model_validate(v.model_dump()) for v in page],
        next_cursor=encode_cursor(last) if last is not None else None,
        next_after_id=last,
    )


@router.post(
    "/projects/{project_id}/judge-runs/import",
    response_model=ImportResult,
    status_code=status.HTTP_201_CREATED,
)
def import_judge_verdicts(
    session: SessionDep,
    ctx: JudgeRunner,
    file: Annotated[UploadFile, File(description="JSONL, one verdict a line")],
    rubric_version_id: Annotated[Id, Form()],
    judge_name: Annotated[str | None, Form(max_length=200)] = None,
) -> ImportResult:
    """Import verdicts produced elsewhere as external runs (one per judge name)."""
    summary = judge_external.import_verdicts(
        session,
        ctx.project,
        actor=ctx.user,
        rubric_version_id=rubric_version_id,
        stream=file.file,
        judge_name=judge_name,
        filename=file.filename or "",
    )
    return ImportResult(runs=[_run(run) for run in summary.runs], verdicts=summary.verdicts)


@router.post(
    "/projects/{project_id}/judge-runs/import-jobs",
    response_model=ImportPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a verdict file to import as a job with progress",
)
def create_verdict_import_job(
    request: Request,
    session: SessionDep,
    ctx: JudgeRunner,
    file: Annotated[UploadFile, File(description="JSONL, one verdict a line")],
    rubric_version_id: Annotated[Id, Form()],
    judge_name: Annotated[str | None, Form(max_length=200)] = None,
) -> ImportPublic:
    """Queue a (large) verdict file: the worker reads and checks every line with progress, then
    stores one external run per judge (all or nothing). Poll
    `GET /api/v1/projects/{project_id}/imports/{id}`: `progress`, `finished`, then `run_ids`."""
    job = judge_external.queue_verdict_import(
        session,
        request.app.state.settings,
        ctx.project,
        actor=ctx.user,
        rubric_version_id=rubric_version_id,
        filename=file.filename or "verdicts.jsonl",
        source=file.file,
        judge_name=judge_name,
    )
    return rollout_service.import_public(session, job)
