"""`rubric-studio rubrics ...`: rubrics as code (list, export, import), and the design loop from
the command line: create, edit the draft, render, publish, approve (sign off), archive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from app import cli_support as cs
from app.auth.policies import Permission

app = typer.Typer(
    help="Rubrics: list, create, draft, render, publish, approve, archive; export and import.",
    no_args_is_help=True,
)

RubricArg = Annotated[str, typer.Argument(metavar="RUBRIC", help="Rubric id or name.")]


@app.command("list")
def list_command(project: cs.ProjectOpt, as_json: cs.JsonOpt = False) -> None:
    """List a project's rubrics with their newest version."""
    from app.rubrics import service as rubric_service

    with cs.session() as db:
        found = cs.project(db, project)
        rows = rubric_service.list_rubrics(db, found.id or 0, include_archived=True)
    if as_json:
        cs.echo_json(
            [
                {
                    "id": r.rubric.id,
                    "name": r.rubric.name,
                    "mode": r.rubric.mode,
                    "latest_version": r.latest_version,
                    "archived": r.rubric.archived,
                }
                for r in rows
            ]
        )
        return
    for row in rows:
        latest = f"v{row.latest_version}" if row.latest_version else "draft only"
        typer.echo(f"{row.rubric.id}\t{row.rubric.name}\t{row.rubric.mode}\t{latest}")


@app.command("create")
def create_command(
    project: cs.ProjectOpt,
    name: Annotated[str, typer.Argument(help="The rubric's name.")],
    template: Annotated[
        str,
        typer.Option(help="Built-in template or blank_rubric / blank_preference."),
    ] = "blank_rubric",
    description: Annotated[str, typer.Option(help="What the rubric judges.")] = "",
    as_email: cs.AsOpt = None,
) -> None:
    """Create a rubric whose draft starts from a template."""
    from app.rubrics import service as rubric_service

    with cs.session() as db:
        found = cs.project(db, project)
        user = cs.person(db, found, as_email, Permission.rubric_edit)
        with cs.domain_errors():
            rubric = rubric_service.create_rubric(
                db, found, actor=user, name=name, description=description, template=template
            )
    typer.echo(f"Created rubric {rubric.id} '{rubric.name}' (a draft; publish it to judge).")


def _read_definition(path: Path) -> Any:
    text = path.read_text(encoding="utf-8-sig")
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise cs.fail(f"{path}: not readable: {exc}") from None


@app.command("draft")
def draft_command(
    project: cs.ProjectOpt,
    rubric: RubricArg,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", exists=True, dir_okay=False, help="A draft definition (YAML or JSON)."
        ),
    ] = None,
    regenerate: Annotated[
        bool, typer.Option(help="Regenerate both templates from the criteria.")
    ] = False,
    as_email: cs.AsOpt = None,
) -> None:
    """Print the draft (YAML), or save one from --file, or regenerate its templates."""
    from app.rubrics import serialization as rubric_serialization
    from app.rubrics import service as rubric_service

    with cs.session() as db:
        found = cs.project(db, project)
        target = cs.rubric(db, found, rubric)
        if file is None and not regenerate:
            typer.echo(rubric_serialization.readable_yaml(rubric_service.current_draft(db, target)))
            return
        user = cs.person(db, found, as_email, Permission.rubric_edit)
        draft = _read_definition(file) if file else rubric_service.current_draft(db, target)
        with cs.domain_errors():
            if regenerate:
                saved = rubric_service.regenerate_templates(
                    db, target, actor=user, expected_revision=target.draft_revision, draft=draft
                )
            else:
                saved = rubric_service.save_draft(
                    db, target, actor=user, expected_revision=target.draft_revision, draft=draft
                )
    state = "ready to publish" if saved.check.ok else "not ready to publish yet"
    typer.echo(f"Saved the draft of {target.name} (revision {saved.revision}, {state}).")
    for message in saved.check.all_messages():
        typer.echo(f"  {message}")


@app.command("render")
def render_command(
    project: cs.ProjectOpt,
    rubric_version: cs.VersionOpt,
    rollout: Annotated[int, typer.Option(help="Rollout id.")],
    rollout_b: Annotated[int | None, typer.Option(help="Pairs: the second rollout.")] = None,
) -> None:
    """Print the exact judge messages a version produces for a rollout, as JSON."""
    from app.rollouts import service as rollout_service
    from app.rubrics import previews as rubric_previews

    with cs.session() as db:
        found = cs.project(db, project)
        version = cs.rubric_version(db, found, rubric_version)
        with cs.domain_errors():
            first = rollout_service.get_rollout(db, found.id or 0, rollout)
            partner = (
                rollout_service.get_rollout(db, found.id or 0, rollout_b)
                if rollout_b is not None
                else rubric_previews.pair_partner(db, first)
            )
        preview = rubric_previews.render_preview(
            version.definition, rubric_previews.prompt_context(first, partner)
        )
    cs.echo_json(
        {
            "messages": preview.messages,
            "estimated_tokens": preview.tokens,
            "errors": preview.problems + [str(e) for e in preview.template_errors],
        }
    )


@app.command("publish")
def publish_command(
    project: cs.ProjectOpt,
    rubric: RubricArg,
    change_note: Annotated[str, typer.Option(help="What changed and why (kept with it).")],
    as_email: cs.AsOpt = None,
) -> None:
    """Freeze the draft as the next version."""
    from app.rubrics import publishing as rubric_publishing

    with cs.session() as db:
        found = cs.project(db, project)
        target = cs.rubric(db, found, rubric)
        user = cs.person(db, found, as_email, Permission.rubric_publish)
        with cs.domain_errors():
            version = rubric_publishing.publish_version(
                db, target, actor=user, change_note=change_note
            )
    typer.echo(f"Published {target.name}:{version.number} (version id {version.id}).")


@app.command("approve")
def approve_command(
    project: cs.ProjectOpt,
    rubric_version: cs.VersionOpt,
    comment: Annotated[str, typer.Option(help="A note with the sign-off.")] = "",
    as_email: cs.AsOpt = None,
) -> None:
    """Sign off a published version (once per person)."""
    from app.rubrics import publishing as rubric_publishing

    with cs.session() as db:
        found = cs.project(db, project)
        version = cs.rubric_version(db, found, rubric_version)
        user = cs.person(db, found, as_email, Permission.rubric_approve)
        with cs.domain_errors():
            rubric_publishing.approve_version(db, version, actor=user, comment=comment)
    typer.echo(f"{user.email} signed off version {version.number} (id {version.id}).")


@app.command("archive")
def archive_command(
    project: cs.ProjectOpt,
    rubric: RubricArg,
    restore: Annotated[bool, typer.Option(help="Restore an archived rubric instead.")] = False,
    as_email: cs.AsOpt = None,
) -> None:
    """Hide a rubric from the list (its versions stay), or --restore it."""
    from app.rubrics import publishing as rubric_publishing

    with cs.session() as db:
        found = cs.project(db, project)
        target = cs.rubric(db, found, rubric)
        user = cs.person(db, found, as_email, Permission.rubric_edit)
        with cs.domain_errors():
            rubric_publishing.archive_rubric(db, target, actor=user, archived=not restore)
    typer.echo(f"{'Restored' if restore else 'Archived'} rubric {target.name}.")


@app.command("export")
def export_command(
    project: cs.ProjectOpt,
    rubric: Annotated[str, typer.Option(help="Rubric id or name.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; stdout when omitted.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="yaml or json.")] = "yaml",
    version: Annotated[
        int | None, typer.Option(help="Only this version; all versions and the draft by default.")
    ] = None,
) -> None:
    """Write a rubric (all versions, or one) as a YAML or JSON file (docs/formats/rubric.md)."""
    from app.rubrics import files as rubric_files

    with cs.session() as db:
        found = cs.project(db, project)
        target = cs.rubric(db, found, rubric)
        with cs.domain_errors():
            _, text = rubric_files.export_text(db, target, fmt=fmt, version=version)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote {output}")


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="A .yaml/.yml or .json rubric file.", exists=True)],
    project: cs.ProjectOpt,
    name: Annotated[str | None, typer.Option(help="Name instead of the file's.")] = None,
    as_email: cs.AsOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", hidden=True, help="Deprecated: use --as.")
    ] = None,
) -> None:
    """Create a rubric, with its versions and sign-offs, from a rubric file
    (docs/formats/rubric.md)."""
    from app.rubrics import files as rubric_files

    text = path.read_text(encoding="utf-8-sig")
    with cs.session() as db:
        target = cs.project(db, project)
        actor = cs.person(db, target, as_email or user, Permission.rubric_edit)
        with cs.domain_errors():
            created = rubric_files.import_rubric(
                db,
                target,
                actor=actor,
                text=text,
                fmt=rubric_files.guess_format(path.name, text),
                name=name,
            )
    typer.echo(f"Imported rubric {created.name} (id {created.id}).")
