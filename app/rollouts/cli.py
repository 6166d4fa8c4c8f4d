"""`rubric-studio import FILE --project P`: import a rollout file inline, with a progress bar.

Heavy modules are imported inside the commands, so `--help` starts at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.rollouts.parsing import FORMATS

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.engine import Engine

    from app.core.config import Settings
    from app.rollouts import jobs
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
    from sqlmodel import Session

    from app import cli_support as cs
    from app.auth.policies import Permission
    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.core.jobs import new_worker_id
    from app.rollouts import service as rollout_service

    settings = _settings()
    engine = get_engine(settings.resolved_database_url)
    worker_id = f"cli:{new_worker_id()}"
    console = Console(stderr=True)
    with Session(engine, expire_on_commit=False) as session:
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

    finished = run_with_progress(engine, settings, job, worker_id, console=console)
    if finished is None:
        raise typer.Exit(1)
    color = typer.colors.GREEN if finished.status == rollout_service.DONE else typer.colors.RED
    typer.secho(f"{file.name}: {finished.message}", fg=color)
    print_problems(engine, finished)
    if finished.status != rollout_service.DONE:
        raise typer.Exit(1)


def run_with_progress(
    engine: Engine,
    settings: Settings,
    job: RolloutImport,
    worker_id: str,
    *,
    console: Console,
    runner_class: type[jobs.ImportRunner] | None = None,
    noun: str = "imported",
) -> RolloutImport | None:
    """Run a job this process holds the lease of, with a progress bar over both phases
    (rollouts, and labels and verdicts through their runners)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from app.rollouts import jobs
    from app.rollouts import service as rollout_service

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
            counts = f"{current.lines_read:,} lines · {current.inserted:,} {noun}"
            progress.update(task, completed=done, description=label, counts=counts)

        return jobs.run_inline(
            engine, settings, job.id or 0, worker_id, on_progress=show, runner_class=runner_class
        )


def print_problems(engine: Engine, finished: RolloutImport, *, bare_fields: bool = False) -> None:
    """The first problems of a finished job, one a line: "line N, field 'f': message", or
    with ``bare_fields`` "line N: f: message" (as the label and verdict imports say them)."""
    from sqlmodel import Session

    from app.rollouts import service as rollout_service

    if not finished.problem_count:
        return
    with Session(engine) as session:
        problems = rollout_service.list_problems(session, finished.id or 0, limit=SHOWN_PROBLEMS)
    for problem in problems:
        where = [f"line {problem.line}"] if problem.line is not None else []
        if problem.field:
            where.append(problem.field if bare_fields else f"field '{problem.field}'")
        typer.echo(f"  {(': ' if bare_fields else ', ').join(where) or 'file'}: {problem.message}")
    if finished.problem_count > len(problems):
        typer.echo(
            f"  … and {finished.problem_count - len(problems):,} more; the complete list is "
            f"at /api/v1/projects/{finished.project_id}/imports/{finished.id}/problems"
        )


def run_job_command(
    engine: Engine,
    settings: Settings,
    job: RolloutImport,
    worker_id: str,
    *,
    runner_class: type[jobs.ImportRunner],
    noun: str,
) -> None:
    """A label or verdict import command's end: run the job with a progress bar, say how it
    ended and its first problems, and exit 1 unless it is done."""
    from rich.console import Console

    from app.rollouts import service as rollout_service

    finished = run_with_progress(
        engine,
        settings,
        job,
        worker_id,
        console=Console(stderr=True),
        runner_class=runner_class,
        noun=noun,
    )
    if finished is None:
        raise typer.Exit(1)
    done = finished.status == rollout_service.DONE
    typer.secho(finished.message + ".", fg=typer.colors.GREEN if done else typer.colors.RED)
    print_problems(engine, finished, bare_fields=True)
    if not done:
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
