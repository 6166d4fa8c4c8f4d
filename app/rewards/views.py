"""HTML routes: the reward configuration page and the reward preview over stored verdicts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from app.auth.dependencies import ProjectReader, RewardEditor, SessionDep
from app.core.errors import InvalidInput
from app.core.ids import Id, NonNegInt32, bounded
from app.rewards import preview_jobs
from app.rewards import service as reward_service
from app.rewards.schemas import form_to_config, format_patterns
from app.web.flash import flash
from app.web.htmx import redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: rewards"])


def _page_context(session: SessionDep, ctx: ProjectReader) -> dict[str, object]:
    project_id = ctx.project_id
    state = reward_service.current_config(session, project_id)
    config = state.model.as_dict()
    return {
        "ctx": ctx,
        "config": config,
        "revision": state.revision,
        "row": state.row,
        "patterns_text": format_patterns(config["safety"]["patterns"]),
        "runs": reward_service.list_runs(session, project_id),
        "can_edit": ctx.can("reward.edit"),
    }


@router.get("/projects/{project_id}/rewards", include_in_schema=False)
def reward_config_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    return render(request, "rewards/config.html", _page_context(session, ctx))


@router.post("/projects/{project_id}/rewards", include_in_schema=False)
async def reward_config_save_action(
    request: Request, session: SessionDep, ctx: RewardEditor
) -> Response:
    form = await request.form()
    try:
        revision = int(str(form.get("revision", "")))
    except ValueError:
        raise InvalidInput("The form is missing its revision; reload the page.") from None
    bounded(revision, "The form's revision")
    config = reward_service.parse_config(form_to_config(form))
    row = reward_service.save_config(
        session, ctx.project, actor=ctx.user, config=config, expected_revision=revision
    )
    response = redirect(request, project_url(ctx.project_id, "rewards"))
    flash(request, response, f"Reward configuration saved (revision {row.revision}).")
    return response


@router.get("/projects/{project_id}/rewards/preview", include_in_schema=False)
def reward_preview_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    run_id: Annotated[Id, Query(ge=1)],
    gold_split: Annotated[str, Query(pattern="^(|development|test)$")] = "",
    step: Annotated[str, Query(max_length=12)] = "",
    sample: Annotated[str, Query(max_length=12)] = "",
) -> Response:
    try:
        step_value = int(step) if step.strip() else None
        sample_value = int(sample) if sample.strip() else None
    except ValueError:
        raise InvalidInput("Step and sample size must be whole numbers.") from None
    for number, what in ((step_value, "The step"), (sample_value, "The sample size")):
        if number is not None:
            bounded(number, what)
    if sample_value is not None and sample_value < 1:
        raise InvalidInput("The sample size must be at least 1.")
    selection = reward_service.PreviewSelection(
        run_id=run_id, gold_split=gold_split or None, step=step_value, sample=sample_value
    )
    plan = preview_jobs.plan_preview(session, ctx.project, selection)
    context = {"ctx": ctx, "preview": plan.preview, "selection": selection, "size": plan.size}
    if plan.preview is None:
        return render(
            request, "rewards/preview.html", context, fragment="rewards/_preview_large.html"
        )
    return render(request, "rewards/preview.html", context, fragment="rewards/_preview.html")


@router.post("/projects/{project_id}/rewards/preview/jobs", include_in_schema=False)
def reward_preview_job_start_action(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    run_id: Annotated[Id, Form(ge=1)],
    gold_split: Annotated[str, Form(pattern="^(|development|test)$")] = "",
    step: Annotated[NonNegInt32 | None, Form()] = None,
    sample: Annotated[int | None, Form(ge=1, le=reward_service.MAX_PREVIEW_ROLLOUTS)] = None,
) -> Response:
    selection = reward_service.PreviewSelection(
        run_id=run_id, gold_split=gold_split or None, step=step, sample=sample
    )
    job = preview_jobs.start_job(session, ctx.project, selection, ctx.user)
    return redirect(request, f"/projects/{ctx.project_id}/rewards/preview/jobs/{job.id}")


def _job_context(session: SessionDep, ctx: ProjectReader, job_id: int) -> dict[str, object]:
    job = preview_jobs.get_job(session, ctx.project_id, job_id)
    return {
        "ctx": ctx,
        "job": job,
        "selection": preview_jobs.job_selection(job),
        "preview": preview_jobs.job_preview(session, job),
    }


@router.get("/projects/{project_id}/rewards/preview/jobs/{job_id}", include_in_schema=False)
def reward_preview_job_page(
    request: Request, session: SessionDep, ctx: ProjectReader, job_id: Id
) -> Response:
    context = _job_context(session, ctx, job_id)
    return render(
        request, "rewards/preview_job.html", context, fragment="rewards/_preview_job.html"
    )
