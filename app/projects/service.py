"""Projects and their members. Public functions commit once; helpers only flush."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.json_limits import check_json
from app.core.problems import problem
from app.judging.models import JudgeRun
from app.labels.models import GoldItem, Label
from app.projects.models import Membership, Project, Role
from app.projects.schemas import DocumentLocation
from app.rollouts.models import Rollout
from app.rubrics.models import Rubric


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60] or "project"


def _unique_slug(session: Session, name: str) -> str:
    base = slugify(name)
    slug, n = base, 2
    while session.exec(select(Project.id).where(Project.slug == slug)).first() is not None:
        slug, n = f"{base}-{n}", n + 1
    return slug


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("The project needs a name.")
    if len(name) > 200:
        raise InvalidInput("The project name must be at most 200 characters.")
    return name


def _clean_output_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Checked before it is stored: every project page and API answer shows it again."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("The output JSON Schema must be a JSON object.")
    return check_json(value, "The output JSON Schema")


def create_project(
    session: Session,
    *,
    name: str,
    description: str = "",
    owner: User,
    policy_system_prompt: str = "",
    output_schema: dict[str, Any] | None = None,
    attribution: str = "",
) -> Project:
    """Create a project; its creator becomes its admin."""
    project = Project(
        slug=_unique_slug(session, name),
        name=_clean_name(name),
        description=description.strip(),
        policy_system_prompt=policy_system_prompt,
        output_schema=_clean_output_schema(output_schema),
        attribution=attribution,
    )
    session.add(project)
    session.flush()
    session.add(Membership(project_id=project.id or 0, user_id=owner.id or 0, role=Role.admin))
    audit_service.record(
        session,
        actor=owner,
        action="project.create",
        object_type="project",
        object_id=project.id,
        project_id=project.id,
        summary=f"created project {project.name}",
    )
    session.commit()
    return project


@dataclass
class ProjectRow:
    project: Project
    role: str


def list_projects_for(session: Session, user: User) -> list[ProjectRow]:
    query = (
        select(Project, Membership.role)
        .join(Membership, col(Membership.project_id) == col(Project.id))
        .where(Membership.user_id == user.id)
        .order_by(col(Project.name))
    )
    return [ProjectRow(project=p, role=r) for p, r in session.exec(query)]


def get_membership(session: Session, project_id: int, user_id: int) -> Membership | None:
    return session.exec(
        select(Membership).where(Membership.project_id == project_id, Membership.user_id == user_id)
    ).first()


def update_project(
    session: Session,
    project: Project,
    *,
    actor: User,
    expected_revision: int,
    name: str,
    description: str,
    policy_system_prompt: str,
    output_schema: dict[str, Any] | None,
    document_location: DocumentLocation | None = None,
) -> Project:
    """Save the settings (`document_location` None: unchanged); a stale revision is a 409."""
    if project.revision != expected_revision:
        raise Conflict(
            "Someone else saved these settings since you opened them. Reload to see their "
            "changes; your edits were not saved."
        )
    before = {
        "name": project.name,
        "description": project.description,
        "policy_system_prompt": project.policy_system_prompt,
        "output_schema": project.output_schema,
        "document_location": document_location_of(project),
    }
    if document_location is not None:
        project.settings = {
            **(project.settings or {}),
            DOCUMENT_LOCATION: document_location.model_dump(mode="json"),
        }
    project.name = _clean_name(name)
    project.description = description.strip()
    project.policy_system_prompt = policy_system_prompt
    project.output_schema = _clean_output_schema(output_schema)
    project.revision += 1
    project.updated_at = utcnow()
    session.add(project)
    after = {k: getattr(project, k) for k in before if k != "document_location"}
    after["document_location"] = document_location_of(project)
    changed = [k for k, v in before.items() if after[k] != v]
    audit_service.record(
        session,
        actor=actor,
        action="project.update",
        object_type="project",
        object_id=project.id,
        project_id=project.id,
        summary="changed " + (", ".join(changed) or "nothing"),
        details={"changed": changed},
    )
    session.commit()
    return project


@dataclass
class MemberRow:
    membership: Membership
    user: User


def list_members(session: Session, project_id: int) -> list[MemberRow]:
    query = (
        select(Membership, User)
        .join(User, col(User.id) == col(Membership.user_id))
        .where(Membership.project_id == project_id)
        .order_by(col(User.email))
    )
    return [MemberRow(membership=m, user=u) for m, u in session.exec(query)]


def _parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(f"'{role}' is not a role; choose one of {allowed}.") from None


def _admin_count(session: Session, project_id: int) -> int:
    rows = session.exec(
        select(Membership.id).where(
            Membership.project_id == project_id, Membership.role == Role.admin
        )
    )
    return len(list(rows))


def add_member(
    session: Session, project: Project, *, email: str, role: str, actor: User
) -> Membership:
    parsed = _parse_role(role)
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        raise NotFound(
            f"No user has the email {email.strip()}. A site admin can create the account first."
        )
    if get_membership(session, project.id or 0, user.id or 0):
        raise Conflict(f"{user.email} is already a member of this project.")
    membership = Membership(project_id=project.id or 0, user_id=user.id or 0, role=parsed)
    session.add(membership)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="member.add",
        object_type="membership",
        object_id=membership.id,
        project_id=project.id,
        summary=f"added {user.email} as {parsed.value}",
    )
    session.commit()
    return membership


def set_member_role(
    session: Session, project: Project, *, membership_id: int, role: str, actor: User
) -> Membership:
    parsed = _parse_role(role)
    membership = session.get(Membership, membership_id)
    if membership is None or membership.project_id != project.id:
        raise NotFound("No such member in this project.")
    demoting = membership.role == Role.admin and parsed != Role.admin
    if demoting and _admin_count(session, project.id or 0) <= 1:
        raise InvalidInput("A project needs at least one admin; make someone else admin first.")
    old = membership.role
    membership.role = parsed
    session.add(membership)
    user = session.get(User, membership.user_id)
    audit_service.record(
        session,
        actor=actor,
        action="member.role",
        object_type="membership",
        object_id=membership.id,
        project_id=project.id,
        summary=f"changed {user.email if user else membership.user_id} from {old} to {parsed}",
        details={"from": old, "to": parsed.value},
    )
    session.commit()
    return membership


def remove_member(session: Session, project: Project, *, membership_id: int, actor: User) -> None:
    membership = session.get(Membership, membership_id)
    if membership is None or membership.project_id != project.id:
        raise NotFound("No such member in this project.")
    if membership.role == Role.admin and _admin_count(session, project.id or 0) <= 1:
        raise InvalidInput("A project needs at least one admin; you cannot remove the last one.")
    user = session.get(User, membership.user_id)
    session.delete(membership)
    audit_service.record(
        session,
        actor=actor,
        action="member.remove",
        object_type="membership",
        object_id=membership_id,
        project_id=project.id,
        summary=f"removed {user.email if user else membership.user_id}",
    )
    session.commit()


def project_counts(session: Session, project_id: int) -> dict[str, int]:
    """Headline counts for the overview page, one cheap COUNT each."""

    def count(model: Any) -> int:
        query = select(func.count()).select_from(model).where(model.project_id == project_id)
        return int(session.exec(query).one())

    return {
        "rollouts": count(Rollout),
        "rubrics": count(Rubric),
        "judge_runs": count(JudgeRun),
        "labels": count(Label),
        "gold_items": count(GoldItem),
    }


# ---- approval policy --------------------------------------------------------------------------

SINGLE_APPROVER = "single_approver"


def single_approver_allowed(project: Project) -> bool:
    """True when the project lets a version's publisher also be its (only) approver."""
    return bool((project.settings or {}).get(SINGLE_APPROVER, False))


def set_single_approver(
    session: Session, project: Project, *, actor: User, allowed: bool
) -> Project:
    """Allow (or stop allowing) publishers to sign off their own rubric versions. Exports made
    while it is allowed say so in their manifest."""
    before = single_approver_allowed(project)
    project.settings = {**(project.settings or {}), SINGLE_APPROVER: allowed}
    project.updated_at = utcnow()
    session.add(project)
    if before != allowed:
        audit_service.record(
            session,
            actor=actor,
            action="project.approval_policy",
            object_type="project",
            object_id=project.id,
            project_id=project.id,
            summary=(
                "allowed a single approver (publishers may sign off their own versions)"
                if allowed
                else "required a second person to sign off each version"
            ),
            details={"single_approver": allowed},
        )
    session.commit()
    return project


DOCUMENT_LOCATION = "document_location"


def document_location_of(project: Project) -> dict[str, Any]:
    return dict((project.settings or {}).get(DOCUMENT_LOCATION) or {"source": "field"})


def document_location(project: Project) -> DocumentLocation:
    """Where the project's rollouts hold their grounding document (default: target_document)."""
    try:
        return DocumentLocation.model_validate(document_location_of(project))
    except ValueError:  # a setting stored by an older version: fall back to the default
        return DocumentLocation()


def parse_document_location(raw: dict[str, Any]) -> DocumentLocation:
    """A setting as typed (form or command line), or InvalidInput naming the field."""
    try:
        return DocumentLocation.model_validate(raw)
    except ValueError as exc:
        errors: list[dict[str, Any]] = list(getattr(exc, "errors", lambda: [])())
        problems = []
        for error in errors:
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            field, _, words = message.partition(": ")
            loc = [str(p) for p in error.get("loc", ()) if p != "__root__"]
            if not words:
                field, words = (loc[-1] if loc else "source"), message
            problems.append(problem(f"document_location.{field}", words, DOCUMENT_LABELS))
        raise InvalidInput(
            "Where the document is was not saved; please correct:", details=problems
        ) from None


DOCUMENT_LABELS = {
    "document_location.source": "Where the document is",
    "document_location.metadata_key": "Metadata key",
    "document_location.start_marker": "Start marker",
    "document_location.end_marker": "End marker",
}
