"""Factories that build rows through the real services, so tests see realistic data."""

from __future__ import annotations

import itertools

from sqlmodel import Session

from app.auth import service as auth_service
from app.auth.models import User
from app.projects import service as project_service
from app.projects.models import Project
from tests.support.web import PASSWORD

_seq = itertools.count(1)


def make_user(session: Session, email: str | None = None, *, is_admin: bool = False) -> User:
    email = email or f"user{next(_seq)}@example.com"
    return auth_service.create_user(
        session, email=email, password=PASSWORD, display_name=email.split("@")[0], is_admin=is_admin
    )


def make_project(
    session: Session,
    owner: User,
    name: str | None = None,
    members: list[tuple[User, str]] | None = None,
) -> Project:
    project = project_service.create_project(
        session, name=name or f"Project {next(_seq)}", owner=owner
    )
    for user, role in members or []:
        project_service.add_member(session, project, email=user.email, role=role, actor=owner)
    return project
