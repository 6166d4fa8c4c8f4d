"""`rubric-studio probes ...`: run probes (with a progress bar) and print the report as JSON."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app import cli_support as cs
from app.probes.report import PUBLIC_ROW_KEYS
from app.probes.rewrites import PROBES

if TYPE_CHECKING:
    from app.probes import service as probe_service
    from app.probes.models import ProbeRun


probes_cli = typer.Typer(help="Probes: can the reward that ships be gamed? Run them, read them.")

REPORT_KEYS = PUBLIC_ROW_KEYS


def report_json(run: ProbeRun) -> list[dict[str, Any]]:
    """Per probe: name, n, uplift_mean, uplift_ci_low, uplift_ci_high, share_improved, passed
    (and for position / self-consistency share_changed with its CI and spread_mean, and the
    one-line verdict)."""
    from app.probes import service as probe_service

    return [{k: row.get(k) for k in REPORT_KEYS} for row in probe_service.report_rows(run)]


def follow(engine_url: str, run_id: int, poll_s: float = 0.5) -> ProbeRun:
    """A progress bar over the probe run's judging until it has finished."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.probes import service as probe_service
    from app.probes.models import ProbeRun

    engine = get_engine(engine_url)

    def load() -> tuple[ProbeRun, probe_service.ProbeProgress]:
        with Session(engine, expire_on_commit=False) as session:
            run = session.get(ProbeRun, run_id)
            assert run is not None
            return run, probe_service.progress(session, run)

    run, progress = load()
    while progress.total == 0 and not progress.finished:  # the rewrites are being made
        time.sleep(poll_s)
        run, progress = load()
    shown = 0
    with typer.progressbar(length=max(progress.total, 1), label="Probing", show_pos=True) as bar:
        while True:
            run, progress = load()
            if progress.done > shown:
                bar.update(progress.done - shown)
                shown = progress.done
            if progress.finished:
                break
            time.sleep(poll_s)
    return run


@probes_cli.command("run")
def run_command(
    project: Annotated[str, typer.Option(help="Project id or slug.")],
    rubric_version: Annotated[
        str, typer.Option(help="Rubric version id, or 'rubric name' (newest), or 'name:N'.")
    ],
    judge: Annotated[str, typer.Option(help="Judge configuration id or name.")],
    probe: Annotated[
        list[str] | None,
        typer.Option(help=f"A probe to run (repeat); default: all. Known: {', '.join(PROBES)}."),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="Gold split to probe: development (default; all rollouts when the gold set has "
            "none), test, or all. Drift samples are never probed."
        ),
    ] = "development",
    sample: Annotated[int | None, typer.Option(help="Probe at most N rollouts.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the rewrites (recorded).")] = None,
    wait: Annotated[bool, typer.Option(help="Follow progress and print the report.")] = False,
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Work in this process while waiting (default: yes on SQLite).",
        ),
    ] = None,
) -> None:
    """Start a probe run; with --wait, follow it and print the report as JSON."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.probes import service as probe_service
    from app.probes.schemas import ProbeRunCreate

    if split not in ("development", "test", "all"):
        raise cs.fail(f"--split: development, test or all, not {split!r}.")
    settings = cs.settings()
    url = settings.resolved_database_url
    with Session(get_engine(url), expire_on_commit=False) as session:
        proj = cs.project(session, project)
        version = cs.rubric_version(session, proj, rubric_version)
        config = cs.judge_config(session, proj, judge)
        try:
            data = ProbeRunCreate(
                rubric_version_id=version.id or 0,
                judge_config_id=config.id or 0,
                probes=probe or [],
                gold_split=split if split in ("development", "test") else None,
                sample=sample,
                seed=seed,
            )
            run = probe_service.create_run(session, proj, actor=None, data=data)
        except DomainError as exc:
            raise cs.fail(exc.message) from None
        except ValueError as exc:
            raise cs.fail(str(exc)) from None
    what = "pairs" if probe_service.is_pairwise(run) else "rollouts"
    typer.echo(
        f"Queued probe run #{run.id} ({', '.join(run.probes)}) on "
        f"{probe_service.originals_count(run)} {what}, seed {run.seed}."
    )
    if run.selection.get("note"):
        typer.echo(str(run.selection["note"]))
    if not wait:
        return
    embedded = worker if worker is not None else settings.is_sqlite
    stop = None
    if embedded:
        from app.worker import start_embedded_worker

        stop = start_embedded_worker(get_engine(url), settings)
    try:
        final = follow(url, run.id or 0)
    finally:
        if stop is not None:
            stop.set()
    if final.status != "completed":
        raise cs.fail(f"Probe run #{final.id}: {final.status}. {final.message}")
    typer.echo(json.dumps(report_json(final), indent=2))
    failed = (final.report or {}).get("failed") or []
    typer.echo(
        "Gate: every probe passes."
        if not failed
        else f"Gate: {len(failed)} probe(s) fail ({', '.join(failed)}): the export is blocked."
    )


@probes_cli.command("report")
def report_command(
    run_id: Annotated[int, typer.Argument(help="The probe run.")],
) -> None:
    """Print a probe run's report as JSON."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.probes.models import ProbeRun

    settings = cs.settings()
    with Session(get_engine(settings.resolved_database_url)) as session:
        run = session.get(ProbeRun, run_id)
        if run is None:
            raise cs.fail(f"No probe run #{run_id}.")
        if run.report is None:
            raise cs.fail(f"Probe run #{run_id} is {run.status}: no report yet.")
        typer.echo(json.dumps(report_json(run), indent=2))


@probes_cli.command("cancel")
def cancel_command(
    project: Annotated[str, typer.Option("--project", "-p", help="Project id or slug.")],
    run_id: Annotated[int, typer.Argument(help="The probe run.")],
    as_email: Annotated[
        str | None,
        typer.Option("--as", help="Email of the account acting (default: RS_CLI_AS)."),
    ] = None,
) -> None:
    """Cancel a probe run that has not finished."""
    from app.auth.policies import Permission
    from app.probes import service as probe_service

    with cs.session() as db:
        found = cs.project(db, project)
        actor = cs.actor(db, found, as_email, Permission.judge_run)
        with cs.domain_errors():
            probe_service.cancel_run(db, found, actor=actor, run_id=run_id)
    typer.echo(f"Probe run #{run_id} cancelled.")
