"""JSON routes for rubrics (/api/v1/projects/{project_id}/rubrics...): drafts with an optimistic
lock, publishing, versions, sign-off, rendering and rubric-as-code export/import."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from starlette.responses import JSONResponse, Response

from app.auth.dependencies import (
    ProjectReader,
    RubricApprover,
    RubricEditor,
    RubricPublisher,
    SessionDep,
)
from app.core.ids import BigId, Id
from app.rollouts import service as rollout_service
from app.rollouts.deps import ProjectRollout
from app.rubrics import files as rubric_files
from app.rubrics import forms
from app.rubrics import previews as rubric_previews
from app.rubrics import publishing as rubric_publishing
from app.rubrics import service as rubric_service
from app.rubrics.deps import ProjectRubric
from app.rubrics.models import Rubric, RubricApproval, RubricVersion
from app.rubrics.schemas import (
    ApprovalPublic,
    ApproveBody,
    ArchiveBody,
    DraftConflictBody,
    DraftSave,
    DraftSaveResult,
    ImportBody,
    PublishBody,
    RubricCreate,
    RubricPublic,
    RubricSummary,
    VersionPublic,
    VersionSummary,
)

router = APIRouter(prefix="/api/v1/projects/{project_id}/rubrics", tags=["rubrics"])


_CONFLICT: dict[int | str, dict[str, Any]] = {
    status.HTTP_409_CONFLICT: {
        "model": DraftConflictBody,
        "description": "The draft changed since you read it; the current draft is returned.",
    }
}


def _approval(a: RubricApproval) -> ApprovalPublic:
    return ApprovalPublic(user_label=a.user_label, comment=a.comment, approved_at=a.approved_at)


def _summary(v: RubricVersion, approvals: list[RubricApproval]) -> VersionSummary:
    return VersionSummary(
        id=v.id or 0,
        number=v.number,
        content_hash=v.content_hash,
        change_note=v.change_note,
        created_by=v.created_by_label,
        created_at=v.created_at,
        approvals=[_approval(a) for a in approvals],
    )


def _version(v: RubricVersion, approvals: list[RubricApproval]) -> VersionPublic:
    return VersionPublic(
        **_summary(v, approvals).model_dump(),
        rubric_id=v.rubric_id,
        definition=v.definition,
        output_schema=v.output_schema,
    )


def _rubric_public(session: SessionDep, rubric: Rubric) -> RubricPublic:
    versions = rubric_service.list_versions(session, rubric.id or 0)
    approvals = rubric_service.approvals_for(session, [v.id or 0 for v in versions])
    draft = rubric_service.current_draft(session, rubric)
    check = forms.check_draft(draft)
    return RubricPublic(
        id=rubric.id or 0,
        name=rubric.name,
        description=rubric.description,
        mode=rubric.mode,
        latest_version=versions[0].number if versions else None,
        latest_version_id=versions[0].id if versions else None,
        draft_revision=rubric.draft_revision,
        archived=rubric.archived,
        draft=draft,
        draft_based_on_version=rubric.draft_based_on_version,
        draft_based_on_version_id=next(
            (v.id for v in versions if v.number == rubric.draft_based_on_version), None
        ),
        draft_updated_at=rubric.draft_updated_at,
        valid=check.ok,
        problems=check.problems,
        template_errors=[e.to_dict() for e in check.template_errors],
        versions=[_summary(v, approvals[v.id or 0]) for v in versions],
    )


def _conflict(exc: rubric_service.DraftConflict) -> JSONResponse:
    body = DraftConflictBody(
        detail=exc.message,
        current_revision=exc.current_revision,
        current_definition=exc.current_draft,
        updated_by=exc.updated_by,
        updated_at=exc.updated_at,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_409_CONFLICT)


@router.get("", response_model=list[RubricSummary])
def list_rubrics(
    session: SessionDep, ctx: ProjectReader, include_archived: bool = False
) -> list[RubricSummary]:
    """The project's rubrics with their newest version number."""
    rows = rubric_service.list_rubrics(session, ctx.project_id, include_archived=include_archived)
    return [
        RubricSummary(
            id=row.rubric.id or 0,
            name=row.rubric.name,
            description=row.rubric.description,
            mode=row.rubric.mode,
            latest_version=row.latest_version,
            latest_version_id=row.latest_version_id,
            draft_revision=row.rubric.draft_revision,
            archived=row.rubric.archived,
        )
        for row in rows
    ]


@router.post("", response_model=RubricPublic, status_code=status.HTTP_201_CREATED)
def create_rubric(body: RubricCreate, session: SessionDep, ctx: RubricEditor) -> RubricPublic:
    """Create a rubric from a built-in template or a blank design."""
    rubric = rubric_service.create_rubric(
        session,
        ctx.project,
        actor=ctx.user,
        name=body.name,
        description=body.description,
        template=body.template,
    )
    return _rubric_public(session, rubric)


@router.post("/import", response_model=RubricPublic, status_code=status.HTTP_201_CREATED)
def import_rubric(body: ImportBody, session: SessionDep, ctx: RubricEditor) -> RubricPublic:
    """Create a rubric, with its versions, sign-offs and draft, from a YAML or JSON rubric file."""
    rubric = rubric_files.import_rubric(
        session, ctx.project, actor=ctx.user, text=body.content, fmt=body.format, name=body.name
    )
    return _rubric_public(session, rubric)


@router.get("/{rubric_id}", response_model=RubricPublic)
def get_rubric(session: SessionDep, ctx: ProjectReader, rubric: ProjectRubric) -> RubricPublic:
    """The rubric, its draft (with what still prevents publishing) and its versions."""
    return _rubric_public(session, rubric)


@router.put("/{rubric_id}/draft", response_model=DraftSaveResult, responses=_CONFLICT)
def save_draft(
    body: DraftSave, session: SessionDep, ctx: RubricEditor, rubric: ProjectRubric
) -> DraftSaveResult | JSONResponse:
    """Save the whole draft. Send the revision you read: if someone saved since, nothing is
    written and 409 returns the current draft and revision."""
    try:
        saved = rubric_service.save_draft(
            session, rubric, actor=ctx.user, expected_revision=body.revision, draft=body.definition
        )
    except rubric_service.DraftConflict as exc:
        return _conflict(exc)
    return DraftSaveResult(
        revision=saved.revision,
        changed=saved.changed,
        valid=saved.check.ok,
        problems=saved.check.problems,
        template_errors=[e.to_dict() for e in saved.check.template_errors],
    )


@router.post(
    "/{rubric_id}/publish",
    response_model=VersionPublic,
    status_code=status.HTTP_201_CREATED,
    responses=_CONFLICT,
)
def publish(
    body: PublishBody, session: SessionDep, ctx: RubricPublisher, rubric: ProjectRubric
) -> VersionPublic | JSONResponse:
    """Freeze the current draft as the next version, with a required change note."""
    try:
        version = rubric_publishing.publish_version(
            session,
            rubric,
            actor=ctx.user,
            change_note=body.change_note,
            expected_revision=body.revision,
        )
    except rubric_service.DraftConflict as exc:
        return _conflict(exc)
    return _version(version, [])


@router.post("/{rubric_id}/archive", response_model=RubricPublic)
def archive(
    rubric_id: Id, body: ArchiveBody, session: SessionDep, ctx: RubricEditor
) -> RubricPublic:
    """Hide a rubric from the list (`archived: true`) or restore it; versions stay untouched."""
    rubric = rubric_service.get_rubric(session, ctx.project_id, rubric_id)
    rubric_publishing.archive_rubric(session, rubric, actor=ctx.user, archived=body.archived)
    return _rubric_public(session, rubric)


@router.get("/{rubric_id}/versions", response_model=list[VersionSummary])
def list_versions(
    session: SessionDep, ctx: ProjectReader, rubric: ProjectRubric
) -> list[VersionSummary]:
    """Published versions, newest first."""
    versions = rubric_service.list_versions(session, rubric.id or 0)
    approvals = rubric_service.approvals_for(session, [v.id or 0 for v in versions])
    return [_summary(v, approvals[v.id or 0]) for v in versions]


@router.get("/{rubric_id}/versions/{number}", response_model=VersionPublic)
def get_version(
    number: Id, session: SessionDep, ctx: ProjectReader, rubric: ProjectRubric
) -> VersionPublic:
    """One frozen version: definition, output JSON Schema, content hash and sign-offs."""
    version = rubric_service.get_version(session, rubric, number)
    approvals = rubric_service.approvals_for(session, [version.id or 0])
    return _version(version, approvals[version.id or 0])


@router.get("/{rubric_id}/versions/{number}/render")
def render_version(
    number: Id,
    session: SessionDep,
    ctx: ProjectReader,
    rubric: ProjectRubric,
    rollout: ProjectRollout,
    rollout_b_id: BigId | None = None,
) -> dict[str, Any]:
    """The exact judge messages this version produces for a rollout, with a token estimate."""
    version = rubric_service.get_version(session, rubric, number)
    partner = (
        rollout_service.get_rollout(session, ctx.project_id, rollout_b_id)
        if rollout_b_id is not None
        else rubric_previews.pair_partner(session, rollout)
    )
    preview = rubric_previews.render_preview(
        version.definition, rubric_previews.prompt_context(rollout, partner)
    )
    return {
        "messages": preview.messages,
        "estimated_tokens": preview.tokens,
        "errors": preview.problems + [str(e) for e in preview.template_errors],
    }


@router.post(
    "/{rubric_id}/versions/{number}/approve",
    response_model=ApprovalPublic,
    status_code=status.HTTP_201_CREATED,
)
def approve(
    number: Id, body: ApproveBody, session: SessionDep, ctx: RubricApprover, rubric: ProjectRubric
) -> ApprovalPublic:
    """Sign off a published version (once per person)."""
    version = rubric_service.get_version(session, rubric, number)
    approval = rubric_publishing.approve_version(
        session, version, actor=ctx.user, comment=body.comment
    )
    return _approval(approval)


@router.get(
    "/{rubric_id}/export",
    response_class=Response,
    responses={200: {"content": {"application/yaml": {}, "application/json": {}}}},
)
def export(
    session: SessionDep,
    ctx: ProjectReader,
    rubric: ProjectRubric,
    format: Annotated[Literal["yaml", "json"], Query()] = "yaml",
    version: Annotated[Id | None, Query(description="one version; all when omitted")] = None,
) -> Response:
    """The rubric as a YAML or JSON file: all versions (and a valid draft), or one version."""
    filename, text = rubric_files.export_text(session, rubric, fmt=format, version=version)
    media = "application/json" if format == "json" else "application/yaml"
    return Response(
        text,
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
