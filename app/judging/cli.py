"""`rubric-studio judge ...`: start judge runs (with a progress bar), cancel, resume, import; the
`config` group and `test-connection` are in config_cli.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app import cli_support as cs
from app.auth.policies import Permission
from app.judging.config_cli import config_cli, test_connection_command

if TYPE_CHECKING:
    from app.judging.models import JudgeRun

judge_cli = typer.Typer(help="Judge runs: start, follow, cancel, resume; import verdicts.")


def follow(engine_url: str, run_ids: list[int], poll_s: float = 1.0) -> list[JudgeRun]:
    """Show a progress bar until every run has finished; returns the final runs."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.judging.models import JudgeRun
    from app.judging.status import FINAL_STATUSES

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
    project: cs.ProjectOpt,
    rubric_version: cs.VersionOpt,
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
    as_email: cs.AsOpt = None,
) -> None:
    """Start a judge run (one per --judge) and optionally follow it with a progress bar."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.judging import launch as judge_launch
    from app.judging import service as judge_service
    from app.judging.schemas import (
        RunCreate,
        SelectionInput,
    )
    from app.judging.status import RunStatus

    settings = cs.settings()
    url = settings.resolved_database_url
    with Session(get_engine(url), expire_on_commit=False) as session:
        proj = cs.project(session, project)
        version = cs.rubric_version(session, proj, rubric_version)
        configs = [cs.judge_config(session, proj, ref) for ref in judge]
        actor = cs.actor(session, proj, as_email, Permission.judge_run)
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
            runs = judge_launch.create_runs(session, proj, actor=actor, data=data)
        except DomainError as exc:
            raise cs.fail(exc.message) from None
        except ValueError as exc:  # pydantic validation of the options
            raise cs.fail(str(exc)) from None
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


judge_cli.command("test-connection")(test_connection_command)


@judge_cli.command("cancel")
def cancel_command(
    run_id: Annotated[int, typer.Argument(help="The run to cancel.")],
    as_email: cs.AsOpt = None,
) -> None:
    """Cancel a queued or running judge run."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.judging import service as judge_service
    from app.judging.models import JudgeRun
    from app.projects.models import Project

    settings = cs.settings()
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        run = session.get(JudgeRun, run_id)
        if run is None:
            raise cs.fail(f"No judge run #{run_id}.")
        project = session.get(Project, run.project_id)
        assert project is not None
        try:
            actor = cs.actor(session, project, as_email, Permission.judge_run)
            judge_service.cancel_run(session, project, run, actor=actor)
        except DomainError as exc:
            raise cs.fail(exc.message) from None
    typer.echo(f"Run #{run_id} cancelled.")


@judge_cli.command("resume")
def resume_command(
    run_id: Annotated[int, typer.Argument(help="The run to resume.")],
    as_email: cs.AsOpt = None,
) -> None:
    """Queue a cancelled or failed run again (its unfinished items)."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.judging import service as judge_service
    from app.judging.models import JudgeRun
    from app.projects.models import Project

    settings = cs.settings()
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        run = session.get(JudgeRun, run_id)
        if run is None:
            raise cs.fail(f"No judge run #{run_id}.")
        project = session.get(Project, run.project_id)
        assert project is not None
        try:
            actor = cs.actor(session, project, as_email, Permission.judge_run)
            judge_service.resume_run(session, project, run, actor=actor)
        except DomainError as exc:
            raise cs.fail(exc.message) from None
    typer.echo(f"Run #{run_id} queued again.")


@judge_cli.command("import-verdicts")
def import_verdicts_command(
    file: Annotated[
        Path, typer.Argument(help="JSONL file of verdicts.", exists=True, dir_okay=False)
    ],
    project: cs.ProjectOpt,
    rubric_version: cs.VersionOpt,
    judge_name: Annotated[
        str | None, typer.Option(help="Judge name for lines without a 'judge' field.")
    ] = None,
    as_email: cs.AsOpt = None,
) -> None:
    """Import verdicts produced elsewhere as external judge runs (one per judge name), as a job
    with a progress bar: every line is read and checked first, then the runs are stored."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.core.jobs import new_worker_id
    from app.judging import external as judge_external
    from app.judging.import_jobs import VerdictImportRunner
    from app.rollouts.cli import run_job_command

    settings = cs.settings()
    engine = get_engine(settings.resolved_database_url)
    worker_id = f"cli:{new_worker_id()}"
    with Session(engine, expire_on_commit=False) as session:
        proj = cs.project(session, project)
        version = cs.rubric_version(session, proj, rubric_version)
        try:
            job = judge_external.queue_verdict_import(
                session,
                settings,
                proj,
                actor=cs.actor(session, proj, as_email, Permission.judge_run),
                rubric_version_id=version.id or 0,
                filename=file.name,
                path=file.resolve(),
                judge_name=judge_name,
                claim_by=worker_id,
            )
        except DomainError as exc:
            raise cs.fail(exc.message) from None
    run_job_command(
        engine, settings, job, worker_id, runner_class=VerdictImportRunner, noun="verdicts stored"
    )


judge_cli.add_typer(config_cli, name="config")


@judge_cli.command("verdicts")
def verdicts_command(
    project: cs.ProjectOpt,
    run_id: Annotated[int, typer.Argument(help="The judge run.")],
    limit: Annotated[int, typer.Option(help="Verdicts per page (at most 1000).")] = 100,
    cursor: Annotated[str | None, typer.Option(help="next_cursor from the previous page.")] = None,
) -> None:
    """One page of a run's verdicts as JSON, with `next_cursor` for the next page."""
    from sqlmodel import Session

    from app.core.cursor import decode_cursor, encode_cursor
    from app.core.db import get_engine
    from app.judging import progress as judge_progress
    from app.judging import service as judge_service
    from app.judging.schemas import (
        VerdictPublic,
    )

    with Session(get_engine(cs.settings().resolved_database_url)) as session:
        found = cs.project(session, project)
        with cs.domain_errors():
            run = judge_service.get_run(session, found.id or 0, run_id)
            after = decode_cursor(cursor)
            rows = judge_progress.list_verdicts(
                session, run, after_id=after, limit=max(1, min(limit, 1000))
            )
    page = [VerdictPublic.model_validate(v.model_dump()) for v in rows]
    cs.echo_json(
        {
            "items": [v.model_dump(mode="json") for v in page],
            "next_cursor": encode_cursor(page[-1].id) if len(page) == limit and page else None,
        }
    )
