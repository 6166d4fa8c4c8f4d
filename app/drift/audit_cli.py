"""`rubric-studio drift audit | agreement | check`: stratified audits, judge-human agreement over
steps, and the judge drift check (for schedulers: `drift check --bundle B --wait`, exit 0 when
nothing flipped and agreement did not fall, 3 when it moved, 1 when the run failed)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from app.drift import cli as drift_cli
from app.drift.stratify import DEFAULT_REWARD_QUANTILES, DEFAULT_STEP_BUCKETS, ExtraStratum

if TYPE_CHECKING:
    from sqlmodel import Session

    from app.auth.models import User

app = drift_cli.app
ProjectOpt = drift_cli.ProjectOpt
RunOpt = drift_cli.RunOpt


def _users(session: Session, emails: list[str]) -> list[User]:
    from sqlmodel import col, select

    from app.auth.models import User

    users = []
    for email in emails:
        user = session.exec(select(User).where(col(User.email) == email.strip().lower())).first()
        if user is None:
            raise drift_cli._fail(f"No user with the email {email}.")
        users.append(user)
    return users


@app.command("audit")
def audit_command(
    project: ProjectOpt,
    training_run: RunOpt,
    size: Annotated[int, typer.Option(help="Samples to draw.")],
    user: drift_cli.UserOpt = None,
    reviewer: Annotated[
        list[str] | None,
        typer.Option(
            help="Reviewer email (repeat); default: --as if they may label audits, else every "
            "member who may."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (recorded; random if omitted).")] = None,
    step_buckets: Annotated[int, typer.Option(help="Equal step buckets.")] = DEFAULT_STEP_BUCKETS,
    quantiles: Annotated[
        int, typer.Option(help="Reward quantiles per bucket.")
    ] = DEFAULT_REWARD_QUANTILES,
    extra: Annotated[ExtraStratum, typer.Option(help="Also stratify by.")] = ExtraStratum.none,
    criterion: Annotated[str | None, typer.Option(help="With --extra criterion.")] = None,
    overlap: Annotated[int, typer.Option(help="Reviewers per sample.")] = 1,
    rubric_version: Annotated[
        str | None,
        typer.Option(help="Rubric version: its id or 'rubric name:N' (default: the bundle's)."),
    ] = None,
) -> None:
    """Draw a stratified, seeded audit of a training run as an audit queue for reviewers."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.drift import audit_service
    from app.drift.audit_service import AuditDesign

    settings = drift_cli._settings()
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        target = drift_cli._project(session, project)
        run = drift_cli._run(session, target, training_run)
        from app import cli_support as cs
        from app.auth.policies import Permission

        actor = cs.person(session, target, user, Permission.drift_audit_create)
        assignees = _users(session, reviewer) if reviewer else []
        version = cs.rubric_version(session, target, rubric_version) if rubric_version else None
        design = AuditDesign(
            size=size,
            rubric_version_id=version.id if version else None,
            assignee_ids=tuple(u.id or 0 for u in assignees),
            overlap=overlap,
            seed=seed,
            step_buckets=step_buckets,
            reward_quantiles=quantiles,
            extra=extra,
            criterion=criterion,
        )
        try:
            audit = audit_service.create_audit(session, target, run, actor=actor, design=design)
        except DomainError as exc:
            raise drift_cli._fail(exc.message, 1) from None
    typer.echo(
        f"Audit #{audit.id}: {audit.design['sampled']} samples in queue #{audit.queue_id} "
        f"(seed {audit.seed}, {len(audit.design['strata'])} strata)."
    )


@app.command("audits")
def audits_command(
    project: ProjectOpt,
    training_run: RunOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (as the API).")] = False,
) -> None:
    """List a training run's audits, newest first, with their labelling progress."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.drift import audit_service
    from app.drift.audit_schemas import AuditPublic

    settings = drift_cli._settings()
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        target = drift_cli._project(session, project)
        run = drift_cli._run(session, target, training_run)
        audits = [AuditPublic.of(row) for row in audit_service.list_audits(session, run)]
    if as_json:
        typer.echo(json.dumps([a.model_dump(mode="json") for a in audits], indent=1))
        return
    if not audits:
        typer.echo(f"No audits of {run.name} yet: `rubric-studio drift audit` draws one.")
        return
    for a in audits:
        typer.echo(
            f"#{a.id}  queue #{a.queue_id} {a.queue_name!r}  {a.labelled}/{a.samples} labelled  "
            f"seed {a.seed}  {a.created_at:%Y-%m-%d %H:%M} UTC"
        )


@app.command("agreement")
def agreement_command(project: ProjectOpt, training_run: RunOpt) -> None:
    """Judge-human agreement over steps from the run's audit labels, as JSON."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.drift import audit_service
    from app.drift.audit_schemas import StepAgreementPublic

    settings = drift_cli._settings()
    with Session(get_engine(settings.resolved_database_url), expire_on_commit=False) as session:
        target = drift_cli._project(session, project)
        run = drift_cli._run(session, target, training_run)
        result = StepAgreementPublic.of(audit_service.step_agreement(session, run))
    typer.echo(result.model_dump_json(indent=1))


@app.command("check")
def check_command(
    bundle: Annotated[int, typer.Option("--bundle", help="Export bundle id.")],
    wait: Annotated[
        bool, typer.Option(help="Wait for the judge run and print the result.")
    ] = False,
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Judge in this process while waiting (default: yes on SQLite, no on "
            "PostgreSQL where `rubric-studio worker` processes do it).",
        ),
    ] = None,
    user: drift_cli.UserOpt = None,
) -> None:
    """Re-judge the locked gold test split with the bundle's exact judge; compare with export."""
    from sqlmodel import Session

    from app.auth.models import User
    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.drift import check_service
    from app.drift.audit_schemas import DriftCheckPublic
    from app.exports.models import ExportBundle
    from app.judging.cli import follow
    from app.projects.models import Project

    settings = drift_cli._settings()
    url = settings.resolved_database_url
    with Session(get_engine(url), expire_on_commit=False) as session:
        found = session.get(ExportBundle, bundle)
        if found is None:
            raise drift_cli._fail(f"No export bundle #{bundle}.")
        target = session.get(Project, found.project_id)
        assert target is not None
        actor = drift_cli._user(session, user)
        try:
            check = check_service.start_check(session, target, found, actor=actor)
        except DomainError as exc:
            raise drift_cli._fail(exc.message, 1) from None
    typer.echo(f"Drift check #{check.id}: judge run #{check.run_id} queued.")
    if not wait:
        return
    stop = None
    if worker if worker is not None else settings.is_sqlite:
        from app.worker import start_embedded_worker

        stop = start_embedded_worker(get_engine(url), settings)
    try:
        follow(url, [check.run_id])
    finally:
        if stop is not None:
            stop.set()
    with Session(get_engine(url), expire_on_commit=False) as session:
        check = check_service.get_check(session, check.project_id, check.id or 0)
        viewer = actor or User(email="cli", display_name="cli", password_hash="")
        report = DriftCheckPublic.of(check_service.report(session, check, viewer))
    typer.echo(json.dumps(report.model_dump(mode="json"), indent=1))
    if report.run_status != "completed":
        raise typer.Exit(1)
    fell = any(f.change is not None and f.change < 0 for f in report.figures)
    if report.flips or fell:
        raise typer.Exit(3)
