"""`rubric-studio audit --project P`: the project's audit log, newest first."""

from __future__ import annotations

from typing import Annotated

import typer

from app import cli_support as cs


def audit_command(
    project: cs.ProjectOpt,
    action: Annotated[str, typer.Option(help="Only actions starting with this.")] = "",
    limit: Annotated[int, typer.Option(help="How many events (at most 500).")] = 50,
) -> None:
    """Print the project's audit log, newest first: time, who, action, summary."""
    from app.audit import service as audit_service

    with cs.session() as db:
        found = cs.project(db, project)
        flt = audit_service.AuditFilter(project_id=found.id, action=action.strip() or None)
        events = audit_service.list_events(db, flt, limit=max(1, min(limit, 500)))
    for e in events:
        when = e.created_at.isoformat(timespec="seconds")
        typer.echo(f"{when}\t{e.actor_label}\t{e.action}\t{e.summary}")
