"""HTML routes for disagreement review: where the judge and the experts disagree, per run, and
their resolution."""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from app.auth.dependencies import (
    DisagreementResolver,
    ProjectReader,
    SessionDep,
)
from app.auth.policies import Permission
from app.core.errors import InvalidInput
from app.core.ids import BigId, Id, Int32
from app.labels import resolutions, review
from app.labels.highlight import EXCERPT_KEYS
from app.rollouts import service as rollout_service
from app.web.flash import flash
from app.web.htmx import is_htmx, redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: labeling"])


def _base(ctx: Any) -> str:
    return project_url(ctx.project_id)


def _tolerances(tolerance: float | None, aggregate_tolerance: float | None) -> tuple[float, float]:
    tol = review.DEFAULT_TOLERANCE if tolerance is None else tolerance
    agg = review.DEFAULT_AGGREGATE_TOLERANCE if aggregate_tolerance is None else aggregate_tolerance
    if not (math.isfinite(tol) and math.isfinite(agg)):
        raise InvalidInput("Tolerances must be numbers.")
    return tol, agg


def _review_context(
    request: Request,
    session: SessionDep,
    ctx: Any,
    run_id: Id,
    *,
    tolerance: float | None,
    aggregate_tolerance: float | None,
    rollout_id: BigId | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    run = review.get_run(session, ctx.project_id, run_id)
    tol, agg = _tolerances(tolerance, aggregate_tolerance)
    report = review.disagreements(
        session,
        run,
        viewer=ctx.user,
        tolerance=tol,
        aggregate_tolerance=agg,
        rollout_id=rollout_id,
        cursor=cursor,
        page_size=review.PAGE_ROLLOUTS,
    )
    query = urlencode({"tolerance": tol, "aggregate_tolerance": agg})
    return {
        "ctx": ctx,
        "run": run,
        "report": report,
        "judge_name": review.judge_name(run),
        "query": query,
        "page_url": f"{_base(ctx)}/disagreements/{run.id}",
        "resolve_url": f"{_base(ctx)}/disagreements/{run.id}/resolve",
        "rollout_id": rollout_id,
        "can_resolve": ctx.can(Permission.disagreement_resolve),
        "resolution_names": review.RESOLUTION_NAMES,
        "choices": resolutions.criterion_choices,
        "judge_default": resolutions.judge_default,
        "excerpt_keys": EXCERPT_KEYS,
        "propose_query": _propose_query,
    }


@functools.lru_cache(maxsize=256)
def _propose_query(criterion_key: str) -> str:
    """The start of a "propose an edit" link's query: the criterion, when it is one."""
    if criterion_key in (review.AGGREGATE, review.WINNER):
        return ""
    return urlencode({"criterion": criterion_key}) + "&"


@router.get("/projects/{project_id}/disagreements/{run_id}", include_in_schema=False)
def disagreements_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    run_id: Id,
    tolerance: Annotated[float | None, Query(ge=0, le=100)] = None,
    aggregate_tolerance: Annotated[float | None, Query(ge=0, le=1)] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    context = _review_context(
        request,
        session,
        ctx,
        run_id,
        tolerance=tolerance,
        aggregate_tolerance=aggregate_tolerance,
        cursor=cursor,
    )
    return render(
        request, "labels/disagreements.html", context, fragment="labels/_disagreements.html"
    )


@router.get(
    "/projects/{project_id}/disagreements/{run_id}/rollouts/{rollout_id}", include_in_schema=False
)
def disagreement_detail_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    run_id: Id,
    rollout_id: BigId,
    tolerance: Annotated[float | None, Query(ge=0, le=100)] = None,
    aggregate_tolerance: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> Response:
    rollout = rollout_service.get_rollout(session, ctx.project_id, rollout_id)
    context = _review_context(
        request,
        session,
        ctx,
        run_id,
        tolerance=tolerance,
        aggregate_tolerance=aggregate_tolerance,
        rollout_id=rollout_id,
    )
    context.update(review.rollout_document(rollout, context["report"]))
    return render(
        request, "labels/disagreement_detail.html", context, fragment="labels/_disagreements.html"
    )


@router.post("/projects/{project_id}/disagreements/{run_id}/resolve", include_in_schema=False)
def disagreement_resolve_action(
    request: Request,
    session: SessionDep,
    ctx: DisagreementResolver,
    run_id: Id,
    label_id: Annotated[BigId, Form()],
    criterion: Annotated[str, Form(max_length=80)],
    resolution: Annotated[str, Form(max_length=30)],
    note: Annotated[str, Form(max_length=5000)] = "",
    corrected_value: Annotated[str, Form(max_length=20)] = "",
    revision: Annotated[Int32 | None, Form()] = None,
    rollout_id: Annotated[BigId | None, Form()] = None,
    cursor: Annotated[str | None, Form(max_length=20)] = None,
    tolerance: Annotated[float | None, Form(ge=0, le=100)] = None,
    aggregate_tolerance: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> Response:
    run = review.get_run(session, ctx.project_id, run_id)
    resolutions.resolve(
        session,
        run,
        actor=ctx.user,
        may_edit_others=ctx.can(Permission.project_manage),
        label_id=label_id,
        criterion=criterion,
        resolution=resolution,
        note=note,
        corrected_value=corrected_value if resolution == "label_wrong" else None,
        expected_revision=revision,
    )
    if is_htmx(request):
        context = _review_context(
            request,
            session,
            ctx,
            run_id,
            tolerance=tolerance,
            aggregate_tolerance=aggregate_tolerance,
            rollout_id=rollout_id,
            cursor=cursor,
        )
        return render(request, "labels/_disagreements.html", context)
    target = f"{_base(ctx)}/disagreements/{run.id}"
    if rollout_id is not None:
        target += f"/rollouts/{rollout_id}"
    tol, agg = _tolerances(tolerance, aggregate_tolerance)
    response = redirect(
        request, f"{target}?{urlencode({'tolerance': tol, 'aggregate_tolerance': agg})}"
    )
    flash(request, response, "Resolution saved.")
    return response
