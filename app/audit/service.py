"""Record and query audit events. Helpers here only flush: the caller's service commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from app.audit.models import AuditEvent
from app.auth.models import User


def record(
    session: Session,
    *,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: object = "",
    summary: str = "",
    project_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        project_id=project_id,
        actor_id=actor.id if actor else None,
        actor_label=actor.email if actor else "system",
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        summary=summary,
        details=details or {},
    )
    session.add(event)
    session.flush()
    return event


@dataclass
class AuditFilter:
    project_id: int | None = None
    action: str | None = None
    actor: str | None = None
    object_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_events(
    session: Session, flt: AuditFilter, *, before_id: int | None = None, limit: int = 50
) -> list[AuditEvent]:
    """Newest first, keyset-paginated by id."""
    query = select(AuditEvent)
    if flt.project_id is not None:
        query = query.where(AuditEvent.project_id == flt.project_id)
    if flt.action:
        query = query.where(col(AuditEvent.action).startswith(flt.action))
    if flt.actor:
        query = query.where(col(AuditEvent.actor_label).contains(flt.actor))
    if flt.object_type:
        query = query.where(AuditEvent.object_type == flt.object_type)
    if flt.since:
        query = query.where(AuditEvent.created_at >= flt.since)
    if flt.until:
        query = query.where(AuditEvent.created_at <= flt.until)
    if before_id is not None:
        query = query.where(col(AuditEvent.id) < before_id)
    query = query.order_by(col(AuditEvent.id).desc()).limit(limit)
    return list(session.exec(query))


def distinct_actions(session: Session, project_id: int | None) -> list[str]:
    query = select(AuditEvent.action, func.count()).group_by(AuditEvent.action)
    if project_id is not None:
        query = query.where(AuditEvent.project_id == project_id)
    return sorted(action for action, _ in session.exec(query))
