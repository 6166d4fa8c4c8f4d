"""HTML routes for label import and export (JSONL or CSV)."""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from starlette.responses import Response

from app.auth.dependencies import (
    LabelImporter,
    ProjectReader,
    SessionDep,
)
from app.auth.policies import Permission
from app.core.errors import InvalidInput
from app.core.ids import Id
from app.labels import exchange, transfer
from app.rubrics import service as rubric_service
from app.web.htmx import redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: labeling"])

MAX_IMPORT_BYTES = 20 * 1024 * 1024


def _base(ctx: Any) -> str:
    return project_url(ctx.project_id)


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
    if len(data) > exchange.JOB_THRESHOLD_BYTES:
        # A large file: a job the worker runs, with a progress bar on its page.
        job = exchange.queue_label_import(
            session,
            request.app.state.settings,
            ctx.project,
            actor=ctx.user,
            rubric_version_id=rubric_version_id,
            filename=file.filename or "labels",
            source=io.BytesIO(data),
            fmt=fmt,
            skip_invalid=skip_invalid,
        )
        return redirect(request, project_url(ctx.project_id, "imports", job.id or 0))
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
