"""`rubric-studio judge ...`: start judge runs (with a progress bar), cancel, resume, import."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session, col, select

from app.core.cli import cli_settings
from app.core.db import get_engine
from app.core.errors import DomainError
from app.judging import external as judge_external
from app.judging import service as judge_service
from app.judging.models import JudgeConfig, JudgeRun
from app.judging.schemas import RunCreate, SelectionInput
from app.judging.status import FINAL_STATUSES, RunStatus
from app.projects.models import Project
from app.rubrics.models import Rubric, RubricVersion

judge_cli = typer.Typer(help="Judge runs: start, follow, cancel, resume; import verdicts.")


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _project(session: Session, ref: str) -> Project:
    project = session.get(Project, int(ref)) if ref.isdigit() else None
    project = project or session.exec(select(Project).where(Project.slug == ref)).first()
    if project is None:
        raise _fail(f"No project {ref!r} (give its id or slug).")
    return project


def _version(session: Session, project: Project, ref: str) -> RubricVersion:
    """An id, or `rubric name` (its newest version), or `rubric name:N`."""
    if ref.isdigit():
        version = session.get(RubricVersion, int(ref))
        if version is not None and version.project_id == project.id:
            return version
        raise _fail(f"No rubric version {ref} in project {project.slug}.")
    name, _, number = ref.rpartition(":") if ":" in ref else (ref, "", "")
    query = (
        select(RubricVersion)
        .join(Rubric, col(Rubric.id) == col(RubricVersion.rubric_id))
        .where(Rubric.project_id == project.id, Rubric.name == name)
    )
    if number:
        if not number.isdigit():
            raise _fail(f"Version number {number!r} is not a whole number.")
        query = query.where(RubricVersion.number == int(number))
    found = session.exec(query.order_by(col(RubricVersion.number).desc())).first()
    if found is None:
        raise _fail(f"No published version {ref!r} in project {project.slug}.")
    return found


def _judge(session: Session, project: Project, ref: str) -> JudgeConfig:
    query = select(JudgeConfig).where(JudgeConfig.project_id == project.id)
    if ref.isdigit():
        found = session.exec(query.where(JudgeConfig.id == int(ref))).first()
    else:
        found = session.exec(query.where(JudgeConfig.name == ref)).first()
    if found is None:
        raise _fail(f"No judge configuration {ref!r} in project {project.slug}.")
    return found


def follow(engine_url: str, run_ids: list[int], poll_s: float = 1.0) -> list[JudgeRun]:
    """Show a progress bar until every run has finished; returns the final runs."""
    engine = get_engine(engine_url)

    def load() -> list[JudgeRun]:
        with Session(engine) as session:
            return [r for r in (session.get(JudgeRun, i) for i in run_ids) if r is not None]

    runs = load()
    total = sum(r.items_total for r in runs)
    shown = 0
    with typer.progressbar(length=total, label="Judging", show_pos=True) as bar:
        while True:
            runs = load()
            done = sum(r.items_done for r in runs)
            if done > shown:
                bar.update(done - shown)
                shown = done
            if all(r.status in FINAL_STATUSES for r in runs):
                break
            time.sleep(poll_s)
    return runs


@judge_cli.command("run")
def run_command(
    project: Annotated[str, typer.Option(help="Project id or slug.")],
    rubric_version: Annotated[
        str, typer.Option(help="Rubric version id, or 'rubric name' (newest), or 'name:N'.")
    ],
    judge: Annotated[
        list[str], typer.Option(help="Judge configuration id or name; repeat for cross-judge.")
    ],
    sample: Annotated[int | None, typer.Option(help="Judge a random sample of N.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sample (recorded).")] = None,
    repeats: Annotated[int, typer.Option(help="Judge each rollout K times.")] = 1,
    gold: Annotated[bool, typer.Option(help="Only the gold set.")] = False,
    step: Annotated[list[int] | None, typer.Option(help="Only these training steps.")] = None,
    model: Annotated[list[str] | None, typer.Option(help="Only these models.")] = None,
    group: Annotated[list[str] | None, typer.Option(help="Only these groups.")] = None,
    neutral_score: Annotated[float, typer.Option(help="Score stored on failure.")] = 0.5,
    batch: Annotated[bool, typer.Option(help="Use Bedrock batch inference.")] = False,
    wait: Annotated[bool, typer.Option(help="Follow progress until the run ends.")] = False,
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Judge in this process while waiting (default: yes on SQLite, no on PostgreSQL "
            "where `rubric-studio worker` processes do it).",
        ),
    ] = None,
) -> None:
    """Start a judge run (one per --judge) and optionally follow it with a progress bar."""
    settings = cli_settings()
    url = settings.resolved_database_url
    with Session(get_engine(url), expire_on_commit=False) as session:
        proj = _project(session, project)
        version = _version(session, proj, rubric_version)
        configs = [_judge(session, proj, ref) for ref in judge]
        try:
            data = RunCreate(
                rubric_version_id=version.id or 0,
                judge_config_ids=[c.id or 0 for c in configs],
                selection=SelectionInput(
                    source="gold" if gold else "all",
                    steps=step or [],
                    models=model or [],
                    groups=group or [],
                    sample=sample,
                    seed=seed,
                ),
                repeats=repeats,
                neutral_score=neutral_score,
                batch=batch,
            )
            estimate = judge_service.estimate_runs(session, proj, data)
            runs = judge_service.create_runs(session, proj, actor=None, data=data)
        except DomainError as exc:
            raise _fail(exc.message) from None
        except ValueError as exc:  # pydantic validation of the options
            raise _fail(str(exc)) from None
    typer.echo(
        f"Estimate: {estimate.calls_per_judge:,} calls per judge, about "
        f"{estimate.input_tokens:,} input + {estimate.output_tokens:,} output tokens, "
        f"cost {estimate.cost:.4f}."
    )
    for warning in estimate.warnings:
        typer.secho(f"  note: {warning}", fg=typer.colors.YELLOW)
    for run in runs:
        typer.echo(
            f"Queued judge run #{run.id} ({run.items_total:,} items) with {configs[0].name}"
            if len(runs) == 1
            else f"Queued judge run #{run.id} ({run.items_total:,} items)"
        )
    if not wait:
        return
    embedded = worker if worker is not None else settings.is_sqlite
    stop = None
    if embedded:
        from app.worker import start_embedded_worker

        stop = start_embedded_worker(get_engine(url), settings)
    try:
        final = follow(url, [r.id or 0 for r in runs])
    finally:
        if stop is not None:
            stop.set()
    for run in final:
        status = RunStatus(run.status)
        typer.echo(
            f"Run #{run.id}: {status.label}; {run.items_done:,}/{run.items_total:,} done, "
            f"{run.items_error:,} errors, {run.input_tokens:,}+{run.output_tokens:,} tokens, "
            f"cost {run.cost:.4f}."
        )
        if status in (RunStatus.WITH_ERRORS, RunStatus.FAILED) and run.message:
            typer.secho(f"  {run.message}", fg=typer.colors.RED, err=True)
    if any(r.status != RunStatus.COMPLETED for r in final):
        raise typer.Exit(1)


@judge_cli.command("test-connection")
def test_connection_command(
    project_ref: Annotated[str, typer.Argument(metavar="PROJECT", help="Project id or slug.")],
    judge_ref: Annotated[
        str, typer.Argument(metavar="JUDGE", help="Judge configuration id or name.")
    ],
) -> None:
    """Send one tiny request with a judge configuration and print the answer or the error."""
    settings = cli_settings()
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        project = _project(session, project_ref)
        config = _judge(session, project, judge_ref)
    try:
        check = judge_service.check_connection(config)
    except DomainError as exc:
        raise _fail(exc.message) from None
    if not check.ok:
        raise _fail(f"{config.name}: the judge could not be reached or refused: {check.error}")
    who = "the test double (not a real LLM)" if check.test_double else config.model_id
    typer.echo(
        f"{config.name}: connected; {who} answered in {check.latency_ms:,} ms: "
        f"“{check.answer}” ({check.input_tokens:,} + {check.output_tokens:,} tokens)."
    )


def _change_run(run_id: int, change: Callable[..., Any], done: str) -> None:
    """Load a run by id (any project: the CLI is the operator) and apply `change` to it."""
    settings = cli_settings()
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        run = session.get(JudgeRun, run_id)
        if run is None:
            raise _fail(f"No judge run #{run_id}.")
        project = session.get(Project, run.project_id)
        assert project is not None
        try:
            change(session, project, run, actor=None)
        except DomainError as exc:
            raise _fail(exc.message) from None
    typer.echo(f"Run #{run_id} {done}.")


@judge_cli.command("cancel")
def cancel_command(
    run_id: Annotated[int, typer.Argument(help="The run to cancel.")],
) -> None:
    """Cancel a queued or running judge run."""
    _change_run(run_id, judge_service.cancel_run, "cancelled")


@judge_cli.command("resume")
def resume_command(
    run_id: Annotated[int, typer.Argument(help="The run to resume.")],
) -> None:
    """Queue a cancelled or failed run again (its unfinished items)."""
    _change_run(run_id, judge_service.resume_run, "queued again")


@judge_cli.command("import-verdicts")
def import_verdicts_command(
    file: Annotated[
        Path, typer.Argument(help="JSONL file of verdicts.", exists=True, dir_okay=False)
    ],
    project: Annotated[str, typer.Option(help="Project id or slug.")],
    rubric_version: Annotated[
        str, typer.Option(help="Rubric version the verdicts were given under (id or name[:N]).")
    ],
    judge_name: Annotated[
        str | None, typer.Option(help="Judge name for lines without a 'judge' field.")
    ] = None,
) -> None:
    """Import verdicts produced elsewhere as external judge runs (one per judge name)."""
    settings = cli_settings()
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        proj = _project(session, project)
        version = _version(session, proj, rubric_version)
        try:
            with file.open("rb") as handle:
                summary = judge_external.import_verdicts(
                    session,
                    proj,
                    actor=None,
                    rubric_version_id=version.id or 0,
                    stream=handle,
                    judge_name=judge_name,
                    filename=file.name,
                    on_progress=lambda stage, count: typer.echo(
                        f"  {stage} {count:,} {'lines' if stage == 'read' else 'verdicts'}",
                        err=True,
                    ),
                )
        except DomainError as exc:
            typer.secho(exc.message, fg=typer.colors.RED, err=True)
            for problem in exc.details if isinstance(exc.details, list) else []:
                typer.secho(f"  {problem['field']}: {problem['message']}", err=True)
            raise typer.Exit(1) from None
    runs = ", ".join(f"#{r.id} ({r.external_judge_name})" for r in summary.runs)
    typer.echo(f"Imported {summary.verdicts:,} verdicts as external run(s) {runs}.")
