"""`rubric-studio import FILE --project ID`: import a rollout file inline, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.rollouts.parsing import FORMATS

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.rollouts.models import RolloutImport


SHOWN_PROBLEMS = 20


def _settings() -> Settings:
    from app.core.config import get_settings

    try:
        return get_settings()
    except ValueError as exc:
        typer.secho(f"Configuration error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def import_rollouts(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="JSONL or CSV rollout file."
        ),
    ],
    project: Annotated[
        str, typer.Option("--project", "-p", help="Project id or slug to import into.")
    ],
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
    as_email: Annotated[
        str | None,
        typer.Option("--as", help="Email of the account acting (default: RS_CLI_AS)."),
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", hidden=True, help="Deprecated: use --as.")
    ] = None,
) -> None:
    """Import rollouts from FILE into a project, checking the whole file first."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.core.jobs import new_worker_id
    from app.rollouts import jobs
    from app.rollouts import service as rollout_service

    settings = _settings()
    engine = get_engine(settings.resolved_database_url)
    worker_id = f"cli:{new_worker_id()}"
    console = Console(stderr=True)
    with Session(engine, expire_on_commit=False) as session:
        from app import cli_support as cs
        from app.auth.policies import Permission

        target = cs.project(session, project)
        actor = cs.actor(session, target, as_email or user, Permission.rollout_import)
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
                f"at /api/v1/projects/{finished.project_id}/imports/{finished.id}/problems"
            )
    if finished.status != rollout_service.DONE:
        raise typer.Exit(1)


imports_app = typer.Typer(help="Rollout imports: list, cancel.", no_args_is_help=True)


@imports_app.command("list")
def imports_list_command(
    project: Annotated[str, typer.Option("--project", "-p", help="Project id or slug.")],
) -> None:
    """Recent imports: id, file, status, lines, imported."""
    from app import cli_support as cs
    from app.rollouts import service as rollout_service

    with cs.session() as db:
        found = cs.project(db, project)
        jobs_found = rollout_service.list_imports(db, found.id or 0)
    for job in jobs_found:
        typer.echo(
            f"{job.id}\t{job.filename}\t{job.status}\t{job.lines_read:,} lines\t"
            f"{job.inserted:,} imported"
        )


@imports_app.command("cancel")
def imports_cancel_command(
    project: Annotated[str, typer.Option("--project", "-p", help="Project id or slug.")],
    import_id: Annotated[int, typer.Argument(help="The import.")],
    as_email: Annotated[
        str | None,
        typer.Option("--as", help="Email of the account acting (default: RS_CLI_AS)."),
    ] = None,
) -> None:
    """Cancel an import that has not finished (nothing of it is kept)."""
    from app import cli_support as cs
    from app.auth.policies import Permission
    from app.rollouts import service as rollout_service

    with cs.session() as db:
        found = cs.project(db, project)
        user = cs.person(db, found, as_email, Permission.rollout_import)
        with cs.domain_errors():
            job = rollout_service.get_import(db, found.id or 0, import_id)
            job = rollout_service.cancel_import(db, job, user)
    typer.echo(f"Import {import_id}: {job.status}.")
