"""JSON routes for projects and members (/api/v1)."""

from __future__ import annotations

from fastapi import APIRouter, status
from starlette.responses import Response

from app.auth.dependencies import CurrentUser, ProjectManager, ProjectReader, SessionDep
from app.core.ids import Id
from app.projects import service as project_service
from app.projects.models import Project
from app.projects.schemas import (
    ApprovalPolicy,
    MemberCreate,
    MemberPublic,
    MemberRoleUpdate,
    ProjectCreate,
    ProjectPublic,
    ProjectUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["projects"])


def _public(project: Project, role: str | None) -> ProjectPublic:
    location = project_service.document_location(project)
    return ProjectPublic.model_validate(
        {**project.model_dump(), "role": role, "document_location": location}
    )


@router.get("/projects", response_model=list[ProjectPublic])
def list_projects(session: SessionDep, user: CurrentUser) -> list[ProjectPublic]:
    rows = project_service.list_projects_for(session, user)
    return [_public(row.project, row.role) for row in rows]


@router.post("/projects", response_model=ProjectPublic, status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectCreate, session: SessionDep, user: CurrentUser) -> ProjectPublic:
    project = project_service.create_project(
        session,
        name=body.name,
        description=body.description,
        policy_system_prompt=body.policy_system_prompt,
        output_schema=body.output_schema,
        owner=user,
    )
    return _public(project, "admin")


@router.get("/projects/{project_id}", response_model=ProjectPublic)
def get_project(ctx: ProjectReader) -> ProjectPublic:
    return _public(ctx.project, ctx.role)


@router.put("/projects/{project_id}", response_model=ProjectPublic)
def update_project(body: ProjectUpdate, session: SessionDep, ctx: ProjectManager) -> ProjectPublic:
    project = project_service.update_project(
        session,
        ctx.project,
        actor=ctx.user,
        expected_revision=body.revision,
        name=body.name,
        description=body.description,
        policy_system_prompt=body.policy_system_prompt,
        output_schema=body.output_schema,
        document_location=body.document_location,
    )
    return _public(project, ctx.role)


@router.get("/projects/{project_id}/approval-policy", response_model=ApprovalPolicy)
def get_approval_policy(ctx: ProjectReader) -> ApprovalPolicy:
    """Whether a rubric version's publisher may also sign it off."""
    return ApprovalPolicy(single_approver=project_service.single_approver_allowed(ctx.project))


@router.put("/projects/{project_id}/approval-policy", response_model=ApprovalPolicy)
def set_approval_policy(
    body: ApprovalPolicy, session: SessionDep, ctx: ProjectManager
) -> ApprovalPolicy:
    """Allow a single approver, or require a second expert (the default)."""
    project = project_service.set_single_approver(
        session, ctx.project, actor=ctx.user, allowed=body.single_approver
    )
    return ApprovalPolicy(single_approver=project_service.single_approver_allowed(project))


@router.get("/projects/{project_id}/members", response_model=list[MemberPublic])
def list_members(session: SessionDep, ctx: ProjectReader) -> list[MemberPublic]:
    return [
        MemberPublic(
            id=row.membership.id or 0,
            user_id=row.user.id or 0,
            email=row.user.email,
            display_name=row.user.display_name,
            role=row.membership.role,
        )
        for row in project_service.list_members(session, ctx.project_id)
    ]


@router.post(
    "/projects/{project_id}/members",
    response_model=MemberPublic,
    status_code=status.HTTP_201_CREATED,
)
def add_member(body: MemberCreate, session: SessionDep, ctx: ProjectManager) -> MemberPublic:
    membership = project_service.add_member(
        session, ctx.project, email=body.email, role=body.role, actor=ctx.user
    )
    return MemberPublic(
        id=membership.id or 0,
        user_id=membership.user_id,
        email=body.email.strip().lower(),
        display_name="",
        role=membership.role,
    )


@router.put("/projects/{project_id}/members/{membership_id}", response_model=MemberPublic)
def set_member_role(
    membership_id: Id, body: MemberRoleUpdate, session: SessionDep, ctx: ProjectManager
) -> MemberPublic:
    """Change a member's role (a project keeps at least one admin: 422 otherwise)."""
    membership = project_service.set_member_role(
        session, ctx.project, membership_id=membership_id, role=body.role, actor=ctx.user
    )
    row = next(
        r
        for r in project_service.list_members(session, ctx.project_id)
        if r.membership.id == membership.id
    )
    return MemberPublic(
        id=membership.id or 0,
        user_id=membership.user_id,
        email=row.user.email,
        display_name=row.user.display_name,
        role=membership.role,
    )


@router.delete(
    "/projects/{project_id}/members/{membership_id}", status_code=status.HTTP_204_NO_CONTENT
)
def remove_member(membership_id: Id, session: SessionDep, ctx: ProjectManager) -> Response:
    """Remove a member (a project keeps at least one admin: 422 otherwise)."""
    project_service.remove_member(session, ctx.project, membership_id=membership_id, actor=ctx.user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
