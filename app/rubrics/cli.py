"""`rubric-studio rubrics ...`: list, export and import rubric files (rubric as code)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session, select

from app.core.config import get_settings
from app.core.db import get_engine
from app.core.errors import DomainError
from app.rubrics import files as rubric_files

app = typer.Typer(help="Rubrics as code: list, export and import.", no_args_is_help=True)


def _session() -> Session:
    settings = get_settings()
    return Session(get_engine(settings.resolved_database_url), expire_on_commit=False)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(1)


@app.command("list")
def list_command(project: Annotated[int, typer.Option(help="Project id.")]) -> None:
    """List a project's rubrics with their newest version."""
    from app.rubrics import service as rubric_service

    with _session() as session:
        for row in rubric_service.list_rubrics(session, project, include_archived=True):
            latest = f"v{row.latest_version}" if row.latest_version else "draft only"
            typer.echo(f"{row.rubric.id}\t{row.rubric.name}\t{row.rubric.mode}\t{latest}")


@app.command("export")
def export_command(
    project: Annotated[int, typer.Option(help="Project id.")],
    rubric: Annotated[int, typer.Option(help="Rubric id.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; stdout when omitted.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="yaml or json.")] = "yaml",
    version: Annotated[
        int | None, typer.Option(help="Only this version; all versions and the draft by default.")
    ] = None,
) -> None:
    """Write a rubric (all versions, or one) as a YAML or JSON file."""
    from app.rubrics import service as rubric_service

    with _session() as session:
        try:
            found = rubric_service.get_rubric(session, project, rubric)
            _, text = rubric_files.export_text(session, found, fmt=fmt, version=version)
        except DomainError as exc:
            raise _fail(exc.message) from None
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote {output}")


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="A .yaml/.yml or .json rubric file.", exists=True)],
    project: Annotated[int, typer.Option(help="Project id.")],
    user: Annotated[str, typer.Option(help="Email of the account recorded as the importer.")],
    name: Annotated[str | None, typer.Option(help="Name instead of the file's.")] = None,
) -> None:
    """Create a rubric, with its versions and sign-offs, from a rubric file."""
    from app.auth.models import User
    from app.projects.models import Project

    text = path.read_text(encoding="utf-8-sig")
    with _session() as session:
        target = session.get(Project, project)
        actor = session.exec(select(User).where(User.email == user.strip().lower())).first()
        if target is None or actor is None:
            raise _fail(f"No project {project}" if target is None else f"No account {user}")
        try:
            created = rubric_files.import_rubric(
                session,
                target,
                actor=actor,
                text=text,
                fmt=rubric_files.guess_format(path.name, text),
                name=name,
            )
        except DomainError as exc:
            details = exc.details if isinstance(exc.details, list) else []
            lines = [exc.message] + [f"  {d['field']}: {d['message']}" for d in details]
            raise _fail("\n".join(lines)) from None
        typer.echo(f"Imported rubric {created.name} (id {created.id}).")
