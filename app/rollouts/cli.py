"""`rubric-studio import FILE --project ID`: import a rollout file inline, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from sqlmodel import Session, select

from app.auth.models import User
from app.core.cli import cli_settings
from app.core.db import get_engine
from app.core.errors import DomainError
from app.core.jobs import new_worker_id
from app.projects.models import Project
from app.rollouts import jobs
from app.rollouts import service as rollout_service
from app.rollouts.models import RolloutImport
from app.rollouts.parsing import FORMATS

SHOWN_PROBLEMS = 20


def import_rollouts(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="JSONL or CSV rollout file."
        ),
    ],
    project: Annotated[int, typer.Option("--project", help="Id of the project to import into.")],
    format: Annotated[
        str, typer.Option("--format", help=f"One of: {', '.join(FORMATS)}.")
    ] = "auto",
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Import the valid lines of a file that has bad lines (the choice is recorded).",
        ),
    ] = False,
    csv_mapping: Annotated[
        str,
        typer.Option(
            "--csv-mapping", help='CSV columns as JSON: \'{"input": "Question", "response": "A"}\'.'
        ),
    ] = "",
    user: Annotated[
        str | None, typer.Option("--user", help="Email of the account recorded as the importer.")
    ] = None,
) -> None:
    """Import rollouts from FILE into a project, checking the whole file first."""
    settings = cli_settings()
    engine = get_engine(settings.resolved_database_url)
    worker_id = f"cli:{new_worker_id()}"
    console = Console(stderr=True)
    with Session(engine, expire_on_commit=False) as session:
        target = session.get(Project, project)
        if target is None:
            typer.secho(f"No project with id {project}.", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        actor = None
        if user:
            actor = session.exec(select(User).where(User.email == user.strip().lower())).first()
            if actor is None:
                typer.secho(f"No user with the email {user}.", fg=typer.colors.RED, err=True)
                raise typer.Exit(2)
        try:
            choices = rollout_service.ImportChoices(
                format=format,
                skip_invalid=skip_invalid,
                csv_mapping=rollout_service.parse_csv_mapping(csv_mapping),
            )
            job = rollout_service.create_import(
                session,
                settings,
                target,
                actor,
                filename=file.name,
                path=file.resolve(),
                choices=choices,
                claim_by=worker_id,
            )
        except DomainError as exc:
            typer.secho(f"{file.name}: {exc.message}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("Checking", total=max(job.size_bytes, 1) * 2, counts="")

        def show(current: RolloutImport) -> None:
            done = current.bytes_read + (current.size_bytes if current.status == "importing" else 0)
            if current.status == rollout_service.DONE:
                done = max(current.size_bytes, 1) * 2
            label = {"validating": "Checking", "importing": "Importing"}.get(
                current.status, current.status.capitalize()
            )
            counts = f"{current.lines_read:,} lines · {current.inserted:,} imported"
            progress.update(task, completed=done, description=label, counts=counts)

        finished = jobs.run_inline(engine, settings, job.id or 0, worker_id, on_progress=show)

    if finished is None:
        raise typer.Exit(1)
    color = typer.colors.GREEN if finished.status == rollout_service.DONE else typer.colors.RED
    typer.secho(f"{file.name}: {finished.message}", fg=color)
    if finished.problem_count:
        with Session(engine) as session:
            problems = rollout_service.list_problems(
                session, finished.id or 0, limit=SHOWN_PROBLEMS
            )
        for problem in problems:
            where = [f"line {problem.line}"] if problem.line is not None else []
            if problem.field:
                where.append(f"field '{problem.field}'")
            typer.echo(f"  {', '.join(where) or 'file'}: {problem.message}")
        if finished.problem_count > len(problems):
            typer.echo(
                f"  … and {finished.problem_count - len(problems):,} more; the complete list is "
                f"at /api/v1/projects/{project}/imports/{finished.id}/problems"
            )
    if finished.status != rollout_service.DONE:
        raise typer.Exit(1)
