"""What the judging commands share: the settings, a failure message and exit, and finding a
project, a rubric version or a judge configuration by id or name."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from app import cli_support as cs

if TYPE_CHECKING:
    from sqlmodel import Session

    from app.core.config import Settings
    from app.judging.models import JudgeConfig
    from app.projects.models import Project
    from app.rubrics.models import RubricVersion


def load_settings() -> Settings:
    from app.core.config import get_settings

    try:
        return get_settings()
    except ValueError as exc:
        typer.secho(f"Configuration error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def find_project(session: Session, ref: str) -> Project:
    return cs.project(session, ref)


def find_version(session: Session, project: Project, ref: str) -> RubricVersion:
    """An id, or `rubric name` (its newest version), or `rubric name:N`."""
    return cs.rubric_version(session, project, ref)


def find_judge(session: Session, project: Project, ref: str) -> JudgeConfig:
    from sqlmodel import select

    from app.judging.models import JudgeConfig

    query = select(JudgeConfig).where(JudgeConfig.project_id == project.id)
    if ref.isdigit():
        found = session.exec(query.where(JudgeConfig.id == int(ref))).first()
    else:
        found = session.exec(query.where(JudgeConfig.name == ref)).first()
    if found is None:
        raise fail(f"No judge configuration {ref!r} in project {project.slug}.")
    return found
