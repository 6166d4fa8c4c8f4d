"""HTML routes for judging: judge configurations, starting runs, live run progress, verdicts and
the import of external verdicts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from app.auth.dependencies import JudgeManager, JudgeRunner, ProjectReader, SessionDep
from app.core.errors import InvalidInput
from app.core.ids import BigId, NonNegInt64, bounded
from app.judging import configs as judge_configs
from app.judging import external as judge_external
from app.judging import launch as judge_launch
from app.judging import progress as judge_progress
from app.judging import service as judge_service
from app.judging.deps import ProjectJudgeConfig, ProjectRun
from app.judging.models import JudgeRun
from app.judging.schemas import (
    STRUCTURED_OUTPUT_MODES,
    JudgeConfigForm,
    JudgeConfigUpdateForm,
    RunCreate,
    SelectionInput,
    invalid_from,
)
from app.judging.status import UNFINISHED_STATUSES, RunStatus
from app.llm.egress import EgressPolicy
from app.web.flash import flash
from app.web.htmx import redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: judging"])


# htmx stops polling when a response has this status.
STOP_POLLING = 286
VERDICT_PAGE = 50


def _base(ctx: Any) -> str:
    return project_url(ctx.project_id, "judges")


# ---- judging home -----------------------------------------------------------------------------


def _runs_context(session: Any, ctx: Any, comparison_key: str | None = None) -> dict[str, Any]:
    rows = judge_progress.list_runs(session, ctx.project_id, comparison_key=comparison_key)
    return {
        "ctx": ctx,
        "runs": rows,
        "any_active": any(r.run.status in UNFINISHED_STATUSES for r in rows),
        "comparison_key": comparison_key,
    }


@router.get("/projects/{project_id}/judges", include_in_schema=False)
def judging_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    comparison: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    context = _runs_context(session, ctx, comparison)
    context["configs"] = judge_configs.list_configs(session, ctx.project_id)
    return render(request, "judging/index.html", context)


@router.get("/projects/{project_id}/judges/runs-table", include_in_schema=False)
def runs_table_fragment(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    comparison: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    context = _runs_context(session, ctx, comparison)
    status = 200 if context["any_active"] else STOP_POLLING
    return render(request, "judging/_runs.html", context, status_code=status)


RUN_FINISHED_EVENT = "run-finished"

# ---- judge configurations ---------------------------------------------------------------------


def _egress(request: Request) -> EgressPolicy:
    return EgressPolicy.from_settings(request.app.state.settings)


@router.get("/projects/{project_id}/judges/configs/new", include_in_schema=False)
def config_new_page(request: Request, ctx: JudgeManager) -> Response:
    context = {"ctx": ctx, "config": None, "modes": STRUCTURED_OUTPUT_MODES}
    return render(request, "judging/config_form.html", context)


@router.post("/projects/{project_id}/judges/configs", include_in_schema=False)
def config_create_action(
    request: Request,
    session: SessionDep,
    ctx: JudgeManager,
    form: Annotated[JudgeConfigForm, Form()],
) -> Response:
    data = form.to_input()
    config = judge_configs.create_config(
        session, ctx.project, actor=ctx.user, data=data, egress=_egress(request)
    )
    response = redirect(request, _base(ctx))
    flash(request, response, f"Judge configuration “{config.name}” saved.")
    return response


@router.get("/projects/{project_id}/judges/configs/{config_id}", include_in_schema=False)
def config_edit_page(
    request: Request, session: SessionDep, ctx: ProjectReader, config: ProjectJudgeConfig
) -> Response:
    context = {"ctx": ctx, "config": config, "modes": STRUCTURED_OUTPUT_MODES}
    return render(request, "judging/config_form.html", context)


@router.post("/projects/{project_id}/judges/configs/{config_id}", include_in_schema=False)
def config_update_action(
    request: Request,
    session: SessionDep,
    ctx: JudgeManager,
    config: ProjectJudgeConfig,
    form: Annotated[JudgeConfigUpdateForm, Form()],
) -> Response:
    data = form.to_input()
    judge_configs.update_config(
        session,
        ctx.project,
        config,
        actor=ctx.user,
        expected_revision=form.revision,
        data=data,
        egress=_egress(request),
    )
    response = redirect(request, _base(ctx))
    flash(request, response, f"Judge configuration “{config.name}” saved.")
    return response


@router.post(
    "/projects/{project_id}/judges/configs/{config_id}/test-connection", include_in_schema=False
)
def config_test_connection_fragment(
    request: Request, session: SessionDep, ctx: JudgeManager, config: ProjectJudgeConfig
) -> Response:
    check = judge_configs.check_connection(config)
    return render(request, "judging/_connection.html", {"check": check, "config": config})


@router.post("/projects/{project_id}/judges/configs/{config_id}/delete", include_in_schema=False)
def config_delete_action(
    request: Request, session: SessionDep, ctx: JudgeManager, config: ProjectJudgeConfig
) -> Response:
    judge_configs.delete_config(session, ctx.project, config, actor=ctx.user)
    response = redirect(request, _base(ctx))
    flash(request, response, f"Judge configuration “{config.name}” deleted.")
    return response


# ---- starting runs ----------------------------------------------------------------------------


def _split_text(value: str) -> list[str]:
    return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]


def _split_ints(value: str, field: str) -> list[int]:
    numbers = []
    for part in _split_text(value):
        try:
            number = int(part)
        except ValueError:
            raise InvalidInput(f"{field}: “{part}” is not a whole number.") from None
        numbers.append(bounded(number, field))
    return numbers


def _optional_int(value: str, field: str) -> int | None:
    if not value.strip():
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{field}: “{value}” is not a whole number.") from None
    return bounded(number, field)


class RunFields(BaseModel):
    """The judge-run form, read from the query string (estimate) or the posted form (create)."""

    rubric_version_id: str = Field(default="", max_length=100)
    judge_config_ids: list[str] = Field(default_factory=list)
    source: str = Field(default="all", max_length=100)
    gold_split: str = Field(default="", max_length=100)
    steps: str = Field(default="", max_length=100_000)
    models: str = Field(default="", max_length=100_000)
    groups: str = Field(default="", max_length=100_000)
    sample: str = Field(default="", max_length=100)
    seed: str = Field(default="", max_length=100)
    repeats: str = Field(default="1", max_length=100)
    neutral_score: str = Field(default="", max_length=100)
    batch: str = Field(default="", max_length=100)


def _run_request(fields: RunFields) -> RunCreate:
    version_id = _optional_int(fields.rubric_version_id, "Rubric version")
    if version_id is None:
        raise InvalidInput("Choose a published rubric version.")
    ids = (_optional_int(v, "Judge") for v in fields.judge_config_ids)
    config_ids = [cid for cid in ids if cid]
    if not config_ids:
        raise InvalidInput("Choose at least one judge configuration.")
    try:
        selection = SelectionInput(
            source=fields.source or "all",
            gold_split=fields.gold_split or None,
            steps=_split_ints(fields.steps, "Steps"),
            models=_split_text(fields.models),
            groups=_split_text(fields.groups),
            sample=_optional_int(fields.sample, "Sample size"),
            seed=_optional_int(fields.seed, "Seed"),
        )
        return RunCreate(
            rubric_version_id=version_id,
            judge_config_ids=config_ids,
            selection=selection,
            repeats=_optional_int(fields.repeats, "Repeats") if fields.repeats.strip() else 1,
            neutral_score=float(fields.neutral_score) if fields.neutral_score.strip() else 0.5,
            batch=fields.batch in ("on", "true", "1"),
        )
    except ValidationError as exc:
        raise invalid_from(exc) from None
    except ValueError:
        raise InvalidInput("Neutral score: must be a number from 0 to 1.") from None


@router.get("/projects/{project_id}/judges/runs/new", include_in_schema=False)
def run_new_page(request: Request, session: SessionDep, ctx: JudgeRunner) -> Response:
    project_id = ctx.project_id
    context = {
        "ctx": ctx,
        "versions": judge_service.list_versions(session, project_id),
        "configs": judge_configs.list_configs(session, project_id),
    }
    return render(request, "judging/run_new.html", context)


@router.get("/projects/{project_id}/judges/runs/estimate", include_in_schema=False)
def run_estimate_fragment(
    request: Request,
    session: SessionDep,
    ctx: JudgeRunner,
    fields: Annotated[RunFields, Query()],
) -> Response:
    data = _run_request(fields)
    estimate = judge_service.estimate_runs(session, ctx.project, data)
    return render(request, "judging/_estimate.html", {"ctx": ctx, "estimate": estimate})


@router.post("/projects/{project_id}/judges/runs", include_in_schema=False)
def run_create_action(
    request: Request,
    session: SessionDep,
    ctx: JudgeRunner,
    fields: Annotated[RunFields, Form()],
) -> Response:
    data = _run_request(fields)
    runs = judge_launch.create_runs(session, ctx.project, actor=ctx.user, data=data)
    if len(runs) == 1 and runs[0].status == RunStatus.PREPARING:
        url = f"{_base(ctx)}/runs/{runs[0].id}"
        message = f"Judge run #{runs[0].id} started: a worker is preparing its work items."
    elif len(runs) == 1:
        url = f"{_base(ctx)}/runs/{runs[0].id}"
        message = f"Judge run #{runs[0].id} queued with {runs[0].items_total:,} items."
    else:
        url = f"{_base(ctx)}?comparison={runs[0].comparison_key}"
        message = f"{len(runs)} cross-judge runs queued over the same rollouts."
    response = redirect(request, url)
    flash(request, response, message)
    return response


# ---- one run ----------------------------------------------------------------------------------


def _run_context(session: Any, ctx: Any, run: JudgeRun) -> dict[str, Any]:
    return {
        "ctx": ctx,
        "row": judge_progress.run_row(session, run),
        "run": run,
        "progress": judge_progress.run_progress(run),
    }


@router.get("/projects/{project_id}/judges/runs/{run_id}", include_in_schema=False)
def run_page(
    request: Request, session: SessionDep, ctx: ProjectReader, run: ProjectRun
) -> Response:
    context = _run_context(session, ctx, run)
    context.update(_verdict_context(session, context["run"], None, None))
    return render(request, "judging/run.html", context)


@router.get("/projects/{project_id}/judges/runs/{run_id}/progress", include_in_schema=False)
def run_progress_fragment(
    request: Request, session: SessionDep, ctx: ProjectReader, run: ProjectRun
) -> Response:
    context = _run_context(session, ctx, run)
    if not context["progress"].finished:
        return render(request, "judging/_progress.html", context)
    # The last poll: stop polling, and tell the verdict table to load what the run produced.
    headers = {"HX-Trigger": RUN_FINISHED_EVENT}
    return render(
        request, "judging/_progress.html", context, status_code=STOP_POLLING, headers=headers
    )


def _verdict_context(
    session: Any, run: Any, after_id: BigId | None, parse_status: str | None
) -> dict[str, Any]:
    verdicts = judge_progress.verdict_summaries(
        session, run, after_id=after_id, parse_status=parse_status, limit=VERDICT_PAGE + 1
    )
    more = len(verdicts) > VERDICT_PAGE
    verdicts = verdicts[:VERDICT_PAGE]
    return {
        "verdicts": verdicts,
        "external_ids": judge_progress.rollout_labels(session, [v.rollout_id for v in verdicts]),
        "next_after_id": verdicts[-1].id if more and verdicts else None,
        "parse_status": parse_status or "",
    }


@router.get("/projects/{project_id}/judges/runs/{run_id}/verdicts", include_in_schema=False)
def run_verdicts_fragment(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    run: ProjectRun,
    after_id: Annotated[NonNegInt64 | None, Query()] = None,
    parse_status: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    context = {"ctx": ctx, "run": run, **_verdict_context(session, run, after_id, parse_status)}
    # A fragment either way: "more" appends rows, a filter change replaces the table.
    template = "judging/_verdict_rows.html" if after_id else "judging/_verdicts.html"
    return render(request, template, context)


@router.post("/projects/{project_id}/judges/runs/{run_id}/cancel", include_in_schema=False)
def run_cancel_action(
    request: Request, session: SessionDep, ctx: JudgeRunner, run: ProjectRun
) -> Response:
    judge_service.cancel_run(session, ctx.project, run, actor=ctx.user)
    response = redirect(request, f"{_base(ctx)}/runs/{run.id}")
    flash(request, response, f"Run #{run.id} cancelled; workers stop calling the judge.")
    return response


@router.post("/projects/{project_id}/judges/runs/{run_id}/resume", include_in_schema=False)
def run_resume_action(
    request: Request, session: SessionDep, ctx: JudgeRunner, run: ProjectRun
) -> Response:
    judge_service.resume_run(session, ctx.project, run, actor=ctx.user)
    response = redirect(request, f"{_base(ctx)}/runs/{run.id}")
    flash(request, response, f"Run #{run.id} resumed.")
    return response


# ---- external verdicts ------------------------------------------------------------------------


@router.get("/projects/{project_id}/judges/import", include_in_schema=False)
def import_page(request: Request, session: SessionDep, ctx: JudgeRunner) -> Response:
    versions = judge_service.list_versions(session, ctx.project_id)
    return render(request, "judging/import.html", {"ctx": ctx, "versions": versions})


@router.post("/projects/{project_id}/judges/import", include_in_schema=False)
def import_action(
    request: Request,
    session: SessionDep,
    ctx: JudgeRunner,
    file: Annotated[UploadFile | None, File()] = None,
    rubric_version_id: Annotated[str, Form(max_length=20)] = "",
    judge_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    version_id = _optional_int(rubric_version_id, "Rubric version")
    if version_id is None:
        raise InvalidInput("Choose the rubric version the verdicts were given under.")
    if file is None or not file.filename:
        raise InvalidInput("Choose a JSONL file of verdicts to import.")
    if (file.size or 0) > judge_external.JOB_THRESHOLD_BYTES:
        # A large file: a job the worker runs, with a progress bar on its page.
        job = judge_external.queue_verdict_import(
            session,
            request.app.state.settings,
            ctx.project,
            actor=ctx.user,
            rubric_version_id=version_id,
            filename=file.filename,
            source=file.file,
            judge_name=judge_name.strip() or None,
        )
        return redirect(request, f"/projects/{ctx.project_id}/imports/{job.id}")
    summary = judge_external.import_verdicts(
        session,
        ctx.project,
        actor=ctx.user,
        rubric_version_id=version_id,
        stream=file.file,
        judge_name=judge_name.strip() or None,
        filename=file.filename,
    )
    first = summary.runs[0]
    url = (
        f"{_base(ctx)}/runs/{first.id}"
        if len(summary.runs) == 1
        else f"{_base(ctx)}?comparison={first.comparison_key}"
    )
    response = redirect(request, url)
    flash(
        request,
        response,
        f"Imported {summary.verdicts:,} verdicts from {', '.join(summary.judges)}.",
    )
    return response
