"""JSON routes for export bundles and their generated targets (/api/v1)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from starlette.responses import Response

from app.auth.dependencies import ExportCreator, ProjectReader, SessionDep
from app.auth.policies import Permission
from app.core.ids import Id
from app.exports import service as export_service
from app.exports.deps import ProjectBundle
from app.exports.models import ExportBundle
from app.exports.schemas import ExportCreate, ExportPublic, GateCheckPublic, TargetQuery
from app.web.errors import ErrorBody

router = APIRouter(prefix="/api/v1", tags=["exports"])

TargetName = Literal[
    "nova-lambda",
    "nova-recipe",
    "nova-iam",
    "trl",
    "verl",
    "openrlhf",
    "trainer-requirements",
    "openai-grader",
    "foundry-grader",
    "bundle",
]


# What each target is served as: application/zip (nova-lambda), application/yaml (nova-recipe),
# application/json (nova-iam, graders, bundle), text/x-python (trl, verl, openrlhf) and
# text/plain (trainer-requirements).
TARGET_MEDIA_TYPES = (
    "application/zip",
    "application/yaml",
    "application/json",
    "text/x-python",
    "text/plain",
)


def _public(
    bundle: ExportBundle, *, with_spec: bool = False, same: list[int] | None = None
) -> ExportPublic:
    return ExportPublic(
        id=bundle.id or 0,
        project_id=bundle.project_id,
        number=bundle.number,
        content_hash=bundle.content_hash,
        rubric_version_id=bundle.rubric_version_id,
        judge_config_id=bundle.judge_config_id,
        reward_config_id=bundle.reward_config_id,
        gate_passed=bundle.gate_passed,
        override_reason=bundle.override_reason,
        created_by_id=bundle.created_by_id,
        created_at=bundle.created_at,
        manifest=bundle.content.get("manifest") or {},
        spec=bundle.content.get("spec") if with_spec else None,
        same_content_as=same or [],
    )


@router.get("/projects/{project_id}/exports", response_model=list[ExportPublic])
def list_exports(session: SessionDep, ctx: ProjectReader) -> list[ExportPublic]:
    """Export bundles, newest first (without their spec)."""
    return [_public(b) for b in export_service.list_bundles(session, ctx.project_id)]


@router.get("/projects/{project_id}/exports/gate-check", response_model=GateCheckPublic)
def gate_check(
    session: SessionDep,
    ctx: ProjectReader,
    rubric_version_id: Annotated[Id, Query(ge=1)],
    judge_config_id: Annotated[Id, Query(ge=1)],
    run_id: Annotated[Id | None, Query(ge=1)] = None,
) -> GateCheckPublic:
    """The agreement figures on the gold test split and the gate, without exporting."""
    check = export_service.check_gate(
        session,
        ctx.project,
        rubric_version_id=rubric_version_id,
        judge_config_id=judge_config_id,
        run_id=run_id,
    )
    return GateCheckPublic(agreement=check.summary, gate=check.gate)


@router.post(
    "/projects/{project_id}/exports",
    response_model=ExportPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {
            "model": ErrorBody,
            "description": "the export gate blocks it (or a concurrent change)",
        }
    },
)
def create_export(body: ExportCreate, session: SessionDep, ctx: ExportCreator) -> ExportPublic:
    """Freeze a bundle. When the gate fails, only an admin may export, with override_reason."""
    bundle = export_service.create_bundle(
        session,
        ctx.project,
        actor=ctx.user,
        can_override=ctx.can(Permission.export_override),
        rubric_version_id=body.rubric_version_id,
        judge_config_id=body.judge_config_id,
        run_id=body.run_id,
        override_reason=body.override_reason,
    )
    return _public(bundle, with_spec=True, same=export_service.same_content(session, bundle))


@router.get("/projects/{project_id}/exports/{bundle_id}", response_model=ExportPublic)
def get_export(session: SessionDep, ctx: ProjectReader, bundle: ProjectBundle) -> ExportPublic:
    return _public(bundle, with_spec=True, same=export_service.same_content(session, bundle))


@router.get(
    "/projects/{project_id}/exports/{bundle_id}/targets/{target}",
    response_class=Response,
    responses={
        200: {
            "description": "the generated file, as an attachment (Content-Disposition names it)",
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in TARGET_MEDIA_TYPES
            },
        }
    },
)
def download_target(
    target: TargetName,
    session: SessionDep,
    ctx: ProjectReader,
    bundle: ProjectBundle,
    query: Annotated[TargetQuery, Query()],
) -> Response:
    """A target generated from the bundle: nova-lambda (zip), nova-recipe, nova-iam, trl, verl,
    openrlhf, trainer-requirements, openai-grader (legacy), foundry-grader or the bundle file
    itself."""
    file = export_service.target_file(bundle, target, query.options())
    return Response(
        file.data,
        media_type=file.media_type,
        headers={"Content-Disposition": f'attachment; filename="{file.filename}"'},
    )
