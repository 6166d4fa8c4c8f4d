"""`rubric-studio reward ...`: the project's reward configuration (show, set) and its preview."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from app import cli_support as cs
from app.auth.policies import Permission

app = typer.Typer(
    help="The reward configuration: show, set (from a file), preview.", no_args_is_help=True
)


@app.command("show")
def show_command(project: cs.ProjectOpt) -> None:
    """Print the configuration in force as JSON (docs/formats/reward-config.md), with its
    revision."""
    from app.rewards import service as reward_service

    with cs.session() as db:
        found = cs.project(db, project)
        state = reward_service.current_config(db, found.id or 0)
    cs.echo_json({"revision": state.revision, "config": state.model.as_dict()})


@app.command("set")
def set_command(
    project: cs.ProjectOpt,
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="The whole configuration, JSON or YAML."),
    ],
    revision: Annotated[
        int | None, typer.Option(help="The revision you read (refused when stale).")
    ] = None,
    as_email: cs.AsOpt = None,
) -> None:
    """Replace the reward configuration; the file is checked against the same schema as the
    API's (GET /api/v1/formats/reward-config)."""
    from app.rewards import service as reward_service

    text = file.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise cs.fail(f"{file}: not readable: {exc}") from None
    if isinstance(data, dict) and "config" in data and "revision" in data:
        revision = data["revision"] if revision is None else revision
        data = data["config"]  # the shape `reward show` prints
    with cs.session() as db:
        found = cs.project(db, project)
        user = cs.person(db, found, as_email, Permission.reward_edit)
        with cs.domain_errors():
            config = reward_service.parse_config(data)
            current = reward_service.current_config(db, found.id or 0).revision
            reward_service.save_config(
                db,
                found,
                actor=user,
                config=config,
                expected_revision=current if revision is None else int(revision),
            )
            saved = reward_service.current_config(db, found.id or 0).revision
    typer.echo(f"Saved the reward configuration of {found.slug} (revision {saved}).")


@app.command("preview")
def preview_command(
    project: cs.ProjectOpt,
    run: Annotated[int, typer.Option(help="Judge run whose stored verdicts to use.")],
    gold_split: Annotated[str | None, typer.Option(help="Only gold items of a split.")] = None,
    step: Annotated[int | None, typer.Option(help="Only this training step.")] = None,
    sample: Annotated[int | None, typer.Option(help="A random sample of N.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    as_json: cs.JsonOpt = False,
) -> None:
    """Rewards of a run's rollouts under the saved configuration (no judge calls)."""
    from app.rewards import service as reward_service

    with cs.session() as db:
        found = cs.project(db, project)
        selection = reward_service.PreviewSelection(
            run_id=run, gold_split=gold_split, step=step, sample=sample, seed=seed
        )
        with cs.domain_errors():
            result = reward_service.preview(db, found, selection)
    summary = {
        "run_id": run,
        "rollouts": len(result.rows),
        "missing_verdicts": result.missing_verdicts,
        "mean": result.mean,
        "minimum": result.minimum,
        "maximum": result.maximum,
        "judge_ok": result.judge_ok,
        "judge_errors": result.judge_errors,
        "gated": result.gated,
        "groups": result.groups,
        "zero_spread_groups": len(result.zero_spread_groups),
        "warnings": result.warnings,
        "components": [vars(c) for c in result.components],
    }
    if as_json:
        cs.echo_json(summary)
        return
    mean = "–" if result.mean is None else f"{result.mean:.3f}"
    typer.echo(
        f"{len(result.rows):,} rollouts, mean reward {mean}, {result.gated:,} gated, "
        f"{result.judge_errors:,} judge errors, {result.missing_verdicts:,} without a verdict."
    )
    for c in result.components:
        typer.echo(f"  {c.name}: applies to {c.applicable:,} of {c.evaluated:,}")
    for warning in result.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW)


@app.command("preview-job")
def preview_job_command(
    project: cs.ProjectOpt,
    run: Annotated[int, typer.Option(help="Judge run whose stored verdicts to use.")],
    gold_split: Annotated[str | None, typer.Option(help="Only gold items of a split.")] = None,
    step: Annotated[int | None, typer.Option(help="Only this training step.")] = None,
    sample: Annotated[int | None, typer.Option(help="A random sample of N.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    wait: Annotated[
        bool, typer.Option(help="Follow the job (a worker computes it) and print its result.")
    ] = False,
    poll_s: Annotated[float, typer.Option(hidden=True)] = 1.0,
    as_email: cs.AsOpt = None,
) -> None:
    """Preview a large selection (up to 5,000 rollouts) in the background, as the reward page
    does past 1,000: a worker (`rubric-studio worker`) scores it a batch at a time."""
    import time

    from app.rewards import preview_jobs
    from app.rewards import service as reward_service
    from app.rewards.models import PreviewJobStatus

    with cs.session() as db:
        found = cs.project(db, project)
        user = cs.person(db, found, as_email, Permission.project_read)
        selection = reward_service.PreviewSelection(
            run_id=run, gold_split=gold_split, step=step, sample=sample, seed=seed
        )
        with cs.domain_errors():
            job = preview_jobs.start_job(db, found, selection, user)
        job_id, project_id = job.id or 0, found.id or 0
        typer.echo(f"Reward preview job {job_id}: {job.total:,} rollouts queued.")
        if not wait:
            return
        while True:
            db.expire_all()
            job = preview_jobs.get_job(db, project_id, job_id)
            typer.echo(f"  {job.status}: {job.done:,} of {job.total:,}", err=True)
            if job.status in (PreviewJobStatus.done, PreviewJobStatus.failed):
                break
            time.sleep(poll_s)
        if job.status == PreviewJobStatus.failed:
            raise cs.fail(f"The preview failed: {job.error}")
        cs.echo_json({"job_id": job_id, "result": job.result})
