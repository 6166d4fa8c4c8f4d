"""`rubric-studio projects ...`: create projects; settings, approval policy and members."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app import cli_support as cs
from app.auth.policies import Permission

if TYPE_CHECKING:
    from app.projects.schemas import ProjectPublic

app = typer.Typer(
    help="Projects: create, settings, approval policy, members.", no_args_is_help=True
)
members_app = typer.Typer(help="Members and their roles.", no_args_is_help=True)
app.add_typer(members_app, name="members")


def _public(project: Any, role: str | None = None) -> ProjectPublic:
    from app.projects import service as project_service
    from app.projects.schemas import ProjectPublic

    location = project_service.document_location(project)
    return ProjectPublic.model_validate(
        {**project.model_dump(), "role": role, "document_location": location}
    )


def _schema(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise cs.fail(f"{path}: not a readable JSON file ({exc}).") from None
    if not isinstance(value, dict):
        raise cs.fail(f"{path}: the output JSON Schema must be a JSON object.")
    return value


@app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="The project's name (its slug is made from it).")],
    description: Annotated[str, typer.Option(help="What the task is.")] = "",
    policy_system_prompt: Annotated[str, typer.Option(help="The policy's system prompt.")] = "",
    output_schema: Annotated[
        Path | None, typer.Option(help="A JSON Schema file for the expected output.")
    ] = None,
    as_email: cs.AsOpt = None,
    as_json: cs.JsonOpt = False,
) -> None:
    """Create a project; the acting account (--as) becomes its admin."""
    from app.projects import service as project_service

    with cs.session() as db:
        owner = cs.person(db, None, as_email)
        with cs.domain_errors():
            project = project_service.create_project(
                db,
                name=name,
                description=description,
                policy_system_prompt=policy_system_prompt,
                output_schema=_schema(output_schema),
                owner=owner,
            )
    if as_json:
        cs.echo_json(_public(project, "admin"))
    else:
        typer.echo(f"Created project {project.id} '{project.slug}' with {owner.email} as admin.")


@app.command("list")
def list_command(as_email: cs.AsOpt = None, as_json: cs.JsonOpt = False) -> None:
    """List projects: the acting account's (with its role), or every project without --as."""
    from sqlmodel import col, select

    from app.projects import service as project_service
    from app.projects.models import Project

    with cs.session() as db:
        user = cs.actor(db, None, as_email)
        rows: list[tuple[Project, str | None]]
        if user is not None:
            rows = [(r.project, r.role) for r in project_service.list_projects_for(db, user)]
        else:
            found = db.exec(select(Project).order_by(col(Project.id))).all()
            rows = [(p, None) for p in found]
    if as_json:
        cs.echo_json([_public(p, role) for p, role in rows])
        return
    for project, role in rows:
        typer.echo(f"{project.id}\t{project.slug}\t{project.name}" + (f"\t{role}" if role else ""))


@app.command("show")
def show_command(project: cs.ProjectOpt) -> None:
    """Print a project's settings as JSON (its revision is needed to update it)."""
    from app.projects import service as project_service

    with cs.session() as db:
        found = cs.project(db, project)
        data = _public(found).model_dump(mode="json")
        data["single_approver"] = project_service.single_approver_allowed(found)
    cs.echo_json(data)


@app.command("update")
def update_command(
    project: cs.ProjectOpt,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    policy_system_prompt: Annotated[
        str | None, typer.Option(help="New policy system prompt.")
    ] = None,
    output_schema: Annotated[
        Path | None, typer.Option(help="A JSON Schema file for the expected output.")
    ] = None,
    clear_output_schema: Annotated[
        bool, typer.Option(help="Remove the expected output schema.")
    ] = False,
    document_source: Annotated[
        str | None,
        typer.Option(
            help="Where the grounding document is: field (the rollout's target_document), "
            "metadata (a metadata key) or user_message (between two markers)."
        ),
    ] = None,
    document_key: Annotated[str | None, typer.Option(help="With metadata: the key.")] = None,
    start_marker: Annotated[str | None, typer.Option(help="With user_message.")] = None,
    end_marker: Annotated[str | None, typer.Option(help="With user_message.")] = None,
    revision: Annotated[
        int | None, typer.Option(help="The revision you read (refused when stale).")
    ] = None,
    as_email: cs.AsOpt = None,
) -> None:
    """Change a project's settings; options not given keep their value."""
    from app.projects import service as project_service

    with cs.session() as db:
        found = cs.project(db, project)
        user = cs.person(db, found, as_email, Permission.project_manage)
        location = None
        if document_source is not None or document_key is not None or start_marker is not None:
            current = project_service.document_location(found)
            raw = current.model_dump() | {
                k: v
                for k, v in {
                    "source": document_source,
                    "metadata_key": document_key,
                    "start_marker": start_marker,
                    "end_marker": end_marker,
                }.items()
                if v is not None
            }
            with cs.domain_errors():
                location = project_service.parse_document_location(raw)
        with cs.domain_errors():
            updated = project_service.update_project(
                db,
                found,
                actor=user,
                expected_revision=found.revision if revision is None else revision,
                name=found.name if name is None else name,
                description=found.description if description is None else description,
                policy_system_prompt=(
                    found.policy_system_prompt
                    if policy_system_prompt is None
                    else policy_system_prompt
                ),
                output_schema=None
                if clear_output_schema
                else (_schema(output_schema) if output_schema else found.output_schema),
                document_location=location,
            )
    typer.echo(f"Saved the settings of {updated.slug} (revision {updated.revision}).")


@app.command("approval-policy")
def approval_policy_command(
    project: cs.ProjectOpt,
    single_approver: Annotated[
        bool,
        typer.Option(
            "--single-approver/--second-approver",
            help="Whether a version's publisher may also sign it off alone.",
        ),
    ],
    as_email: cs.AsOpt = None,
) -> None:
    """Allow a single approver, or require a second expert's sign-off (the default)."""
    from app.projects import service as project_service

    with cs.session() as db:
        found = cs.project(db, project)
        user = cs.person(db, found, as_email, Permission.project_manage)
        project_service.set_single_approver(db, found, actor=user, allowed=single_approver)
    typer.echo(
        "A single approver is now enough."
        if single_approver
        else "A second expert must now sign off."
    )


@members_app.command("list")
def members_list_command(project: cs.ProjectOpt) -> None:
    """Members: membership id, email, role."""
    from app.projects import service as project_service

    with cs.session() as db:
        found = cs.project(db, project)
        rows = project_service.list_members(db, found.id or 0)
    for row in rows:
        typer.echo(f"{row.membership.id}\t{row.user.email}\t{row.membership.role}")


@members_app.command("add")
def members_add_command(
    project: cs.ProjectOpt,
    email: Annotated[str, typer.Argument(help="The account to add.")],
    role: Annotated[str, typer.Option(help="admin, engineer, expert or reviewer.")],
    as_email: cs.AsOpt = None,
) -> None:
    """Add an account to the project with a role."""
    from app.projects import service as project_service

    with cs.session() as db:
        found = cs.project(db, project)
        user = cs.person(db, found, as_email, Permission.project_manage)
        with cs.domain_errors():
            membership = project_service.add_member(db, found, email=email, role=role, actor=user)
    typer.echo(f"Added {email.strip().lower()} as {role} (membership {membership.id}).")


def _membership_id(db: Any, found: Any, ref: str) -> int:
    from app.projects import service as project_service

    for row in project_service.list_members(db, found.id or 0):
        if str(row.membership.id) == ref or row.user.email == ref.strip().lower():
            return row.membership.id or 0
    raise cs.fail(f"No member {ref!r} in project {found.slug} (give a membership id or email).")


@members_app.command("role")
def members_role_command(
    project: cs.ProjectOpt,
    member: Annotated[str, typer.Argument(help="Membership id or the member's email.")],
    role: Annotated[str, typer.Option(help="admin, engineer, expert or reviewer.")],
    as_email: cs.AsOpt = None,
) -> None:
    """Change a member's role (a project keeps at least one admin)."""
    from app.projects import service as project_service

    with cs.session() as db:
        found = cs.project(db, project)
        user = cs.person(db, found, as_email, Permission.project_manage)
        membership_id = _membership_id(db, found, member)
        with cs.domain_errors():
            project_service.set_member_role(
                db, found, membership_id=membership_id, role=role, actor=user
            )
    typer.echo(f"{member} is now {role}.")


@members_app.command("remove")
def members_remove_command(
    project: cs.ProjectOpt,
    member: Annotated[str, typer.Argument(help="Membership id or the member's email.")],
    as_email: cs.AsOpt = None,
) -> None:
    """Remove a member from the project (a project keeps at least one admin)."""
    from app.projects import service as project_service

    with cs.session() as db:
        found = cs.project(db, project)
        user = cs.person(db, found, as_email, Permission.project_manage)
        membership_id = _membership_id(db, found, member)
        with cs.domain_errors():
            project_service.remove_member(db, found, membership_id=membership_id, actor=user)
    typer.echo(f"Removed {member} from {found.slug}.")
