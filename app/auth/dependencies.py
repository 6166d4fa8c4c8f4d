"""Dependencies that authenticate the caller and check project permissions, written once.

The route-table test discovers these objects in each route's dependency tree, so a new route
is covered by the permission and CSRF tests as soon as it declares what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from app.auth import service as auth_service
from app.auth.models import User
from app.auth.policies import Permission, role_allows, roles_with
from app.core.db import get_session
from app.core.errors import NotFound, PermissionDenied, Unauthenticated
from app.core.ids import Id
from app.projects import service as project_service
from app.projects.models import Project

SessionDep = Annotated[Session, Depends(get_session)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def current_user_optional(request: Request, session: SessionDep) -> User | None:
    if hasattr(request.state, "user"):
        return request.state.user
    user: User | None = None
    token = bearer_token(request)
    if token is not None:
        user = auth_service.resolve_api_token(session, token)
        request.state.auth_via = "token" if user else None
    elif getattr(request.state, "session_token", None):
        user = auth_service.resolve_session(session, request.state.session_token)
        request.state.auth_via = "session" if user else None
    request.state.user = user
    return user


class RequireUser:
    """Any signed-in user."""

    def __call__(self, user: Annotated[User | None, Depends(current_user_optional)]) -> User:
        if user is None:
            raise Unauthenticated("Sign in to continue.")
        return user


require_user = RequireUser()
CurrentUser = Annotated[User, Depends(require_user)]


class RequireSiteAdmin:
    """A site administrator (manages user accounts)."""

    def __call__(self, user: CurrentUser) -> User:
        if not user.is_admin:
            raise PermissionDenied("Only site administrators may manage user accounts.")
        return user


require_site_admin = RequireSiteAdmin()
SiteAdmin = Annotated[User, Depends(require_site_admin)]


@dataclass
class ProjectContext:
    """The project a request is about, its caller and the caller's role.

    ``project_id`` is the loaded project's id: never ``None`` inside a request.
    """

    project: Project
    user: User
    role: str
    project_id: int

    def can(self, permission: Permission | str) -> bool:
        return role_allows(self.role, Permission(permission))


@dataclass(frozen=True)
class ProjectNav:
    id: int
    name: str
    role: str

    def can(self, permission: Permission | str) -> bool:
        return role_allows(self.role, Permission(permission))


class ProjectPermission:
    """Loads the project named by the path's ``project_id`` and checks the user's role."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(
        self, project_id: Id, request: Request, session: SessionDep, user: CurrentUser
    ) -> ProjectContext:
        project = session.get(Project, project_id)
        membership = (
            project_service.get_membership(session, project_id, user.id or 0) if project else None
        )
        # Non-members get the same answer as for a missing project: existence is not leaked.
        if project is None or membership is None:
            raise NotFound("No such project, or you are not a member of it.")
        ctx = ProjectContext(
            project=project, user=user, role=membership.role, project_id=project_id
        )
        # Plain values for the layout: still readable on an error page after a rollback.
        request.state.project_nav = ProjectNav(
            id=project_id, name=project.name, role=membership.role
        )
        if not role_allows(membership.role, self.permission):
            allowed = ", ".join(r.value for r in roles_with(self.permission))
            raise PermissionDenied(
                f"Your role ({membership.role}) may not do this; it needs one of: {allowed}."
            )
        return ctx


def project_access(permission: Permission) -> type[ProjectContext]:
    """Kept for older call sites; prefer the typed aliases below (mypy understands those)."""
    return Annotated[ProjectContext, Depends(ProjectPermission(permission))]  # type: ignore[return-value]


def _access(permission: Permission) -> ProjectPermission:
    return ProjectPermission(permission)


# One alias per permission: `ctx: RubricEditor` in a route loads the project and checks the role.
ProjectReader = Annotated[ProjectContext, Depends(_access(Permission.project_read))]
ProjectManager = Annotated[ProjectContext, Depends(_access(Permission.project_manage))]
AuditReader = Annotated[ProjectContext, Depends(_access(Permission.audit_read))]
RolloutImporter = Annotated[ProjectContext, Depends(_access(Permission.rollout_import))]
RubricEditor = Annotated[ProjectContext, Depends(_access(Permission.rubric_edit))]
RubricPublisher = Annotated[ProjectContext, Depends(_access(Permission.rubric_publish))]
RubricApprover = Annotated[ProjectContext, Depends(_access(Permission.rubric_approve))]
JudgeManager = Annotated[ProjectContext, Depends(_access(Permission.judge_manage))]
JudgeRunner = Annotated[ProjectContext, Depends(_access(Permission.judge_run))]
LabelWriter = Annotated[ProjectContext, Depends(_access(Permission.label_write))]
LabelImporter = Annotated[ProjectContext, Depends(_access(Permission.label_import))]
DisagreementResolver = Annotated[ProjectContext, Depends(_access(Permission.disagreement_resolve))]
GoldManager = Annotated[ProjectContext, Depends(_access(Permission.gold_manage))]
QueueManager = Annotated[ProjectContext, Depends(_access(Permission.queue_manage))]
RewardEditor = Annotated[ProjectContext, Depends(_access(Permission.reward_edit))]
ExportCreator = Annotated[ProjectContext, Depends(_access(Permission.export_create))]
ExportOverrider = Annotated[ProjectContext, Depends(_access(Permission.export_override))]
DriftAuditor = Annotated[ProjectContext, Depends(_access(Permission.drift_audit))]
DriftAuditCreator = Annotated[ProjectContext, Depends(_access(Permission.drift_audit_create))]
DriftImporter = Annotated[ProjectContext, Depends(_access(Permission.drift_import))]
