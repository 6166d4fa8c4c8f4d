"""HTML routes for probes: the probe runs of a project with the form to start one, a run's live
progress, and its report (per probe: reward change, per criterion, examples side by side)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from app.auth.dependencies import JudgeRunner, ProjectContext, ProjectReader, SessionDep
from app.auth.policies import Permission
from app.core.errors import InvalidInput
from app.judging import configs as judge_configs
from app.judging import service as judge_service
from app.judging.models import JudgeConfig
from app.judging.schemas import invalid_from
from app.judging.service import VersionChoice
from app.probes import service as probe_service
from app.probes.deps import ProjectProbeRun
from app.probes.models import ProbeRun
from app.probes.report import DEFAULT_THRESHOLDS, EXPLANATIONS, TITLES
from app.probes.rewrites import DEFAULT_PROBES, DEFAULT_REPEATS, PROBES, ProbeSpec
from app.probes.schemas import CustomProbeInput, ProbeRunCreate
from app.probes.service import ProbeProgress
from app.rubrics import service as rubric_service
from app.rubrics.models import RubricVersion
from app.web.flash import flash
from app.web.htmx import redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: probes"])


def _base(ctx: Any) -> str:
    return project_url(ctx.project_id, "probes")


class ProbeFields(BaseModel):
    """The start form as typed (strings), so a refused form comes back as it was."""

    rubric_version_id: str = Field(default="", max_length=20)
    judge_config_id: str = Field(default="", max_length=20)
    probes: list[str] = Field(default_factory=list, max_length=20)
    gold_split: str = Field(default="development", max_length=20)
    sample: str = Field(default="", max_length=20)
    seed: str = Field(default="", max_length=20)
    custom_name: str = Field(default="", max_length=40)
    custom_kind: str = Field(default="pattern", max_length=20)
    custom_pattern: str = Field(default="", max_length=500)
    custom_replacement: str = Field(default="", max_length=5000)
    custom_template: str = Field(default="", max_length=20_000)


def _int(value: str, name: str) -> int | None:
    if not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name}: a whole number, please.") from None


def _request(fields: ProbeFields) -> ProbeRunCreate:
    version_id = _int(fields.rubric_version_id, "Rubric version")
    judge_id = _int(fields.judge_config_id, "Judge")
    if not version_id:
        raise InvalidInput("Choose a published rubric version.")
    if not judge_id:
        raise InvalidInput("Choose a judge configuration.")
    custom = []
    try:
        if fields.custom_name.strip():
            custom.append(
                CustomProbeInput(
                    name=fields.custom_name.strip(),
                    kind=fields.custom_kind,
                    pattern=fields.custom_pattern,
                    replacement=fields.custom_replacement,
                    template=fields.custom_template,
                )
            )
        return ProbeRunCreate(
            rubric_version_id=version_id,
            judge_config_id=judge_id,
            probes=fields.probes,
            custom=custom,
            gold_split=fields.gold_split if fields.gold_split in ("development", "test") else None,
            sample=_int(fields.sample, "Sample size"),
            seed=_int(fields.seed, "Seed"),
        )
    except ValidationError as exc:
        raise invalid_from(exc) from None


@dataclass
class ProbeIndexPage:
    """probes/index.html: the probe runs of a project (or of one rubric version) and the form."""

    ctx: ProjectContext
    runs: list[ProbeRun]
    progress: dict[int | None, ProbeProgress]
    versions: list[VersionChoice]
    version_labels: dict[int | None, str]
    configs: list[JudgeConfig]
    probe_specs: list[ProbeSpec]
    fields: ProbeFields
    version_id: int | None
    can_start: bool
    thresholds: dict[str, Any]
    error: str | None = None
    problems: Any = field(default_factory=list)  # the refusal's details


def _index_page(
    session: Any, ctx: ProjectContext, version_id: int | None, fields: ProbeFields | None = None
) -> ProbeIndexPage:
    project_id = ctx.project_id
    runs = probe_service.list_runs(session, project_id, version_id=version_id)
    versions = judge_service.list_versions(session, project_id)
    return ProbeIndexPage(
        ctx=ctx,
        runs=runs,
        progress={r.id: probe_service.progress(session, r) for r in runs},
        versions=versions,
        version_labels={v.version.id: v.label for v in versions},
        configs=list(judge_configs.list_configs(session, project_id)),
        probe_specs=[PROBES[name] for name in DEFAULT_PROBES],
        fields=fields or ProbeFields(probes=list(DEFAULT_PROBES)),
        version_id=version_id,
        can_start=ctx.can(Permission.judge_run),
        thresholds=DEFAULT_THRESHOLDS,
    )


@router.get("/projects/{project_id}/probes", include_in_schema=False)
def probes_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    rubric_version_id: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    return render(request, "probes/index.html", _index_page(session, ctx, rubric_version_id))


@router.post("/projects/{project_id}/probes", include_in_schema=False)
def probe_run_create_action(
    request: Request,
    session: SessionDep,
    ctx: JudgeRunner,
    fields: Annotated[ProbeFields, Form()],
) -> Response:
    try:
        data = _request(fields)
        run = probe_service.create_run(session, ctx.project, actor=ctx.user, data=data)
    except InvalidInput as exc:
        page = _index_page(session, ctx, None, fields)
        page.error = exc.message
        page.problems = exc.details or []
        return render(request, "probes/index.html", page, status_code=400)
    response = redirect(request, f"{_base(ctx)}/{run.id}")
    note = run.selection.get("note") or ""
    flash(
        request,
        response,
        f"Probe run #{run.id} queued: a worker makes the rewrites now. {note}".strip(),
    )
    return response


@dataclass
class ProbeRunPage:
    """probes/run.html and its progress fragment: one probe run, its progress and its report."""

    ctx: ProjectContext
    run: ProbeRun
    version: RubricVersion
    criterion_names: dict[str, str]
    judge: JudgeConfig | None
    progress: ProbeProgress
    rows: list[dict[str, Any]]
    pairwise: bool
    originals: int
    judgings: int
    titles: dict[str, str]
    explanations: dict[str, str]
    can_start: bool
    chart_config: dict[str, Any] | None = None


def _run_page(session: Any, ctx: ProjectContext, run: ProbeRun) -> ProbeRunPage:
    version = rubric_service.get_project_version(session, ctx.project_id, run.rubric_version_id)
    definition = rubric_service.version_definition(version)
    return ProbeRunPage(
        ctx=ctx,
        run=run,
        version=version,
        criterion_names={c.key: c.name for c in definition.criteria},
        judge=(
            judge_configs.get_config(session, ctx.project_id, run.judge_config_id)
            if run.judge_config_id
            else None
        ),
        progress=probe_service.progress(session, run),
        rows=probe_service.report_rows(run),
        pairwise=probe_service.is_pairwise(run),
        originals=probe_service.originals_count(run),
        judgings=1 + DEFAULT_REPEATS,
        titles=TITLES,
        explanations=EXPLANATIONS,
        can_start=ctx.can(Permission.judge_run),
    )


def uplift_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A bar per probe: mean reward uplift, with the CI ends as two thin line series."""
    measured = [r for r in rows if r.get("n") and r.get("uplift_mean") is not None]
    labels = [TITLES.get(r["name"], r["name"]) for r in measured]
    return {
        "type": "bar",
        "data": {
            "labels": labels,
            "datasets": [
                {
                    "label": "mean uplift",
                    "data": [r["uplift_mean"] for r in measured],
                    "backgroundColor": [
                        "#c0392b" if not r["passed"] else "#2e86c1" for r in measured
                    ],
                },
                {
                    "type": "line",
                    "label": "95 % CI low",
                    "data": [r["uplift_ci_low"] for r in measured],
                    "showLine": False,
                    "pointStyle": "line",
                    "borderColor": "#333",
                },
                {
                    "type": "line",
                    "label": "95 % CI high",
                    "data": [r["uplift_ci_high"] for r in measured],
                    "showLine": False,
                    "pointStyle": "line",
                    "borderColor": "#333",
                },
            ],
        },
        "options": {
            "indexAxis": "y",
            "scales": {"x": {"title": {"display": True, "text": "reward change vs original"}}},
        },
    }


@router.get("/projects/{project_id}/probes/{run_id}", include_in_schema=False)
def probe_run_page(
    request: Request, session: SessionDep, ctx: ProjectReader, run: ProjectProbeRun
) -> Response:
    page = _run_page(session, ctx, run)
    page.chart_config = uplift_chart(page.rows)
    return render(request, "probes/run.html", page)


@router.get("/projects/{project_id}/probes/{run_id}/progress", include_in_schema=False)
def probe_run_progress_fragment(
    request: Request, session: SessionDep, ctx: ProjectReader, run: ProjectProbeRun
) -> Response:
    page = _run_page(session, ctx, run)
    response = render(request, "probes/_progress.html", page)
    if page.progress.finished:
        # The report is a whole page section: reload once instead of swapping pieces.
        response.headers["HX-Refresh"] = "true"
    return response


@router.post("/projects/{project_id}/probes/{run_id}/cancel", include_in_schema=False)
def probe_run_cancel_action(
    request: Request, session: SessionDep, ctx: JudgeRunner, run_id: int
) -> Response:
    probe_service.cancel_run(session, ctx.project, actor=ctx.user, run_id=run_id)
    response = redirect(request, f"{_base(ctx)}/{run_id}")
    flash(request, response, f"Probe run #{run_id} cancelled.")
    return response
