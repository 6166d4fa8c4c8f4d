"""`rubric-studio labels ...`: import and export expert labels as JSONL or CSV files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session, select

from app.core.config import get_settings
from app.core.db import get_engine
from app.core.errors import DomainError

app = typer.Typer(help="Expert labels: import and export (JSONL or CSV).", no_args_is_help=True)


def _session() -> Session:
    settings = get_settings()
    return Session(get_engine(settings.resolved_database_url), expire_on_commit=False)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(1)


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="A .jsonl or .csv label file.", exists=True)],
    project: Annotated[int, typer.Option(help="Project id.")],
    rubric_version: Annotated[int, typer.Option(help="Id of the rubric version labelled.")],
    user: Annotated[str, typer.Option(help="Email of the member recorded as the importer.")],
    fmt: Annotated[
        str, typer.Option("--format", help="jsonl, csv, or auto (from the file name).")
    ] = "auto",
    skip_invalid: Annotated[
        bool, typer.Option(help="Store the valid lines and report the others.")
    ] = False,
) -> None:
    """Import labels collected elsewhere; annotator names are kept."""
    from app.auth.models import User
    from app.auth.policies import Permission, role_allows
    from app.core.jobs import new_worker_id
    from app.labels import exchange, transfer
    from app.labels.jobs import LabelImportRunner
    from app.projects import service as project_service
    from app.projects.models import Project
    from app.rollouts.cli import run_job_command

    if fmt not in ("auto", *transfer.FORMATS):
        raise _fail("--format must be jsonl, csv or auto.")
    settings = get_settings()
    engine = get_engine(settings.resolved_database_url)
    worker_id = f"cli:{new_worker_id()}"
    with _session() as session:
        found = session.get(Project, project)
        if found is None:
            raise _fail(f"No project with id {project}.")
        actor = session.exec(select(User).where(User.email == user.strip().lower())).first()
        membership = (
            project_service.get_membership(session, project, actor.id or 0) if actor else None
        )
        if actor is None or membership is None:
            raise _fail(f"{user} is not a member of project {project}.")
        if not role_allows(membership.role, Permission.label_import):
            raise _fail(f"{user}'s role ({membership.role}) may not import labels.")
        try:
            job = exchange.queue_label_import(
                session,
                settings,
                found,
                actor=actor,
                rubric_version_id=rubric_version,
                filename=path.name,
                path=path.resolve(),
                fmt=fmt,
                skip_invalid=skip_invalid,
                claim_by=worker_id,
            )
        except DomainError as exc:
            raise _fail(exc.message) from None
    run_job_command(
        engine, settings, job, worker_id, runner_class=LabelImportRunner, noun="labels imported"
    )


@app.command("export")
def export_command(
    project: Annotated[int, typer.Option(help="Project id.")],
    rubric_version: Annotated[
        int | None, typer.Option(help="Only labels of this rubric version.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; stdout when omitted.")
    ] = None,
) -> None:
    """Write every submitted label as JSONL or CSV."""
    from app.labels import exchange
    from app.projects.models import Project

    if fmt not in ("jsonl", "csv"):
        raise _fail("--format must be jsonl or csv.")
    with _session() as session:
        if session.get(Project, project) is None:
            raise _fail(f"No project with id {project}.")
        try:
            text = exchange.export_labels(
                session,
                project,
                fmt=fmt,  # type: ignore[arg-type]
                rubric_version_id=rubric_version,
            )
        except DomainError as exc:
            raise _fail(exc.message) from None
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote {output}")
