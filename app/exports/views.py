"""HTML routes: the export list with its create form, a bundle's page and target downloads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from app.auth.dependencies import ExportCreator, ProjectReader, SessionDep
from app.auth.policies import Permission
from app.core.errors import InvalidInput
from app.core.ids import Id, bounded
from app.exports import service as export_service
from app.exports.api import TargetName
from app.exports.deps import ProjectBundle
from app.exports.schemas import TargetQuery
from app.web.flash import flash
from app.web.htmx import redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: exports"])


@router.get("/projects/{project_id}/exports", include_in_schema=False)
def export_list_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    project_id = ctx.project_id
    context = {
        "ctx": ctx,
        "bundles": export_service.list_bundles(session, project_id),
        "choices": export_service.export_choices(session, project_id),
        "can_export": ctx.can(Permission.export_create),
        "can_override": ctx.can(Permission.export_override),
    }
    return render(request, "exports/list.html", context)


def _optional_int(value: str, name: str) -> int | None:
    if not value.strip():
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be chosen from the list.") from None
    return bounded(number, name)


@router.post("/projects/{project_id}/exports", include_in_schema=False)
def export_create_action(
    request: Request,
    session: SessionDep,
    ctx: ExportCreator,
    rubric_version_id: Annotated[Id, Form(ge=1)],
    judge_config_id: Annotated[Id, Form(ge=1)],
    run_id: Annotated[str, Form(max_length=12)] = "",
    override_reason: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    bundle = export_service.create_bundle(
        session,
        ctx.project,
        actor=ctx.user,
        can_override=ctx.can(Permission.export_override),
        rubric_version_id=rubric_version_id,
        judge_config_id=judge_config_id,
        run_id=_optional_int(run_id, "The judge run"),
        override_reason=override_reason or None,
    )
    response = redirect(request, project_url(ctx.project_id, "exports", bundle.id))
    note = " (gate overridden)" if bundle.override_reason else ""
    flash(
        request,
        response,
        f"Export #{bundle.number} frozen{note}: sha256 {bundle.content_hash[:12]}…",
    )
    return response


@router.get("/projects/{project_id}/exports/{bundle_id}", include_in_schema=False)
def export_detail_page(
    request: Request, session: SessionDep, ctx: ProjectReader, bundle: ProjectBundle
) -> Response:
    context = {
        "ctx": ctx,
        "bundle": bundle,
        "manifest": bundle.content.get("manifest") or {},
        "spec": bundle.content.get("spec") or {},
        "same": export_service.same_content(session, bundle),
        "targets": export_service.target_names(),
    }
    return render(request, "exports/detail.html", context)


@router.get("/projects/{project_id}/exports/{bundle_id}/download/{target}", include_in_schema=False)
def export_download(
    target: TargetName,
    session: SessionDep,
    ctx: ProjectReader,
    bundle: ProjectBundle,
    query: Annotated[TargetQuery, Query()],
) -> Response:
    file = export_service.target_file(bundle, target, query.options())
    return Response(
        file.data,
        media_type=file.media_type,
        headers={"Content-Disposition": f'attachment; filename="{file.filename}"'},
    )
