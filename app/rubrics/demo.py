"""The demo project's rubric: contract review, v1 published and signed off (idempotent)."""

from __future__ import annotations

from sqlmodel import Session, select

from app.auth.models import User
from app.projects import service as project_service
from app.projects.models import Project
from app.rubrics.models import Rubric
from app.rubrics.publishing import approve_version, publish_version
from app.rubrics.service import approvals_for, create_rubric, latest_version

DEMO_RUBRIC_NAME = "Contract review comments"


def ensure_demo_rubric(session: Session, project: Project, admin: User) -> Rubric:
    """The demo project's contract review rubric: v1 published and signed off. Idempotent."""
    rubric = session.exec(
        select(Rubric).where(Rubric.project_id == project.id, Rubric.name == DEMO_RUBRIC_NAME)
    ).first()
    if rubric is None:
        rubric = create_rubric(
            session,
            project,
            actor=admin,
            name=DEMO_RUBRIC_NAME,
            description="The reference case: each review comment scored 1-5 on grounding, "
            "consistency with the playbook and actionability.",
            template="legal_contract_review",
        )
    version = latest_version(session, rubric.id or 0)
    if version is None:
        version = publish_version(
            session,
            rubric,
            actor=admin,
            change_note="Initial version from the built-in contract review template.",
        )
    if not approvals_for(session, [version.id or 0])[version.id or 0]:
        # The demo has one user, who publishes and signs off: its project allows a single
        # approver, and its exports say so.
        project_service.set_single_approver(session, project, actor=admin, allowed=True)
        approve_version(
            session, version, actor=admin, comment="Reviewed against the playbook for the demo."
        )
    return rubric
