"""`rubric-studio labels ...`: import and export expert labels as JSONL or CSV files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app import cli_support as cs
from app.auth.policies import Permission

if TYPE_CHECKING:
    from sqlmodel import Session


app = typer.Typer(help="Expert labels: import and export (JSONL or CSV).", no_args_is_help=True)


def _session() -> Session:
    from sqlmodel import Session

    from app.core.config import get_settings
    from app.core.db import get_engine

    settings = get_settings()
    return Session(get_engine(settings.resolved_database_url), expire_on_commit=False)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(1)


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="A .jsonl or .csv label file.", exists=True)],
    project: cs.ProjectOpt,
    rubric_version: cs.VersionOpt,
    fmt: Annotated[
        str, typer.Option("--format", help="jsonl, csv, or auto (from the file name).")
    ] = "auto",
    skip_invalid: Annotated[
        bool, typer.Option(help="Store the valid lines and report the others.")
    ] = False,
    as_email: cs.AsOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", hidden=True, help="Deprecated: use --as.")
    ] = None,
) -> None:
    """Import labels collected elsewhere (docs/formats/labels.md), as a job with a progress bar;
    annotator names are kept."""
    from app.core.config import get_settings
    from app.core.db import get_engine
    from app.core.errors import DomainError
    from app.core.jobs import new_worker_id
    from app.labels import exchange, transfer
    from app.labels.jobs import LabelImportRunner
    from app.rollouts.cli import run_job_command

    if fmt not in ("auto", *transfer.FORMATS):
        raise _fail("--format must be jsonl, csv or auto.")
    settings = get_settings()
    engine = get_engine(settings.resolved_database_url)
    worker_id = f"cli:{new_worker_id()}"
    with _session() as session:
        found = cs.project(session, project)
        version = cs.rubric_version(session, found, rubric_version)
        actor = cs.actor(session, found, as_email or user, Permission.label_import)
        try:
            job = exchange.queue_label_import(
                session,
                settings,
                found,
                actor=actor,
                rubric_version_id=version.id or 0,
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
    project: cs.ProjectOpt,
    rubric_version: cs.OptionalVersionOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; stdout when omitted.")
    ] = None,
) -> None:
    """Write every submitted label as JSONL or CSV."""
    from app.core.errors import DomainError
    from app.labels import exchange

    if fmt not in ("jsonl", "csv"):
        raise _fail("--format must be jsonl or csv.")
    with _session() as session:
        found = cs.project(session, project)
        version = cs.rubric_version(session, found, rubric_version) if rubric_version else None
        try:
            text = exchange.export_labels(
                session,
                found.id or 0,
                fmt=fmt,  # type: ignore[arg-type]
                rubric_version_id=version.id if version else None,
            )
        except DomainError as exc:
            raise _fail(exc.message) from None
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote {output}")


@app.command("submit")
def submit_command(
    project: cs.ProjectOpt,
    queue: Annotated[int, typer.Option(help="Queue id.")],
    item: Annotated[int, typer.Option(help="Item id in the queue (see `queues items`).")],
    values: Annotated[
        str, typer.Option(help='Criterion values as JSON, e.g. \'{"Clear": true, "Tone": 4}\'.')
    ] = "{}",
    critique: Annotated[str, typer.Option(help="The overall critique.")] = "",
    preference: Annotated[str | None, typer.Option(help="Pairs: A, B or tie.")] = None,
    draft: Annotated[bool, typer.Option(help="Keep as a draft (may be partial).")] = False,
    as_email: cs.AsOpt = None,
) -> None:
    """Label a queue item as the acting account (or keep a --draft)."""
    import json

    from app.labels import annotation as label_annotation
    from app.labels import queues as queue_service
    from app.labels import service as label_service
    from app.labels.schemas import LabelBody

    try:
        body = LabelBody.model_validate(
            {"values": json.loads(values), "overall_critique": critique, "preference": preference}
        )
    except ValueError as exc:
        raise _fail(f"--values: {exc}") from None
    data = label_service.LabelInput(
        values=dict(body.values),
        critiques={},
        overall_critique=body.overall_critique,
        preference=body.preference,
        expected_revision=None,
        reason="",
        deserved=None,
    )
    with _session() as session:
        found = cs.project(session, project)
        user = cs.person(session, found, as_email, Permission.label_write)
        with cs.domain_errors():
            target = queue_service.get_queue(session, found.id or 0, queue)
            entry = queue_service.get_item(session, target, item)
            if draft:
                label = label_annotation.save_draft(session, target, entry, user, data)
                typer.echo(f"Kept draft label {label.id} (revision {label.revision}).")
                return
            result = label_annotation.submit_label(session, target, entry, user, data)
    typer.echo(f"Label {result.label.id}: {result.outcome}.")


# ---- queues -----------------------------------------------------------------------------------

queues_app = typer.Typer(help="Annotation queues: list, create, close.", no_args_is_help=True)


@queues_app.command("list")
def queues_list_command(project: cs.ProjectOpt, as_email: cs.AsOpt = None) -> None:
    """Queues with their progress (for the acting account)."""
    from app.labels import queues as queue_service

    with _session() as session:
        found = cs.project(session, project)
        user = cs.person(session, found, as_email)
        for row in queue_service.list_queues(session, found.id or 0, user):
            state = "closed" if row.queue.closed else "open"
            typer.echo(f"{row.queue.id}\t{row.queue.name}\t{row.queue.kind}\t{state}")


@queues_app.command("create")
def queues_create_command(
    project: cs.ProjectOpt,
    name: Annotated[str, typer.Argument(help="The queue's name.")],
    rubric_version: cs.VersionOpt,
    assignee: Annotated[list[str], typer.Option(help="An expert's email (repeat).")],
    overlap: Annotated[int, typer.Option(help="Experts per item.")] = 1,
    source: Annotated[str, typer.Option(help="filter, run or gold.")] = "filter",
    run: Annotated[int | None, typer.Option(help="With --source run: the judge run.")] = None,
    gold_split: Annotated[str | None, typer.Option(help="With --source gold.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    group: Annotated[str | None, typer.Option(help="Only this group.")] = None,
    sample_size: Annotated[int | None, typer.Option(help="A random sample of N.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sample (recorded).")] = None,
    as_email: cs.AsOpt = None,
) -> None:
    """Create a queue from a filter, a random sample, a judge run's items or gold items."""
    from app.labels import queues as queue_service
    from app.labels.schemas import QueueCreate

    with _session() as session:
        found = cs.project(session, project)
        user = cs.person(session, found, as_email, Permission.queue_manage)
        version = cs.rubric_version(session, found, rubric_version)
        ids = [cs.account(session, email).id or 0 for email in assignee]
        try:
            body = QueueCreate(
                name=name,
                rubric_version_id=version.id or 0,
                assignee_ids=ids,
                overlap=overlap,
                source=source,
                run_id=run,
                gold_split=gold_split,
                model=model,
                group=group,
                sample_size=sample_size,
                seed=seed,
            )
        except ValueError as exc:
            raise _fail(str(exc)) from None
        with cs.domain_errors():
            created = queue_service.create_queue(
                session,
                found,
                actor=user,
                name=body.name,
                rubric_version_id=body.rubric_version_id,
                assignee_ids=body.assignee_ids,
                overlap=body.overlap,
                selection=queue_service.QueueSelection(
                    source=body.source,
                    run_id=body.run_id,
                    gold_split=body.gold_split,
                    model=body.model,
                    group=body.group,
                    search=None,
                    step_min=None,
                    step_max=None,
                    sample_size=body.sample_size,
                    seed=body.seed,
                ),
            )
    typer.echo(f"Created queue {created.id} '{created.name}'.")


@queues_app.command("close")
def queues_close_command(
    project: cs.ProjectOpt,
    queue: Annotated[int, typer.Argument(help="Queue id.")],
    reopen: Annotated[bool, typer.Option(help="Reopen a closed queue instead.")] = False,
    as_email: cs.AsOpt = None,
) -> None:
    """Close a queue (nothing more is offered), or --reopen it."""
    from app.labels import queues as queue_service

    with _session() as session:
        found = cs.project(session, project)
        user = cs.person(session, found, as_email, Permission.queue_manage)
        with cs.domain_errors():
            target = queue_service.get_queue(session, found.id or 0, queue)
            queue_service.set_queue_closed(session, target, actor=user, closed=not reopen)
    typer.echo(f"Queue {queue} {'reopened' if reopen else 'closed'}.")


# ---- gold -------------------------------------------------------------------------------------

gold_app = typer.Typer(
    help="The gold set: list, add, remove, lock (move to the test split).", no_args_is_help=True
)


@gold_app.command("list")
def gold_list_command(
    project: cs.ProjectOpt,
    split: Annotated[str | None, typer.Option(help="development or test.")] = None,
) -> None:
    """Gold items: id, rollout, split, expectation."""
    from app.labels import gold

    with _session() as session:
        found = cs.project(session, project)
        for row in gold.list_gold(session, found.id or 0, split):
            item = row.gold
            typer.echo(f"{item.id}\t{item.rollout_id}\t{item.split}\t{item.expectation}")


@gold_app.command("add")
def gold_add_command(
    project: cs.ProjectOpt,
    rollout: Annotated[list[int], typer.Argument(help="Rollout ids (labelled ones).")],
    split: Annotated[str, typer.Option(help="development or test (test is locked).")],
    expectation: Annotated[str, typer.Option(help="good, bad or empty.")] = "",
    note: Annotated[str, typer.Option(help="Why it is gold.")] = "",
    as_email: cs.AsOpt = None,
) -> None:
    """Mark labelled rollouts as gold items."""
    from app.labels import gold

    if split not in ("development", "test"):
        raise _fail("--split must be development or test.")
    with _session() as session:
        found = cs.project(session, project)
        user = cs.person(session, found, as_email, Permission.gold_manage)
        with cs.domain_errors():
            added = gold.add_gold(
                session,
                found,
                actor=user,
                rollout_ids=rollout,
                split=split,
                expectation=expectation,
                note=note,
            )
    typer.echo(f"{len(added)} gold item(s) in the {split} split.")


@gold_app.command("remove")
def gold_remove_command(
    project: cs.ProjectOpt,
    gold_id: Annotated[int, typer.Argument(help="Gold item id.")],
    as_email: cs.AsOpt = None,
) -> None:
    """Remove a development item (test items are locked)."""
    from app.labels import gold

    with _session() as session:
        found = cs.project(session, project)
        user = cs.person(session, found, as_email, Permission.gold_manage)
        with cs.domain_errors():
            gold.remove_gold(session, found, gold_id, actor=user)
    typer.echo(f"Removed gold item {gold_id}.")


@gold_app.command("lock")
def gold_lock_command(
    project: cs.ProjectOpt,
    gold_id: Annotated[int, typer.Argument(help="Gold item id.")],
    as_email: cs.AsOpt = None,
) -> None:
    """Move a development item to the test split, where it is locked for good."""
    from app.labels import gold

    with _session() as session:
        found = cs.project(session, project)
        user = cs.person(session, found, as_email, Permission.gold_manage)
        with cs.domain_errors():
            gold.set_gold_split(session, found, gold_id, actor=user, split="test")
    typer.echo(f"Gold item {gold_id} is in the locked test split.")


# ---- disagreements ----------------------------------------------------------------------------

disagreements_app = typer.Typer(
    help="Judge-expert disagreements: list, resolve.", no_args_is_help=True
)


@disagreements_app.command("list")
def disagreements_list_command(
    project: cs.ProjectOpt,
    run: Annotated[int, typer.Option(help="Judge run id.")],
    as_email: cs.AsOpt = None,
) -> None:
    """Where the run's judge and an expert disagree, as JSON lines."""
    import json

    from app.labels import review

    with _session() as session:
        found = cs.project(session, project)
        viewer = cs.person(session, found, as_email)
        with cs.domain_errors():
            report = review.disagreements(
                session, review.get_run(session, found.id or 0, run), viewer=viewer
            )
        for row in report.rows:
            typer.echo(
                json.dumps(
                    {
                        "rollout_id": row.subject.rollout_id,
                        "label_id": row.label.id,
                        "criterion": row.criterion_key,
                        "human": row.human,
                        "judge": row.judge,
                    },
                    default=str,
                )
            )


@disagreements_app.command("resolve")
def disagreements_resolve_command(
    project: cs.ProjectOpt,
    run: Annotated[int, typer.Option(help="Judge run id.")],
    label: Annotated[int, typer.Option(help="Label id.")],
    criterion: Annotated[str, typer.Option(help="Criterion key, _aggregate or _winner.")],
    resolution: Annotated[str, typer.Option(help="judge_wrong, label_wrong or ambiguous.")],
    note: Annotated[str, typer.Option(help="Why.")] = "",
    corrected_value: Annotated[
        str | None, typer.Option(help="With label_wrong: the label's new value (JSON).")
    ] = None,
    as_email: cs.AsOpt = None,
) -> None:
    """Record how a disagreement is resolved (label_wrong may correct the label)."""
    import json

    from app.labels import resolutions, review

    value = None
    if corrected_value is not None:
        try:
            value = json.loads(corrected_value)
        except ValueError:
            value = corrected_value
    with _session() as session:
        found = cs.project(session, project)
        user = cs.person(session, found, as_email, Permission.disagreement_resolve)
        with cs.domain_errors():
            record = resolutions.resolve(
                session,
                review.get_run(session, found.id or 0, run),
                actor=user,
                may_edit_others=cs.may(session, found, user, Permission.project_manage),
                label_id=label,
                criterion=criterion,
                resolution=resolution,
                note=note,
                corrected_value=value if resolution == "label_wrong" else None,
            )
    typer.echo(f"Resolution {record.id}: {record.criterion} → {record.resolution}.")
