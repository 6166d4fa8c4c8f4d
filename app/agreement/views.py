"""HTML routes for agreement figures: the runs, one run against the experts, two runs compared."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from app.agreement import leaderboard, selection, slices
from app.agreement import service as agreement_service
from app.agreement.pairwise import DEFINITIONS
from app.auth.dependencies import ProjectReader, SessionDep
from app.core.errors import InvalidInput
from app.core.ids import Id
from app.labels import review
from app.web.htmx import render

router = APIRouter(tags=["pages: agreement"])

# Figures where a smaller number is better (the colour of a change depends on it).
LOWER_IS_BETTER = ("mean_absolute_error",)
ROLES = ("admin", "engineer", "expert", "reviewer")


@router.get("/projects/{project_id}/agreement", include_in_schema=False)
def agreement_index_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    context = {
        "ctx": ctx,
        "runs": review.list_runs(session, ctx.project_id),
        "scopes": agreement_service.SCOPES,
    }
    return render(request, "agreement/index.html", context)


@router.get("/projects/{project_id}/agreement/runs/{run_id}", include_in_schema=False)
def agreement_run_page(
    request: Request, session: SessionDep, ctx: ProjectReader, run_id: Id
) -> Response:
    run = review.get_run(session, ctx.project_id, run_id)
    result = agreement_service.run_agreement(session, run)
    context = {
        "ctx": ctx,
        "run": run,
        "judge_name": review.judge_name(run),
        "result": result,
        "definitions": DEFINITIONS,
        "charts": agreement_service.run_charts(result),
        "corrected": agreement_service.corrected_estimates(session, run, result),
        "ratings": agreement_service.checkpoint_ratings(session, run),
    }
    return render(request, "agreement/run.html", context)


@router.get("/projects/{project_id}/agreement/leaderboard", include_in_schema=False)
def agreement_leaderboard_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    sort: Annotated[str, Query(max_length=40)] = "value",
    dir: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    q: Annotated[str, Query(max_length=200)] = "",
    scope: Annotated[leaderboard.Scope, Query()] = leaderboard.Scope.ALL,
) -> Response:
    project_id = ctx.project_id
    rows = leaderboard.leaderboard(session, project_id, scope)
    shown = leaderboard.sort_rows(leaderboard.filter_rows(rows, q), sort, dir == "desc")
    test_rows = (
        leaderboard.leaderboard(session, project_id, leaderboard.Scope.GOLD_TEST)
        if scope == leaderboard.Scope.ALL
        else rows
    )
    by_version = sorted(
        (r for r in test_rows if r.n_labels), key=lambda r: (r.rubric, r.rubric_version, r.run_id)
    )
    context = {
        "ctx": ctx,
        "rows": shown,
        "total": len(rows),
        "sort": sort if sort in leaderboard.SORTABLE else "value",
        "dir": dir,
        "q": q,
        "scope": scope.value,
        "by_version": by_version,
    }
    return render(request, "agreement/leaderboard.html", context)


@router.get("/projects/{project_id}/agreement/leaderboard.csv", include_in_schema=False)
def agreement_leaderboard_csv(
    session: SessionDep,
    ctx: ProjectReader,
    sort: Annotated[str, Query(max_length=40)] = "value",
    dir: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    q: Annotated[str, Query(max_length=200)] = "",
    scope: Annotated[leaderboard.Scope, Query()] = leaderboard.Scope.ALL,
) -> Response:
    rows = leaderboard.leaderboard(session, ctx.project_id, scope)
    shown = leaderboard.sort_rows(leaderboard.filter_rows(rows, q), sort, dir == "desc")
    return Response(
        leaderboard.to_csv(shown),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="runs-leaderboard.csv"'},
    )


@router.get("/projects/{project_id}/agreement/runs/{run_id}/slices", include_in_schema=False)
def agreement_slices_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    run_id: int,
    slice: Annotated[str, Query(max_length=120)] = "group",
    annotator_role: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    project_id = ctx.project_id
    run = review.get_run(session, project_id, run_id)
    role = annotator_role if annotator_role in ROLES else None
    breakdown = slices.run_slices(
        session,
        run,
        slices.parse_slice(slice),
        annotators=slices.annotator_keys(session, project_id, role),
    )
    context = {
        "ctx": ctx,
        "run": run,
        "judge_name": review.judge_name(run),
        "breakdown": breakdown,
        "slice_text": slice,
        "annotator_role": role or "",
        "roles": ROLES,
        "definitions": DEFINITIONS,
    }
    return render(request, "agreement/slices.html", context)


@router.get("/projects/{project_id}/agreement/compare", include_in_schema=False)
def agreement_compare_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    old: Annotated[Id, Query(description="the earlier run (old rubric version)")],
    new: Annotated[Id, Query(description="the later run (new rubric version)")],
    scope: Annotated[str, Query(max_length=20)] = "gold",
) -> Response:
    project_id = ctx.project_id
    old_run = review.get_run(session, project_id, old)
    new_run = review.get_run(session, project_id, new)
    comparison = agreement_service.compare_runs(
        session, old_run, new_run, scope=scope, viewer=ctx.user
    )
    context = {
        "ctx": ctx,
        "comparison": comparison,
        "scopes": agreement_service.SCOPES,
        "runs": review.list_runs(session, project_id),
        "figure_rows": agreement_service.figure_rows,
        "judge_name": review.judge_name,
        "lower_is_better": LOWER_IS_BETTER,
    }
    return render(request, "agreement/compare.html", context)


@router.get("/projects/{project_id}/agreement/corrected", include_in_schema=False)
def agreement_corrected_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    """Corrected estimates for a selection: the form, and the figures once a run is chosen."""
    project_id = ctx.project_id
    typed = {name: request.query_params.get(name, "")[:500] for name in selection.FIELDS}
    context = {
        "ctx": ctx,
        "typed": typed,
        "choices": selection.selection_choices(session, project_id),
        "estimates": None,
        "error": None,
    }
    status = 200
    if typed["run"]:
        try:
            run_id, chosen = selection.parse_selection(typed)
            context["estimates"] = selection.selection_estimates(
                session, project_id, run_id, chosen
            )
        except InvalidInput as exc:
            context["error"] = exc.message
            status = 422
    return render(
        request,
        "agreement/corrected.html",
        context,
        fragment="agreement/_corrected_result.html",
        status_code=status,
    )
