"""Load the demo projects into a database, once: `rubric-studio demo` calls this."""

from __future__ import annotations

from sqlmodel import Session, select

from app.auth.models import User
from app.core.config import Settings
from app.projects import service as project_service
from app.projects.models import Project
from app.rubrics import service as rubric_service

LEGAL_SLUG = "legal-contract-review-demo"


def load_demo(session: Session, settings: Settings, admin: User) -> str:
    """Create the legal contract review demo project if it is missing. Returns a summary line."""
    from app.demo.legal import build_legal_demo

    existing = session.exec(select(Project).where(Project.slug == LEGAL_SLUG)).first()
    if existing is not None:
        return f"  Demo project already loaded: {existing.name} (id {existing.id})."
    dataset = build_legal_demo()
    project = project_service.create_project(
        session,
        name=dataset.project_name,
        description=dataset.project_description,
        owner=admin,
        policy_system_prompt=dataset.policy_system_prompt,
        output_schema=dataset.output_schema,
        attribution=dataset.attribution,
    )
    project.slug = LEGAL_SLUG
    session.add(project)
    session.commit()
    rubric_service.ensure_demo_rubric(session, project, admin)
    return f"  Loaded demo project: {project.name} (id {project.id})."
