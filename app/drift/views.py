"""HTML routes: training runs (list, create), the training-run dashboard (charts with their
tables, signals, imports), a signal's card with example samples, and the signal thresholds."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from markupsafe import Markup
from starlette.responses import Response

from app.auth.dependencies import DriftImporter, ProjectReader, SessionDep
from app.core.errors import InvalidInput, NotFound
from app.core.memo import VersionedCache
from app.drift import charts
from app.drift import service as drift_service
from app.drift.deps import ProjectTrainingRun
from app.drift.signal_types import MEASURES, TITLES, DriftThresholds, SignalKind
from app.web.csv_safe import csv_response
from app.web.flash import flash
from app.web.htmx import redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: drift"])


@router.get("/projects/{project_id}/training-runs", include_in_schema=False)
def training_runs_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    runs = drift_service.list_training_runs(session, ctx.project_id)
    return render(request, "drift/runs.html", {"ctx": ctx, "runs": runs, "form": {}})


@router.post("/projects/{project_id}/training-runs", include_in_schema=False)
def training_run_create_action(
    request: Request,
    session: SessionDep,
    ctx: DriftImporter,
    name: Annotated[str, Form(max_length=200)] = "",
    base_model: Annotated[str, Form(max_length=300)] = "",
    notes: Annotated[str, Form(max_length=20_000)] = "",
    export_bundle_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    bundle_id = int(export_bundle_id) if export_bundle_id.strip().isdigit() else None
    run = drift_service.create_training_run(
        session,
        ctx.project,
        ctx.user,
        name=name,
        base_model=base_model,
        notes=notes,
        export_bundle_id=bundle_id,
    )
    response = redirect(request, project_url(ctx.project_id, "training-runs", run.id))
    flash(request, response, f"Training run {run.name} created; import its samples below.")
    return response


def _series_key(data: drift_service.RunSeries | None) -> tuple[Any, ...] | None:
    if data is None:
        return None
    run = data.run
    return (run.id, str(run.created_at), run.data_version, data.plan.key() if data.plan else None)


# The chart cards (charts and their number tables) of a dashboard, rendered once per data version
# of the run and of the run it is compared with: they depend on nothing else (not the viewer).
_CARDS: VersionedCache[Markup] = VersionedCache(32)


def _chart_cards(
    request: Request,
    session: SessionDep,
    data: drift_service.RunSeries,
    other: drift_service.RunSeries | None,
) -> Markup:
    key = (str(session.get_bind().engine.url), _series_key(data), _series_key(other))

    def build() -> Markup:
        template = request.app.state.templates.get_template("drift/_chart_cards.html")
        return Markup(template.render(charts=charts.dashboard_charts(data, other)).strip())

    return _CARDS.get_or_compute(key, build)


def _dashboard_context(
    request: Request, session: SessionDep, ctx: Any, run_id: int, compare_id: int | None
) -> dict[str, Any]:
    run = drift_service.get_training_run(session, ctx.project_id, run_id)
    data = drift_service.series(session, run)
    other = None
    if compare_id and compare_id != run.id:
        other_run = drift_service.get_training_run(session, ctx.project_id, compare_id)
        other = drift_service.series(session, other_run)
    results = drift_service.signals(session, ctx.project, run, data=data)
    return {
        "ctx": ctx,
        "run": run,
        "data": data,
        "compare": other,
        "runs": drift_service.list_training_runs(session, ctx.project_id),
        "chart_cards": _chart_cards(request, session, data, other),
        "signals": results,
        "fired": [r for r in results if r.fired],
        "unstepped": drift_service.unstepped_count(session, run),
        "imports": drift_service.list_drift_imports(session, run),
        "thresholds": drift_service.thresholds(ctx.project),
    }


@router.get("/projects/{project_id}/training-runs/{run_id:int}", include_in_schema=False)
def training_run_page(
    request: Request, session: SessionDep, ctx: ProjectReader, run_id: int, compare: str = ""
) -> Response:
    compare_id = int(compare) if compare.strip().isdigit() else None
    context = _dashboard_context(request, session, ctx, run_id, compare_id)
    return render(request, "drift/run.html", context)


@router.get("/projects/{project_id}/training-runs/{run_id:int}/series.csv", include_in_schema=False)
def training_run_series_csv(
    session: SessionDep, ctx: ProjectReader, run: ProjectTrainingRun
) -> Response:
    data = drift_service.series(session, run)
    return csv_response(drift_service.series_rows(data), f"training-run-{run.id}-series.csv")


@router.post("/projects/{project_id}/training-runs/{run_id:int}/imports", include_in_schema=False)
def training_run_upload_action(
    request: Request,
    session: SessionDep,
    ctx: DriftImporter,
    run: ProjectTrainingRun,
    file: Annotated[UploadFile, File()],
    skip_invalid: Annotated[bool, Form()] = False,
) -> Response:
    if not file.filename:
        raise InvalidInput("Choose a drift sample file (JSONL or JSONL.gz) to import.")
    job = drift_service.create_drift_import(
        session,
        request.app.state.settings,
        ctx.project,
        run,
        ctx.user,
        filename=file.filename,
        source=file.file,
        skip_invalid=skip_invalid,
    )
    return redirect(request, project_url(ctx.project_id, "imports", job.id))


@router.post(
    "/projects/{project_id}/training-runs/{run_id:int}/imports/s3", include_in_schema=False
)
def training_run_s3_action(
    request: Request,
    session: SessionDep,
    ctx: DriftImporter,
    run: ProjectTrainingRun,
    bucket: Annotated[str, Form(max_length=63)] = "",
    prefix: Annotated[str, Form(max_length=1024)] = "",
    skip_invalid: Annotated[bool, Form()] = False,
) -> Response:
    job = drift_service.create_drift_import(
        session,
        request.app.state.settings,
        ctx.project,
        run,
        ctx.user,
        filename="s3",
        s3={"bucket": bucket, "prefix": prefix},
        skip_invalid=skip_invalid,
    )
    return redirect(request, project_url(ctx.project_id, "imports", job.id))


@router.post("/projects/{project_id}/training-runs/{run_id:int}/step-map", include_in_schema=False)
def training_run_step_map_action(
    request: Request,
    session: SessionDep,
    ctx: DriftImporter,
    run: ProjectTrainingRun,
    file: Annotated[UploadFile, File()],
) -> Response:
    text = file.file.read(20 * 1024 * 1024).decode("utf-8", errors="replace")
    mapping, placed = drift_service.set_step_map(session, run, ctx.user, text)
    response = redirect(request, project_url(ctx.project_id, "training-runs", run.id))
    flash(request, response, f"{len(mapping.times):,} log rows read; {placed:,} samples placed.")
    return response


@router.get(
    "/projects/{project_id}/training-runs/{run_id:int}/signals/{kind}", include_in_schema=False
)
def signal_page(
    request: Request, session: SessionDep, ctx: ProjectReader, run: ProjectTrainingRun, kind: str
) -> Response:
    try:
        signal_kind = SignalKind(kind)
    except ValueError:
        raise NotFound("No such signal.") from None
    result = next(
        r for r in drift_service.signals(session, ctx.project, run) if r.kind == signal_kind
    )
    pairs = drift_service.signal_examples(session, run, result)
    samples = [p.late for p in pairs] + [p.early for p in pairs if p.early is not None]
    context = {
        "ctx": ctx,
        "run": run,
        "s": result,
        "pairs": pairs,
        "rollouts": drift_service.rollouts_of(session, samples),
        "thresholds": drift_service.thresholds(ctx.project),
    }
    return render(request, "drift/signal.html", context)


@router.get("/projects/{project_id}/drift-settings", include_in_schema=False)
def drift_settings_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    context = {
        "ctx": ctx,
        "thresholds": drift_service.thresholds(ctx.project).as_dict(),
        "defaults": DriftThresholds().as_dict(),
        "titles": TITLES,
        "measures": MEASURES,
    }
    return render(request, "drift/settings.html", context)


@router.post("/projects/{project_id}/drift-settings", include_in_schema=False)
async def drift_settings_action(
    request: Request, session: SessionDep, ctx: DriftImporter
) -> Response:
    form = await request.form()
    values = {key: str(value) for key, value in form.items() if key != "csrf_token"}
    drift_service.save_thresholds(session, ctx.project, ctx.user, values)
    response = redirect(request, project_url(ctx.project_id, "drift-settings"))
    flash(request, response, "Signal thresholds saved.")
    return response
