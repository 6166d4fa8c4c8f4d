"""HTML routes for labeling: the labeling hub, queues, the annotation view (drafts and submit),
disagreement review, gold sets and label import/export."""

from __future__ import annotations

import math
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from starlette.datastructures import FormData
from starlette.responses import JSONResponse, Response

from app.auth.dependencies import (
    DisagreementResolver,
    GoldManager,
    LabelImporter,
    LabelWriter,
    ProjectReader,
    QueueManager,
    SessionDep,
)
from app.auth.policies import Permission
from app.core.errors import DomainError, InvalidInput
from app.core.ids import BigId, Id, Int32, NonNegInt32, NonNegInt64, bounded
from app.core.problems import problem
from app.labels import exchange, gold, queues, review, transfer
from app.labels import service as label_service
from app.labels.deps import ProjectQueue
from app.labels.highlight import EXCERPT_KEYS
from app.labels.queues import QueueSelection
from app.labels.service import LabelInput
from app.labels.values import format_value, position_of
from app.rollouts import service as rollout_service
from app.rubrics import service as rubric_service
from app.web.errors import wants_json
from app.web.flash import flash
from app.web.forms import form_error_context
from app.web.htmx import is_htmx, redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: labeling"])

MAX_IMPORT_BYTES = 20 * 1024 * 1024


def _base(ctx: Any) -> str:
    return project_url(ctx.project_id)


def _item_url(ctx: Any, queue_id: Id, item_id: BigId) -> str:
    return f"{_base(ctx)}/queues/{queue_id}/items/{item_id}"


# ---- hub and queues ---------------------------------------------------------------------------


@router.get("/projects/{project_id}/labeling", include_in_schema=False)
def labeling_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    project_id = ctx.project_id
    context = {
        "ctx": ctx,
        "queues": queues.list_queues(session, project_id, ctx.user),
        "runs": review.list_runs(session, project_id, limit=50),
        "gold_count": len(gold.list_gold(session, project_id)),
    }
    return render(request, "labels/hub.html", context)


QUEUE_FIELDS = (
    "name", "rubric_version_id", "assignee", "overlap", "source", "run_id", "gold_split", "model",
    "group", "search", "step_min", "step_max", "sample_size", "seed",
)  # fmt: skip


def _queue_form_context(
    session: Any, ctx: Any, typed: dict[str, Any] | None = None, error: Any = None
) -> dict[str, Any]:
    project_id = ctx.project_id
    return {
        "ctx": ctx,
        "versions": rubric_service.version_choices(session, project_id),
        "labelers": queues.labelers(session, project_id),
        "runs": review.list_runs(session, project_id),
        "typed": typed or {},
        **form_error_context(error, QUEUE_FIELDS),
    }


@router.get("/projects/{project_id}/queues/new", include_in_schema=False)
def queue_new_page(request: Request, session: SessionDep, ctx: QueueManager) -> Response:
    return render(request, "labels/queue_new.html", _queue_form_context(session, ctx))


def _optional_int(form: FormData, name: str) -> int | None:
    raw = form.get(name)
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        number = int(raw.strip())
    except ValueError:
        details = [problem(name, "must be a whole number", queues.QUEUE_LABELS)]
        raise InvalidInput("The queue was not created; please correct:", details=details) from None
    return bounded(number, name.replace("_", " ").capitalize())


def _text(form: FormData, name: str) -> str:
    raw = form.get(name)
    return raw if isinstance(raw, str) else ""


def _create_queue(session: Any, ctx: Any, form: FormData) -> Any:
    source = _text(form, "source") or "filter"
    if source not in ("filter", "run", "gold"):
        raise InvalidInput("Choose where the items come from: a filter, a judge run or gold items.")
    selection = QueueSelection(
        source=source,  # type: ignore[arg-type]
        run_id=_optional_int(form, "run_id"),
        gold_split=_text(form, "gold_split") or None,
        model=_text(form, "model") or None,
        group=_text(form, "group") or None,
        search=_text(form, "search") or None,
        step_min=_optional_int(form, "step_min"),
        step_max=_optional_int(form, "step_max"),
        sample_size=_optional_int(form, "sample_size"),
        seed=_optional_int(form, "seed"),
    )
    assignees = []
    for raw in form.getlist("assignee"):
        if isinstance(raw, str) and raw.strip().isdigit():
            assignees.append(bounded(int(raw), "An expert"))
    version_id = _optional_int(form, "rubric_version_id")
    if version_id is None:
        raise InvalidInput("Choose the rubric version the experts label with.")
    return queues.create_queue(
        session,
        ctx.project,
        actor=ctx.user,
        name=_text(form, "name"),
        rubric_version_id=version_id,
        assignee_ids=assignees,
        overlap=_optional_int(form, "overlap") or 1,
        selection=selection,
    )


@router.post("/projects/{project_id}/queues", include_in_schema=False)
async def queue_create_action(request: Request, session: SessionDep, ctx: QueueManager) -> Response:
    form = await request.form()
    try:
        queue = _create_queue(session, ctx, form)
    except InvalidInput as exc:
        # Nothing was created: the same form, with what was typed and each message beside its field.
        session.rollback()
        typed: dict[str, Any] = {name: _text(form, name) for name in QUEUE_FIELDS}
        typed["assignee"] = [str(v) for v in form.getlist("assignee")]
        context = _queue_form_context(session, ctx, typed, exc)
        return render(request, "labels/queue_new.html", context, status_code=422)
    response = redirect(request, f"{_base(ctx)}/queues/{queue.id}")
    flash(request, response, f"Queue “{queue.name}” created.")
    return response


@router.get("/projects/{project_id}/queues/{queue_id}", include_in_schema=False)
def queue_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    queue: ProjectQueue,
    offset: Annotated[NonNegInt32, Query()] = 0,
) -> Response:
    version = rubric_service.get_project_version(session, ctx.project_id, queue.rubric_version_id)
    context = {
        "ctx": ctx,
        "queue": queue,
        "version_label": label_service.version_label(session, version),
        "progress": queues.queue_progress(session, queue, ctx.user),
        "assignees": queues.queue_assignees(session, queue),
        "assigned": label_service.is_assignee(session, queue, ctx.user),
        "items": queues.queue_items(session, queue, ctx.user, offset=offset),
        "offset": offset,
        "page_size": 200,
    }
    return render(request, "labels/queue.html", context)


@router.post("/projects/{project_id}/queues/{queue_id}/close", include_in_schema=False)
def queue_close_action(
    request: Request,
    session: SessionDep,
    ctx: QueueManager,
    queue: ProjectQueue,
    closed: Annotated[bool, Form()] = True,
) -> Response:
    queues.set_queue_closed(session, queue, actor=ctx.user, closed=closed)
    response = redirect(request, f"{_base(ctx)}/queues/{queue.id}")
    flash(request, response, "Queue closed." if closed else "Queue reopened.")
    return response


@router.get("/projects/{project_id}/queues/{queue_id}/next", include_in_schema=False)
def queue_next_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    queue: ProjectQueue,
    after: Annotated[NonNegInt64 | None, Query()] = None,
) -> Response:
    item = label_service.next_item(session, queue, ctx.user, after_position=after)
    if item is None:
        return redirect(request, f"{_base(ctx)}/queues/{queue.id}?done=1")
    return redirect(request, _item_url(ctx, queue.id or 0, item.id or 0))


# ---- the annotation view ----------------------------------------------------------------------


def _posted_values(form: FormData) -> dict[str, Any]:
    values = {k[len("value__") :]: v for k, v in form.items() if k.startswith("value__")}
    critiques = {k[len("critique__") :]: v for k, v in form.items() if k.startswith("critique__")}
    return {
        "values": {k: v for k, v in values.items() if isinstance(v, str)},
        "critiques": {k: v for k, v in critiques.items() if isinstance(v, str)},
        "overall_critique": _text(form, "overall_critique"),
        "choice": _text(form, "choice"),
        "deserved": _text(form, "deserved"),
    }


def _label_input(form: FormData) -> LabelInput:
    posted = _posted_values(form)
    return LabelInput(
        values=posted["values"],
        critiques=posted["critiques"],
        overall_critique=posted["overall_critique"],
        choice=posted["choice"] or None,
        deserved=posted["deserved"] or None,
        expected_revision=_optional_int(form, "revision"),
        reason=_text(form, "reason"),
    )


def _stored_form(view: queues.ItemView) -> dict[str, Any]:
    """The form's values from the stored label (draft or submitted)."""
    label = view.label
    if label is None:
        return {
            "values": {},
            "critiques": {},
            "overall_critique": "",
            "choice": "",
            "deserved": "",
        }
    values: dict[str, str] = {}
    for key, value in (label.values or {}).items():
        values[key] = ("pass" if value else "fail") if isinstance(value, bool) else str(value)
    return {
        "values": values,
        "critiques": dict(label.critiques or {}),
        "overall_critique": label.overall_critique,
        "choice": position_of(label.preference, view.shown_order),
        "deserved": label.deserved or "",
    }


def _item_context(
    ctx: Any,
    view: queues.ItemView,
    *,
    posted: dict[str, Any] | None = None,
    error: DomainError | None = None,
) -> dict[str, Any]:
    base = _item_url(ctx, view.queue.id or 0, view.item.id or 0)
    return {
        "ctx": ctx,
        "view": view,
        "form": posted or _stored_form(view),
        "revision": view.label.revision if view.label else "",
        "error": error.message if error else None,
        "problems": error.details if error and isinstance(error.details, list) else [],
        "draft_url": f"{base}/draft",
        "submit_url": f"{base}/submit",
        "queue_url": f"{_base(ctx)}/queues/{view.queue.id}",
        "next_url": _item_url(ctx, view.queue.id or 0, view.next_id) if view.next_id else "",
        "previous_url": (
            _item_url(ctx, view.queue.id or 0, view.previous_id) if view.previous_id else ""
        ),
        "storage_key": f"rs-label:{view.queue.id}:{view.item.id}:{ctx.user.id}",
        "fmt": format_value,
        "excerpt_keys": EXCERPT_KEYS,
    }


def _item_page(request: Request, ctx: Any, view: queues.ItemView, **kwargs: Any) -> Response:
    template = "labels/preference.html" if view.item.pair_id else "labels/annotate.html"
    error = kwargs.get("error")
    status = error.status_code if isinstance(error, DomainError) else 200
    return render(request, template, _item_context(ctx, view, **kwargs), status_code=status)


@router.get("/projects/{project_id}/queues/{queue_id}/items/{item_id}", include_in_schema=False)
def item_page(
    request: Request, session: SessionDep, ctx: ProjectReader, queue: ProjectQueue, item_id: BigId
) -> Response:
    item = queues.get_item(session, queue, item_id)
    view = queues.item_view(session, queue, item, ctx.user)
    return _item_page(request, ctx, view)


@router.post(
    "/projects/{project_id}/queues/{queue_id}/items/{item_id}/draft", include_in_schema=False
)
async def label_draft_action(
    request: Request, session: SessionDep, ctx: LabelWriter, queue_id: Id, item_id: BigId
) -> Response:
    queue = queues.get_queue(session, ctx.project_id, queue_id)
    item = queues.get_item(session, queue, item_id)
    label = label_service.save_draft(
        session, queue, item, ctx.user, _label_input(await request.form())
    )
    if wants_json(request):
        return JSONResponse(
            {
                "label_id": label.id,
                "revision": label.revision,
                "status": label.status,
                "saved_at": label.updated_at.isoformat(),
            }
        )
    response = redirect(request, _item_url(ctx, queue.id or 0, item.id or 0))
    flash(request, response, "Draft saved.")
    return response


@router.post(
    "/projects/{project_id}/queues/{queue_id}/items/{item_id}/submit", include_in_schema=False
)
async def label_submit_action(
    request: Request, session: SessionDep, ctx: LabelWriter, queue_id: Id, item_id: BigId
) -> Response:
    queue = queues.get_queue(session, ctx.project_id, queue_id)
    item = queues.get_item(session, queue, item_id)
    form = await request.form()
    try:
        result = label_service.submit_label(session, queue, item, ctx.user, _label_input(form))
    except DomainError as exc:
        if wants_json(request) or exc.status_code not in (409, 422):
            raise
        # Never lose what she typed: the page comes back with her input and the reason.
        session.rollback()
        view = queues.item_view(session, queue, item, ctx.user)
        return _item_page(request, ctx, view, posted=_posted_values(form), error=exc)
    next_url = (
        _item_url(ctx, queue.id or 0, result.next_item.id or 0)
        if result.next_item is not None
        else f"{_base(ctx)}/queues/{queue.id}?done=1"
    )
    if wants_json(request):
        return JSONResponse(
            {
                "label_id": result.label.id,
                "revision": result.label.revision,
                "outcome": result.outcome,
                "next_url": next_url,
            }
        )
    response = redirect(request, next_url)
    flash(
        request,
        response,
        "Label submitted." if result.outcome != "unchanged" else "Already submitted.",
    )
    return response


# ---- disagreement review ----------------------------------------------------------------------


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
        "choices": review.criterion_choices,
        "judge_default": review.judge_default,
        "excerpt_keys": EXCERPT_KEYS,
    }


@router.get("/projects/{project_id}/disagreements/{run_id}", include_in_schema=False)
def disagreements_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    run_id: Id,
    tolerance: Annotated[float | None, Query(ge=0, le=100)] = None,
    aggregate_tolerance: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> Response:
    context = _review_context(
        request, session, ctx, run_id, tolerance=tolerance, aggregate_tolerance=aggregate_tolerance
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
    tolerance: Annotated[float | None, Form(ge=0, le=100)] = None,
    aggregate_tolerance: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> Response:
    run = review.get_run(session, ctx.project_id, run_id)
    review.resolve(
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


# ---- gold sets --------------------------------------------------------------------------------


@router.get("/projects/{project_id}/gold", include_in_schema=False)
def gold_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    project_id = ctx.project_id
    context = {
        "ctx": ctx,
        "rows": gold.list_gold(session, project_id),
        "candidates": gold.gold_candidates(session, project_id)
        if ctx.can(Permission.gold_manage)
        else [],
        "can_manage": ctx.can(Permission.gold_manage),
    }
    return render(request, "labels/gold.html", context)


@router.post("/projects/{project_id}/gold", include_in_schema=False)
async def gold_add_action(request: Request, session: SessionDep, ctx: GoldManager) -> Response:
    form = await request.form()
    rollout_ids = [
        bounded(int(v), "A rollout", big=True)
        for v in form.getlist("rollout_id")
        if isinstance(v, str) and v.isdigit()
    ]
    added = gold.add_gold(
        session,
        ctx.project,
        actor=ctx.user,
        rollout_ids=rollout_ids,
        split=_text(form, "split"),
        expectation=_text(form, "expectation"),
        note=_text(form, "note"),
    )
    response = redirect(request, f"{_base(ctx)}/gold")
    flash(request, response, f"{len(added)} rollouts added to the gold set.")
    return response


@router.post("/projects/{project_id}/gold/{gold_id}/split", include_in_schema=False)
def gold_split_action(
    request: Request,
    session: SessionDep,
    ctx: GoldManager,
    gold_id: Id,
    split: Annotated[str, Form(max_length=20)],
) -> Response:
    item = gold.set_gold_split(session, ctx.project, gold_id, actor=ctx.user, split=split)
    response = redirect(request, f"{_base(ctx)}/gold")
    flash(request, response, f"Rollout {item.rollout_id} is now in the {item.split} split.")
    return response


@router.post("/projects/{project_id}/gold/{gold_id}/remove", include_in_schema=False)
def gold_remove_action(
    request: Request, session: SessionDep, ctx: GoldManager, gold_id: Id
) -> Response:
    gold.remove_gold(session, ctx.project, gold_id, actor=ctx.user)
    response = redirect(request, f"{_base(ctx)}/gold")
    flash(request, response, "Removed from the gold set.")
    return response


# ---- import and export ------------------------------------------------------------------------


@router.get("/projects/{project_id}/labels", include_in_schema=False)
def labels_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    context = {
        "ctx": ctx,
        "counts": exchange.label_counts(session, ctx.project_id),
        "versions": rubric_service.version_choices(session, ctx.project_id),
        "can_import": ctx.can(Permission.label_import),
        "result": None,
        "import_error": None,
    }
    return render(request, "labels/transfer.html", context)


@router.post("/projects/{project_id}/labels/import", include_in_schema=False)
async def labels_import_action(
    request: Request,
    session: SessionDep,
    ctx: LabelImporter,
    file: Annotated[UploadFile, File()],
    rubric_version_id: Annotated[Id, Form()],
    format: Annotated[str, Form(max_length=10)] = "auto",
    skip_invalid: Annotated[bool, Form()] = False,
) -> Response:
    data = await file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput(f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("The file is not UTF-8 text.") from None
    fmt = transfer.guess_format(file.filename or "", text) if format == "auto" else format
    if fmt not in transfer.FORMATS:
        raise InvalidInput("The format must be jsonl, csv or auto.")
    error: str | None = None
    try:
        result = exchange.import_labels(
            session,
            ctx.project,
            actor=ctx.user,
            rubric_version_id=rubric_version_id,
            text=text,
            fmt=fmt,
            skip_invalid=skip_invalid,
        )
    except InvalidInput as exc:
        if not isinstance(exc.details, list):
            raise
        # Show every line's problem on the page itself; nothing was stored.
        session.rollback()
        result, error = exchange.ImportResult(problems=exc.details), exc.message
    context = {
        "ctx": ctx,
        "counts": exchange.label_counts(session, ctx.project_id),
        "versions": rubric_service.version_choices(session, ctx.project_id),
        "can_import": True,
        "result": result,
        "import_error": error,
    }
    status = 422 if error else 200
    return render(request, "labels/transfer.html", context, status_code=status)


@router.get("/projects/{project_id}/labels/export", include_in_schema=False)
def labels_export(
    session: SessionDep,
    ctx: ProjectReader,
    format: Annotated[str, Query(pattern="^(jsonl|csv)$")] = "jsonl",
    rubric_version_id: Annotated[Id | None, Query()] = None,
) -> Response:
    text = exchange.export_labels(
        session,
        ctx.project_id,
        fmt=format,  # type: ignore[arg-type]
        rubric_version_id=rubric_version_id,
        viewer=ctx.user,
    )
    name = f"labels-project{ctx.project_id}" + (
        f"-version{rubric_version_id}" if rubric_version_id else ""
    )
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return Response(
        text,
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'},
    )
