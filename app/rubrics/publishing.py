"""Publishing rubric versions: freeze a draft as a version, sign-off (approval) and archiving.
Public functions commit once."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.errors import Conflict, InvalidInput, PermissionDenied
from app.projects import service as project_service
from app.projects.models import Project
from app.rubrics import forms
from app.rubrics.definition import (
    content_hash,
)
from app.rubrics.models import Rubric, RubricApproval, RubricVersion
from app.rubrics.output_schema import build_output_schema
from app.rubrics.prompting import (
    materialize_templates,
)
from app.rubrics.service import (
    DraftConflict,
    audit_draft_save,
    current_draft,
    latest_version,
    normalize_draft,
    user_label,
    write_draft,
)

# --------------------------------------------------------------------------- publishing


def _problem_details(check: forms.DraftCheck) -> list[dict[str, str]]:
    details = [{"field": "definition", "message": p} for p in check.problems]
    for error in check.template_errors:
        where = f"{error.part}_template" + (f" line {error.line}" if error.line else "")
        details.append({"field": where, "message": error.message})
    return details


def publish_version(
    session: Session,
    rubric: Rubric,
    *,
    actor: User,
    change_note: str,
    expected_revision: int | None = None,
    draft: Any = None,
    keep_examples: bool = False,
) -> RubricVersion:
    """Freeze the draft as version N+1 (templates materialized, output schema, hash).

    With `draft`, that text is saved first (same revision check) and published in the same
    transaction, so what the editor shows is what gets published.
    """
    note = change_note.strip()
    if not note:
        raise InvalidInput("A change note is required: say what changed in this version and why.")
    if draft is not None:
        if expected_revision is None:
            raise InvalidInput("draft_revision is required to save and publish a draft.")
        normalized = normalize_draft(rubric, draft)
        if keep_examples:
            normalized["examples"] = current_draft(session, rubric).get("examples", [])
        if write_draft(
            session, rubric, actor=actor, expected_revision=expected_revision, draft=normalized
        ):
            audit_draft_save(session, rubric, actor, "edit before publishing")
    else:
        session.refresh(rubric)
        if expected_revision is not None and rubric.draft_revision != expected_revision:
            raise DraftConflict(
                rubric,
                current_draft(session, rubric),
                user_label(session, rubric.draft_updated_by_id),
            )
    check = forms.check_draft(current_draft(session, rubric))
    if not check.ok or check.definition is None:
        session.commit()  # keep the saved draft; only the publication is refused
        raise InvalidInput(
            "The draft cannot be published yet; fix these problems first.",
            details=_problem_details(check),
        )
    definition = materialize_templates(check.definition)
    digest = content_hash(definition)
    previous = latest_version(session, rubric.id or 0)
    if previous is not None and previous.content_hash == digest:
        session.commit()
        raise InvalidInput(
            f"Nothing changed since version {previous.number}; edit the draft before publishing."
        )
    number = (previous.number if previous else 0) + 1
    version = RubricVersion(
        rubric_id=rubric.id or 0,
        project_id=rubric.project_id,
        number=number,
        definition=definition.model_dump(mode="json"),
        output_schema=build_output_schema(definition),
        content_hash=digest,
        change_note=note,
        created_by_id=actor.id,
        created_by_label=actor.email,
    )
    session.add(version)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            f"Someone else published version {number} at the same moment. Reload and try again."
        ) from None
    rubric.draft_based_on_version = number
    session.add(rubric)
    audit_service.record(
        session,
        actor=actor,
        action="rubric.publish",
        object_type="rubric_version",
        object_id=version.id,
        project_id=rubric.project_id,
        summary=f"published {rubric.name} v{number}: {note[:200]}",
        details={"rubric_id": rubric.id, "number": number, "content_hash": digest},
    )
    session.commit()
    return version


def can_sign_off(session: Session, version: RubricVersion, actor: User) -> bool:
    """False when `actor` published `version` and the project requires a second person."""
    if version.created_by_id is None or version.created_by_id != actor.id:
        return True
    project = session.get(Project, version.project_id)
    return project is not None and project_service.single_approver_allowed(project)


def approve_version(
    session: Session, version: RubricVersion, *, actor: User, comment: str = ""
) -> RubricApproval:
    """Record an expert's sign-off of a published version (once per person). The publisher
    cannot sign off their own version unless the project allows a single approver."""
    if not can_sign_off(session, version, actor):
        raise PermissionDenied(
            f"You published version {version.number}, so another expert must sign it off. "
            "(A project admin can allow a single approver in the project settings; exports "
            "then say so in their manifest.)"
        )
    existing = session.exec(
        select(RubricApproval).where(
            RubricApproval.rubric_version_id == version.id, RubricApproval.user_id == actor.id
        )
    ).first()
    if existing is not None:
        raise Conflict(f"You already signed off version {version.number}.")
    approval = RubricApproval(
        rubric_version_id=version.id or 0,
        user_id=actor.id,
        user_label=actor.email,
        comment=comment.strip(),
    )
    session.add(approval)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"You already signed off version {version.number}.") from None
    audit_service.record(
        session,
        actor=actor,
        action="rubric.approve",
        object_type="rubric_version",
        object_id=version.id,
        project_id=version.project_id,
        summary=f"signed off v{version.number} of rubric {version.rubric_id}",
        details={"rubric_id": version.rubric_id, "number": version.number},
    )
    session.commit()
    return approval


def archive_rubric(session: Session, rubric: Rubric, *, actor: User, archived: bool) -> Rubric:
    """Hide (or restore) a rubric in the list; its versions stay untouched."""
    rubric.archived = archived
    session.add(rubric)
    audit_service.record(
        session,
        actor=actor,
        action="rubric.archive" if archived else "rubric.restore",
        object_type="rubric",
        object_id=rubric.id,
        project_id=rubric.project_id,
        summary=f"{'archived' if archived else 'restored'} rubric {rubric.name}",
    )
    session.commit()
    return rubric
