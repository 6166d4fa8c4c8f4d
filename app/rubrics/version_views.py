"""HTML routes for a rubric's versions: publish, archive, the version page, sign-off, side-by-side
comparison and the file export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from app.auth.dependencies import (
    ProjectReader,
    RubricApprover,
    RubricEditor,
    RubricPublisher,
    SessionDep,
)
from app.auth.policies import Permission
from app.core.errors import InvalidInput, NotFound
from app.core.ids import Id
from app.probes import gate as probe_gate
from app.rubrics import comparison as rubric_comparison
from app.rubrics import files as rubric_files
from app.rubrics import forms
from app.rubrics import publishing as rubric_publishing
from app.rubrics import service as rubric_service
from app.rubrics.deps import ProjectRubric
from app.rubrics.diff import side_by_side
from app.rubrics.models import Rubric
from app.rubrics.views import BASE, FormFields, conflict_response, form_revision, rubric_url
from app.web.flash import flash
from app.web.htmx import is_htmx, redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: rubrics"])


# --------------------------------------------------------------------------- publish, versions


@router.post(BASE + "/{rubric_id}/publish", include_in_schema=False)
def rubric_publish_action(
    request: Request,
    session: SessionDep,
    ctx: RubricPublisher,
    rubric: ProjectRubric,
    fields: FormFields,
) -> Response:
    # From the editor the whole form comes along: what is on screen is what gets published.
    draft = forms.draft_from_form(fields, rubric.mode) if "title" in fields else None
    try:
        version = rubric_publishing.publish_version(
            session,
            rubric,
            actor=ctx.user,
            change_note=fields.get("change_note", ""),
            expected_revision=form_revision(fields),
            draft=draft,
            keep_examples=True,
        )
    except rubric_service.DraftConflict as exc:
        yours = draft if draft is not None else rubric_service.current_draft(session, rubric)
        return conflict_response(request, session, ctx, rubric, exc, yours)
    except InvalidInput as exc:
        if not is_htmx(request):
            raise
        problems = exc.details if isinstance(exc.details, list) else []
        context = {"message": exc.message, "problems": problems}
        return render(request, "rubrics/_publish_error.html", context, status_code=422)
    response = redirect(request, rubric_url(rubric, f"/versions/{version.number}"))
    flash(request, response, f"Published version {version.number}.")
    return response


@router.post(BASE + "/{rubric_id}/archive", include_in_schema=False)
def rubric_archive_action(
    request: Request,
    session: SessionDep,
    ctx: RubricEditor,
    rubric: ProjectRubric,
    archived: Annotated[bool, Form()] = True,
) -> Response:
    rubric_publishing.archive_rubric(session, rubric, actor=ctx.user, archived=archived)
    response = redirect(request, project_url(rubric.project_id, "rubrics"))
    flash(request, response, f"Rubric “{rubric.name}” {'archived' if archived else 'restored'}.")
    return response


@router.get(BASE + "/{rubric_id}/versions/{number}", include_in_schema=False)
def rubric_version_page(
    request: Request, session: SessionDep, ctx: ProjectReader, rubric: ProjectRubric, number: Id
) -> Response:
    version = rubric_service.get_version(session, rubric, number)
    versions = rubric_service.list_versions(session, rubric.id or 0)
    approvals = rubric_service.approvals_for(session, [version.id or 0])[version.id or 0]
    definition = rubric_service.version_definition(version)
    context = {
        "ctx": ctx,
        "rubric": rubric,
        "version": version,
        "versions": versions,
        "definition": definition,
        "approvals": approvals,
        "can_approve": ctx.can(Permission.rubric_approve),
        "already_approved": any(a.user_id == ctx.user.id for a in approvals),
        "own_version_blocked": not rubric_publishing.can_sign_off(session, version, ctx.user),
        "hackability": probe_gate.hackability(session, ctx.project_id, version.id or 0),
    }
    return render(request, "rubrics/version.html", context)


@router.post(BASE + "/{rubric_id}/versions/{number}/approve", include_in_schema=False)
def rubric_approve_action(
    request: Request,
    session: SessionDep,
    ctx: RubricApprover,
    rubric: ProjectRubric,
    number: Id,
    comment: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    version = rubric_service.get_version(session, rubric, number)
    rubric_publishing.approve_version(session, version, actor=ctx.user, comment=comment)
    response = redirect(request, rubric_url(rubric, f"/versions/{number}"))
    flash(request, response, f"You signed off version {number}.")
    return response


def _side(session: SessionDep, rubric: Rubric, value: str) -> tuple[str, Any]:
    if value == "draft":
        definition, problems = forms.parse_definition(rubric_service.current_draft(session, rubric))
        if definition is None:
            raise InvalidInput(
                "The draft has problems, so it cannot be compared yet.",
                details=[{"field": "draft", "message": p} for p in problems],
            )
        return "Draft", definition
    if not value.isdigit():
        raise InvalidInput("Choose two versions to compare (a version number or “draft”).")
    version = rubric_service.get_version(session, rubric, int(value))
    return f"Version {version.number}", rubric_service.version_definition(version)


@router.get(BASE + "/{rubric_id}/compare", include_in_schema=False)
def rubric_compare_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    rubric: ProjectRubric,
    a: str = "",
    b: str = "",
) -> Response:
    versions = rubric_service.list_versions(session, rubric.id or 0)
    if not versions:
        raise NotFound("This rubric has no published version to compare yet.")
    a = a or str(versions[1].number if len(versions) > 1 else versions[0].number)
    b = b or str(versions[0].number)
    a_label, a_def = _side(session, rubric, a)
    b_label, b_def = _side(session, rubric, b)
    context = {
        "ctx": ctx,
        "rubric": rubric,
        "versions": versions,
        "a": a,
        "b": b,
        "a_label": a_label,
        "b_label": b_label,
        "cmp": rubric_comparison.compare_definitions(a_def, b_def),
        "with_context": rubric_comparison.with_context,
        "side_by_side": side_by_side,
    }
    return render(request, "rubrics/compare.html", context)


@router.get(BASE + "/{rubric_id}/export", include_in_schema=False)
def rubric_export_download(
    session: SessionDep,
    ctx: ProjectReader,
    rubric: ProjectRubric,
    format: str = "yaml",
    version: str = "",
) -> Response:
    if version and not version.isdigit():
        raise InvalidInput("version must be a version number, or empty for all versions.")
    filename, text = rubric_files.export_text(
        session, rubric, fmt=format, version=int(version) if version else None
    )
    media = "application/json" if format == "json" else "application/yaml"
    return Response(
        text,
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
