"""HTML routes for labeling: the labeling hub, queues and the annotation view (drafts and submit).

Disagreement review, gold sets and label import/export have their own view modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from starlette.datastructures import FormData
from starlette.responses import JSONResponse, Response

from app.auth.dependencies import (
    LabelWriter,
    ProjectContext,
    ProjectReader,
    QueueManager,
    SessionDep,
)
from app.core.errors import DomainError, InvalidInput
from app.core.ids import BigId, Id, NonNegInt32, NonNegInt64, bounded
from app.core.problems import problem
from app.labels import annotation as label_annotation
from app.labels import gold, item_view, queues, review
from app.labels import service as label_service
from app.labels.deps import ProjectQueue
from app.labels.highlight import EXCERPT_KEYS
from app.labels.queues import QueueSelection
from app.labels.service import LabelInput
from app.labels.values import format_value, position_of
from app.rubrics import service as rubric_service
from app.web.errors import wants_json
from app.web.flash import flash
from app.web.forms import form_error_context, form_text
from app.web.htmx import redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: labeling"])


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


def _create_queue(session: Any, ctx: Any, form: FormData) -> Any:
    source = form_text(form, "source") or "filter"
    if source not in ("filter", "run", "gold"):
        raise InvalidInput("Choose where the items come from: a filter, a judge run or gold items.")
    selection = QueueSelection(
        source=source,  # type: ignore[arg-type]
        run_id=_optional_int(form, "run_id"),
        gold_split=form_text(form, "gold_split") or None,
        model=form_text(form, "model") or None,
        group=form_text(form, "group") or None,
        search=form_text(form, "search") or None,
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
        name=form_text(form, "name"),
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
        typed: dict[str, Any] = {name: form_text(form, name) for name in QUEUE_FIELDS}
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
        "assigned": label_annotation.is_assignee(session, queue, ctx.user),
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
    item = label_annotation.next_item(session, queue, ctx.user, after_position=after)
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
        "overall_critique": form_text(form, "overall_critique"),
        "choice": form_text(form, "choice"),
        "deserved": form_text(form, "deserved"),
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
        reason=form_text(form, "reason"),
    )


def _stored_form(view: item_view.ItemView) -> dict[str, Any]:
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


@dataclass
class ItemPage:
    """labels/annotate.html and labels/preference.html: one queue item to label, the expert's
    form (as stored, or as posted back with an error) and the URLs the page posts to."""

    ctx: ProjectContext
    view: item_view.ItemView
    form: dict[str, Any]
    revision: int | str
    error: str | None
    problems: list[Any]
    draft_url: str
    submit_url: str
    queue_url: str
    next_url: str
    previous_url: str
    storage_key: str
    fmt: Callable[..., Any]
    excerpt_keys: tuple[str, ...]


def _item_page_context(
    ctx: ProjectContext,
    view: item_view.ItemView,
    *,
    posted: dict[str, Any] | None = None,
    error: DomainError | None = None,
) -> ItemPage:
    base = _item_url(ctx, view.queue.id or 0, view.item.id or 0)
    return ItemPage(
        ctx=ctx,
        view=view,
        form=posted or _stored_form(view),
        revision=view.label.revision if view.label else "",
        error=error.message if error else None,
        problems=error.details if error and isinstance(error.details, list) else [],
        draft_url=f"{base}/draft",
        submit_url=f"{base}/submit",
        queue_url=f"{_base(ctx)}/queues/{view.queue.id}",
        next_url=_item_url(ctx, view.queue.id or 0, view.next_id) if view.next_id else "",
        previous_url=(
            _item_url(ctx, view.queue.id or 0, view.previous_id) if view.previous_id else ""
        ),
        storage_key=f"rs-label:{view.queue.id}:{view.item.id}:{ctx.user.id}",
        fmt=format_value,
        excerpt_keys=EXCERPT_KEYS,
    )


def _item_page(request: Request, ctx: Any, view: item_view.ItemView, **kwargs: Any) -> Response:
    template = "labels/preference.html" if view.item.pair_id else "labels/annotate.html"
    error = kwargs.get("error")
    status = error.status_code if isinstance(error, DomainError) else 200
    return render(request, template, _item_page_context(ctx, view, **kwargs), status_code=status)


@router.get("/projects/{project_id}/queues/{queue_id}/items/{item_id}", include_in_schema=False)
def item_page(
    request: Request, session: SessionDep, ctx: ProjectReader, queue: ProjectQueue, item_id: BigId
) -> Response:
    item = queues.get_item(session, queue, item_id)
    view = item_view.item_view(session, queue, item, ctx.user)
    return _item_page(request, ctx, view)


@router.post(
    "/projects/{project_id}/queues/{queue_id}/items/{item_id}/draft", include_in_schema=False
)
async def label_draft_action(
    request: Request, session: SessionDep, ctx: LabelWriter, queue_id: Id, item_id: BigId
) -> Response:
    queue = queues.get_queue(session, ctx.project_id, queue_id)
    item = queues.get_item(session, queue, item_id)
    label = label_annotation.save_draft(
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
        result = label_annotation.submit_label(session, queue, item, ctx.user, _label_input(form))
    except DomainError as exc:
        if wants_json(request) or exc.status_code not in (409, 422):
            raise
        # Never lose what she typed: the page comes back with her input and the reason.
        session.rollback()
        view = item_view.item_view(session, queue, item, ctx.user)
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
