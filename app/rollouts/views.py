"""HTML routes: import rollouts (upload, CSV column mapping, progress), and browse them (list
with filters and search, groups, one rollout with its long texts paged)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, Field
from starlette.responses import Response

from app.auth.dependencies import ProjectContext, ProjectReader, RolloutImporter, SessionDep
from app.core.errors import InvalidInput, NotFound
from app.core.ids import NonNegInt32, bounded
from app.rollouts import browse as rollout_browse
from app.rollouts import display
from app.rollouts import service as rollout_service
from app.rollouts.api import problems_download
from app.rollouts.deps import ProjectImport, ProjectRollout
from app.rollouts.formats.csv_table import CSV_FIELDS
from app.rollouts.models import Rollout, RolloutImport
from app.rollouts.parsing import FORMATS
from app.rollouts.search import RANK_CANDIDATES, RolloutFilter, RolloutSort
from app.web.flash import flash
from app.web.htmx import is_htmx, redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: rollouts"])

# htmx stops polling when a poll answers 286.
STOP_POLLING = 286

FORMAT_LABELS = {
    "auto": "Detect from the file",
    "studio": "Studio JSONL",
    "nova": "Amazon Nova RFT rows (JSONL)",
    "openai": "OpenAI chat rows (JSONL)",
    "csv": "CSV with a header row",
}
FIELD_HELP = {
    "id": "your id for the rollout",
    "system": "a system message put before the prompt",
    "input": "the prompt (text, or a JSON list of messages) — required",
    "target_document": "the document under review",
    "references": "a reference text, or a JSON list",
    "reference_answer": "the expected answer",
    "response": "the model's answer — required",
    "model": "model name",
    "checkpoint": "checkpoint",
    "step": "training step (whole number)",
    "group": "group of generations of one prompt",
    "metadata": "a JSON object",
}


# ---------------------------------------------------------------------------- filters


def _int_or_none(value: str, name: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not '{value[:40]}'") from None
    if number < 0:
        raise InvalidInput(f"{name} must be 0 or more")
    bounded(number, name)
    return number


def _flag(value: str, name: str) -> bool | None:
    value = value.strip().lower()
    if value in ("", "any"):
        return None
    if value in ("yes", "true", "1"):
        return True
    if value in ("no", "false", "0"):
        return False
    raise InvalidInput(f"{name} must be yes, no or any")


def _filter(request: Request) -> RolloutFilter:
    """The list filters from the query string; empty fields mean "any"."""
    p = request.query_params

    def text(name: str, limit: int = 500) -> str | None:
        return (p.get(name) or "").strip()[:limit] or None

    return RolloutFilter(
        model=text("model", 200),
        checkpoint=text("checkpoint", 200),
        step_min=_int_or_none(p.get("step_min", ""), "The first step"),
        step_max=_int_or_none(p.get("step_max", ""), "The last step"),
        group=text("group", 200),
        labeled=_flag(p.get("labeled", ""), "Labeled"),
        gold=_flag(p.get("gold", ""), "Gold"),
        disagreement=_flag(p.get("disagreement", ""), "Has disagreement"),
        q=text("q"),
        import_id=_int_or_none(p.get("import_id", ""), "The import"),
        sort=_sort(p.get("sort", "")),
    )


def _sort(value: str) -> RolloutSort:
    value = value.strip().lower()
    if value == "":
        return RolloutSort.ID
    try:
        return RolloutSort(value)
    except ValueError:
        raise InvalidInput("Order must be 'id' (import order) or 'rank' (best match)") from None


def _url(base: str, params: dict[str, str]) -> str:
    return f"{base}?{urlencode(params)}" if params else base


# ---------------------------------------------------------------------------- browsing


@dataclass
class RolloutListPage:
    """rollouts/list.html and its table fragment: one page of rollouts under a filter."""

    ctx: ProjectContext
    flt: RolloutFilter
    page: rollout_browse.RolloutPage
    facets: rollout_browse.Facets
    base_url: str
    first_url: str
    next_url: str | None
    is_first_page: bool
    short: Callable[..., str]
    preview: Callable[..., str]
    rank_candidates: int


@router.get("/projects/{project_id}/rollouts", include_in_schema=False)
def rollout_list_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    flt = _filter(request)
    cursor = request.query_params.get("cursor")
    page = rollout_browse.list_rollouts(session, ctx.project_id, flt, cursor=cursor)
    base = project_url(ctx.project_id, "rollouts")
    context = RolloutListPage(
        ctx=ctx,
        flt=flt,
        page=page,
        facets=rollout_browse.facets(session, ctx.project_id),
        base_url=base,
        first_url=_url(base, flt.params()),
        next_url=_url(base, {**flt.params(), "cursor": page.next_cursor})
        if page.next_cursor
        else None,
        is_first_page=not cursor,
        short=display.short,
        preview=display.readable_preview,
        rank_candidates=RANK_CANDIDATES,
    )
    return render(request, "rollouts/list.html", context, fragment="rollouts/_list.html")


@router.get("/projects/{project_id}/rollouts/groups", include_in_schema=False)
def rollout_groups_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    flt = _filter(request)
    cursor = request.query_params.get("cursor")
    page = rollout_browse.list_groups(session, ctx.project_id, flt, cursor=cursor)
    base = project_url(ctx.project_id, "rollouts", "groups")
    context = {
        "ctx": ctx,
        "flt": flt,
        "page": page,
        "facets": rollout_browse.facets(session, ctx.project_id),
        "base_url": base,
        "next_url": _url(base, {**flt.params(), "cursor": page.next_cursor})
        if page.next_cursor
        else None,
        "is_first_page": not cursor,
    }
    return render(request, "rollouts/groups.html", context, fragment="rollouts/_groups.html")


@router.get("/projects/{project_id}/rollouts/group", include_in_schema=False)
def rollout_group_page(
    request: Request, session: SessionDep, ctx: ProjectReader, key: str = ""
) -> Response:
    rollouts = rollout_browse.group_rollouts(session, ctx.project_id, key)
    context = {
        "ctx": ctx,
        "key": key,
        "rollouts": rollouts,
        "first": rollouts[0],
        "views": {r.id: display.json_view(r.response) for r in rollouts},
        "short": display.short,
        "preview": display.readable_preview,
        "page_chars": display.PAGE_CHARS,
    }
    return render(request, "rollouts/group.html", context)


@router.get("/projects/{project_id}/rollouts/{rollout_id:int}", include_in_schema=False)
def rollout_detail_page(
    request: Request, session: SessionDep, ctx: ProjectReader, rollout: ProjectRollout
) -> Response:
    context = {
        "ctx": ctx,
        "r": rollout,
        "partners": rollout_service.pair_partners(session, rollout),
        "json_view": display.json_view(rollout.response),
        "messages": display.message_page(rollout.input_messages),
        "text_page": display.text_page,
        "pretty_json": display.pretty_json,
    }
    return render(request, "rollouts/detail.html", context)


@router.get("/projects/{project_id}/rollouts/{rollout_id:int}/messages", include_in_schema=False)
def rollout_messages_fragment(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    rollout: ProjectRollout,
    start: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """The next page of a long list of input messages, appended in place by htmx."""
    context = {
        "ctx": ctx,
        "r": rollout,
        "messages": display.message_page(rollout.input_messages, start),
        "text_page": display.text_page,
        "pretty_json": display.pretty_json,
    }
    return render(request, "rollouts/_messages.html", context)


def _part_text(rollout: Rollout, part: str) -> str:
    """The text named by a part of the detail page: response, target_document, input-N or
    reference-N."""
    if part == "response":
        return rollout.response
    if part == "target_document":
        return rollout.target_document or ""
    kind, _, index_text = part.partition("-")
    items = {"input": rollout.input_messages, "reference": rollout.reference_documents}.get(kind)
    if items is not None and index_text.isdigit() and int(index_text) < len(items):
        item = items[int(index_text)]
        value = (
            item.get("content" if kind == "input" else "text") if isinstance(item, dict) else None
        )
        return value if isinstance(value, str) else ""
    raise NotFound("No such text in this rollout.")


@router.get("/projects/{project_id}/rollouts/{rollout_id:int}/text/{part}", include_in_schema=False)
def rollout_text_fragment(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    rollout: ProjectRollout,
    part: str,
    page: NonNegInt32 = 1,
) -> Response:
    """The next page of a long text, appended in place by htmx."""
    chunk = display.text_page(_part_text(rollout, part), page)
    context = {"ctx": ctx, "r": rollout, "part": part, "chunk": chunk}
    return render(request, "rollouts/_text_more.html", context)


# ---------------------------------------------------------------------------- imports


def _import_context(session: SessionDep, ctx: Any, job: RolloutImport) -> dict[str, Any]:
    header = list(job.options.get("csv_header") or [])
    return {
        "ctx": ctx,
        "job": job,
        "finished": job.status in rollout_service.FINISHED_STATUSES,
        "progress": rollout_service.import_progress(job),
        "problems": rollout_service.list_problems(session, job.id or 0, limit=100),
        "csv_header": header,
        "csv_fields": CSV_FIELDS,
        "field_help": FIELD_HELP,
        "suggested": job.options.get("csv_mapping") or rollout_service.suggested_mapping(header),
    }


@router.get("/projects/{project_id}/imports", include_in_schema=False)
def import_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    context = {
        "ctx": ctx,
        "imports": rollout_service.list_imports(session, ctx.project_id),
        "formats": [(name, FORMAT_LABELS[name]) for name in FORMATS],
        "max_upload_bytes": request.app.state.settings.max_upload_bytes,
    }
    return render(request, "rollouts/imports.html", context)


@router.post("/projects/{project_id}/imports", include_in_schema=False)
def import_upload_action(
    request: Request,
    session: SessionDep,
    ctx: RolloutImporter,
    file: Annotated[UploadFile, File()],
    format: Annotated[str, Form(max_length=20)] = "auto",
    skip_invalid: Annotated[bool, Form()] = False,
) -> Response:
    if not file.filename:
        raise InvalidInput("Choose a file to import.")
    job = rollout_service.create_import(
        session,
        request.app.state.settings,
        ctx.project,
        ctx.user,
        filename=file.filename,
        source=file.file,
        choices=rollout_service.ImportChoices(format=format, skip_invalid=skip_invalid),
        browser_mapping=True,
    )
    return redirect(request, project_url(ctx.project_id, "imports", job.id))


@router.get("/projects/{project_id}/imports/{import_id}", include_in_schema=False)
def import_job_page(
    request: Request, session: SessionDep, ctx: ProjectReader, job: ProjectImport
) -> Response:
    return render(request, "rollouts/import.html", _import_context(session, ctx, job))


@router.get("/projects/{project_id}/imports/{import_id}/status", include_in_schema=False)
def import_status_fragment(
    request: Request, session: SessionDep, ctx: ProjectReader, job: ProjectImport
) -> Response:
    """Polled by the job page every second; 286 once the import has finished."""
    context = _import_context(session, ctx, job)
    stop = context["finished"] or job.status == rollout_service.AWAITING_MAPPING
    status = STOP_POLLING if stop and is_htmx(request) else 200
    return render(request, "rollouts/_import_status.html", context, status_code=status)


class MappingForm(BaseModel):
    """The CSV column chosen for each Studio field ("" leaves the field out)."""

    map_id: str = Field("", max_length=500)
    map_system: str = Field("", max_length=500)
    map_input: str = Field("", max_length=500)
    map_target_document: str = Field("", max_length=500)
    map_references: str = Field("", max_length=500)
    map_reference_answer: str = Field("", max_length=500)
    map_response: str = Field("", max_length=500)
    map_model: str = Field("", max_length=500)
    map_checkpoint: str = Field("", max_length=500)
    map_step: str = Field("", max_length=500)
    map_group: str = Field("", max_length=500)
    map_metadata: str = Field("", max_length=500)

    def mapping(self) -> dict[str, str]:
        return {name: str(getattr(self, f"map_{name}")).strip() for name in CSV_FIELDS}


@router.post("/projects/{project_id}/imports/{import_id}/mapping", include_in_schema=False)
def import_mapping_action(
    request: Request,
    session: SessionDep,
    ctx: RolloutImporter,
    job: ProjectImport,
    form: Annotated[MappingForm, Form()],
) -> Response:
    rollout_service.set_csv_mapping(session, job, ctx.user, form.mapping())
    response = redirect(request, project_url(ctx.project_id, "imports", job.id))
    flash(request, response, "Columns chosen; the import has started.")
    return response


@router.post("/projects/{project_id}/imports/{import_id}/cancel", include_in_schema=False)
def import_cancel_action(
    request: Request, session: SessionDep, ctx: RolloutImporter, job: ProjectImport
) -> Response:
    rollout_service.cancel_import(session, job, ctx.user)
    response = redirect(request, project_url(ctx.project_id, "imports"))
    flash(request, response, f"The import of {job.filename} was cancelled.")
    return response


@router.get(
    "/projects/{project_id}/imports/{import_id}/problems.{extension}", include_in_schema=False
)
def import_problems_download(
    request: Request, session: SessionDep, ctx: ProjectReader, job: ProjectImport, extension: str
) -> Response:
    if extension not in ("csv", "jsonl"):
        raise NotFound("Problems can be downloaded as .csv or .jsonl.")
    return problems_download(request, job, extension)
