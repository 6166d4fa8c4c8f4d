"""`rubric-studio drift ...`: training runs, imports (file or S3 prefix), step/time logs, the
series and the signals, for scripts and schedulers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlmodel import Session

    from app.auth.models import User
    from app.core.config import Settings
    from app.drift.models import TrainingRun
    from app.projects.models import Project


app = typer.Typer(help="Training runs and drift samples.", no_args_is_help=True)

ProjectOpt = Annotated[str, typer.Option("--project", help="Project id or slug.")]
RunOpt = Annotated[str, typer.Option("--training-run", help="Training run name.")]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        "--user",
        help="Email of the account acting (default: RS_CLI_AS); --user is the old spelling.",
    ),
]


def _settings() -> Settings:
    from app.core.config import get_settings

    try:
        return get_settings()
    except ValueError as exc:
        typer.secho(f"Configuration error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _project(session: Session, ref: str) -> Project:
    from sqlmodel import col, select

    from app.projects.models import Project

    project = session.get(Project, int(ref)) if ref.isdigit() else None
    if project is None:
        project = session.exec(select(Project).where(col(Project.slug) == ref)).first()
    if project is None:
        raise _fail(f"No project '{ref}'.")
    return project


def _run(session: Session, project: Project, name: str, create: bool = False) -> TrainingRun:
    from app.drift import service as drift_service

    run = drift_service.find_training_run(session, project.id or 0, name)
    if run is None and create:
        run = drift_service.create_training_run(session, project, None, name=name)
    if run is None:
        raise _fail(f"No training run '{name}' in {project.slug}; add --create to make it.")
    return run


def _user(session: Session, email: str | None) -> User | None:
    from sqlmodel import col, select

    from app import cli_support as cs
    from app.auth.models import User

    email = cs.acting_email(email)
    if not email:
        return None
    user = session.exec(select(User).where(col(User.email) == email.strip().lower())).first()
    if user is None:
        raise _fail(f"No user with the email {email}.")
    return user


def _run_import(settings: Settings, import_id: int, worker_id: str, project_id: int) -> None:
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.drift.jobs import DriftImportRunner
    from app.rollouts import service as rollout_service
    from app.rollouts.jobs import process_import

    engine = get_engine(settings.resolved_database_url)
    job = process_import(engine, settings, import_id, worker_id, runner_class=DriftImportRunner)
    if job is None:
        raise typer.Exit(1)
    ok = job.status == rollout_service.DONE
    typer.secho(f"{job.filename}: {job.message}", fg=typer.colors.GREEN if ok else typer.colors.RED)
    if job.problem_count:
        with Session(engine) as session:
            for problem in rollout_service.list_problems(session, job.id or 0, limit=20):
                where = [f"line {problem.line}"] if problem.line is not None else []
                if problem.field:
                    where.append(f"field '{problem.field}'")
                typer.echo(f"  {', '.join(where) or 'file'}: {problem.message}")
        if job.problem_count > 20:
            typer.echo(
                f"  … the complete list: /api/v1/projects/{project_id}/imports/{job.id}/problems"
            )
    if not ok:
        raise typer.Exit(1)


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    project: ProjectOpt,
    training_run: RunOpt,
    create: Annotated[bool, typer.Option("--create", help="Create the run if missing.")] = False,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid")] = False,
    user: UserOpt = None,
) -> None:
    """Import drift samples (JSONL, gzip accepted) into a training run; idempotent."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.core.jobs import new_worker_id
    from app.drift import service as drift_service

    settings = _settings()
    worker_id = f"cli:{new_worker_id()}"
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        target = _project(session, project)
        run = _run(session, target, training_run, create)
        try:
            job = drift_service.create_drift_import(
                session,
                settings,
                target,
                run,
                _user(session, user),
                filename=file.name,
                path=file.resolve(),
                skip_invalid=skip_invalid,
                claim_by=worker_id,
            )
        except DomainError as exc:
            raise _fail(f"{file.name}: {exc.message}", 1) from None
    _run_import(settings, job.id or 0, worker_id, target.id or 0)


@app.command("import-s3")
def import_s3_command(
    project: ProjectOpt,
    training_run: RunOpt,
    bucket: Annotated[str, typer.Option("--bucket")],
    prefix: Annotated[str, typer.Option("--prefix")] = "",
    create: Annotated[bool, typer.Option("--create")] = False,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid")] = False,
    user: UserOpt = None,
) -> None:
    """Import every object under s3://BUCKET/PREFIX (AWS credentials from the environment)."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.core.jobs import new_worker_id
    from app.drift import service as drift_service

    settings = _settings()
    worker_id = f"cli:{new_worker_id()}"
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        target = _project(session, project)
        run = _run(session, target, training_run, create)
        try:
            job = drift_service.create_drift_import(
                session,
                settings,
                target,
                run,
                _user(session, user),
                filename="s3",
                s3={"bucket": bucket, "prefix": prefix},
                skip_invalid=skip_invalid,
                claim_by=worker_id,
            )
        except DomainError as exc:
            raise _fail(exc.message, 1) from None
    _run_import(settings, job.id or 0, worker_id, target.id or 0)


@app.command("step-map")
def step_map_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    project: ProjectOpt,
    training_run: RunOpt,
) -> None:
    """Map the time of samples recorded without a step to steps (CSV: step,timestamp)."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.drift import service as drift_service

    settings = _settings()
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        run = _run(session, _project(session, project), training_run)
        try:
            mapping, placed = drift_service.set_step_map(
                session, run, None, file.read_text(encoding="utf-8", errors="replace")
            )
        except DomainError as exc:
            raise _fail(exc.message, 1) from None
    typer.echo(f"{len(mapping.times):,} log rows; {placed:,} samples placed.")


@app.command("runs")
def runs_command(project: ProjectOpt) -> None:
    """List the project's training runs."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.drift import service as drift_service

    settings = _settings()
    with Session(get_engine(settings.resolved_database_url)) as session:
        for run in drift_service.list_training_runs(session, _project(session, project).id or 0):
            steps = f"{run.step_min}-{run.step_max}" if run.step_min is not None else "-"
            typer.echo(f"{run.id}\t{run.name}\t{run.sample_count} samples\tsteps {steps}")


AsOpt = Annotated[
    str | None, typer.Option("--as", help="Email of the account acting (default: RS_CLI_AS).")
]


@app.command("create-run")
def create_run_command(
    project: ProjectOpt,
    name: Annotated[str, typer.Option("--name", help="The `training_run` of its records.")],
    bundle: Annotated[
        int | None, typer.Option("--bundle", help="Export bundle id the run trained with.")
    ] = None,
    base_model: Annotated[str, typer.Option("--base-model", help="The policy's base model.")] = "",
    notes: Annotated[str, typer.Option("--notes", help="Free notes.")] = "",
    as_email: AsOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", hidden=True, help="Deprecated: use --as.")
    ] = None,
) -> None:
    """Create a training run (its samples come in with `drift import`)."""
    from app import cli_support as cs
    from app.auth.policies import Permission
    from app.drift import service as drift_service

    with cs.session() as db:
        found = cs.project(db, project)
        actor = cs.actor(db, found, as_email or user, Permission.drift_import)
        with cs.domain_errors():
            run = drift_service.create_training_run(
                db,
                found,
                actor,
                name=name,
                base_model=base_model or None,
                notes=notes,
                export_bundle_id=bundle,
            )
        typer.echo(f"Training run #{run.id} '{run.name}' created in {found.slug}.")


@app.command("thresholds")
def thresholds_command(
    project: ProjectOpt,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="NAME=VALUE (repeat); the others keep their values."),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Put every threshold back to its default.")
    ] = False,
    as_email: AsOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", hidden=True, help="Deprecated: use --as.")
    ] = None,
) -> None:
    """Show (as JSON) or change the project's signal thresholds (docs/drift.md names each)."""
    from app import cli_support as cs
    from app.auth.policies import Permission
    from app.drift import service as drift_service

    with cs.session() as db:
        found = cs.project(db, project)
        if set_ or reset:
            actor = cs.actor(db, found, as_email or user, Permission.drift_import)
            values = {} if reset else drift_service.stored_thresholds(found)
            for item in set_ or []:
                name, sep, value = item.partition("=")
                if not sep:
                    raise _fail(f"--set needs NAME=VALUE, got '{item}'.")
                values[name.strip()] = value.strip()
            with cs.domain_errors():
                drift_service.save_thresholds(db, found, actor, values, strict=True)
        typer.echo(json.dumps(drift_service.thresholds(found).as_dict(), indent=2))


@app.command("series")
def series_command(
    project: ProjectOpt,
    training_run: RunOpt,
    format: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
) -> None:
    """Print the per-bucket series."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.drift import service as drift_service
    from app.web.csv_safe import csv_text

    settings = _settings()
    with Session(get_engine(settings.resolved_database_url)) as session:
        run = _run(session, _project(session, project), training_run)
        data = drift_service.series(session, run)
        if format == "csv":
            sys.stdout.write(csv_text(drift_service.series_rows(data)))
        else:
            typer.echo(
                json.dumps(
                    {
                        "bucket_width": data.plan.width if data.plan else None,
                        "buckets": data.buckets,
                    },
                    indent=1,
                )
            )


@app.command("signals")
def signals_command(project: ProjectOpt, training_run: RunOpt) -> None:
    """Print the signals that fired as JSON; exits 3 when any fired (for schedulers)."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.drift import service as drift_service

    settings = _settings()
    with Session(get_engine(settings.resolved_database_url)) as session:
        target = _project(session, project)
        run = _run(session, target, training_run)
        fired = [r.public() for r in drift_service.signals(session, target, run) if r.fired]
    typer.echo(json.dumps(fired, indent=1, default=str))
    if fired:
        raise typer.Exit(3)
