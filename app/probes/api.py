"""JSON routes for probes (/api/v1): start a probe run, follow its progress, read its report."""

from __future__ import annotations

from fastapi import APIRouter, Query, status
from sqlmodel import Session

from app.auth.dependencies import JudgeRunner, ProjectReader, SessionDep
from app.probes import service as probe_service
from app.probes.deps import ProjectProbeRun
from app.probes.models import ProbeRun
from app.probes.schemas import ProbeRowPublic, ProbeRunCreate, ProbeRunPublic

router = APIRouter(prefix="/api/v1", tags=["probes"])


def run_public(session: Session, run: ProbeRun) -> ProbeRunPublic:
    progress = probe_service.progress(session, run)
    rows = probe_service.report_rows(run)
    return ProbeRunPublic.model_validate(
        {
            **run.model_dump(),
            "selection": probe_service.public_selection(run),
            "items_total": progress.total,
            "items_done": progress.done,
            "passed": (run.report or {}).get("passed") if run.report else None,
            "report": [ProbeRowPublic.model_validate(r) for r in rows] if run.report else None,
        }
    )


@router.post(
    "/projects/{project_id}/probe-runs",
    response_model=ProbeRunPublic,
    status_code=status.HTTP_201_CREATED,
)
def create_probe_run(body: ProbeRunCreate, session: SessionDep, ctx: JudgeRunner) -> ProbeRunPublic:
    """Start a probe run: a worker rewrites the selection and judges originals and rewrites."""
    run = probe_service.create_run(session, ctx.project, actor=ctx.user, data=body)
    return run_public(session, run)


@router.get("/projects/{project_id}/probe-runs", response_model=list[ProbeRunPublic])
def list_probe_runs(
    session: SessionDep,
    ctx: ProjectReader,
    rubric_version_id: int | None = Query(default=None),
) -> list[ProbeRunPublic]:
    runs = probe_service.list_runs(session, ctx.project_id, version_id=rubric_version_id)
    return [run_public(session, r) for r in runs]


@router.get("/projects/{project_id}/probe-runs/{run_id}", response_model=ProbeRunPublic)
def get_probe_run(session: SessionDep, ctx: ProjectReader, run: ProjectProbeRun) -> ProbeRunPublic:
    """A probe run with its progress and, once completed, its report (one row per probe)."""
    return run_public(session, run)


@router.post("/projects/{project_id}/probe-runs/{run_id}/cancel", response_model=ProbeRunPublic)
def cancel_probe_run(run_id: int, session: SessionDep, ctx: JudgeRunner) -> ProbeRunPublic:
    run = probe_service.cancel_run(session, ctx.project, actor=ctx.user, run_id=run_id)
    return run_public(session, run)
