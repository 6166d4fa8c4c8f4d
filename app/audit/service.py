"""Record and query audit events. Helpers here only flush: the caller's service commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from app.audit.models import AuditEvent
from app.auth.models import User

OBJECT_ID_CHARS = 80  # AuditEvent.object_id's column


def _object_id(object_id: object, details: dict[str, Any]) -> str:
    """What fits the object id column; a bulk action's full id list goes into the details."""
    if isinstance(object_id, list | tuple | set | frozenset):
        ids = [str(i) for i in object_id]
        details.setdefault("object_ids", ids)
        joined = ",".join(ids)
        if len(joined) <= OBJECT_ID_CHARS:
            return joined
        return f"{ids[0]}…{ids[-1]} ({len(ids)} objects)"[:OBJECT_ID_CHARS]
    text = str(object_id)
    if len(text) > OBJECT_ID_CHARS:
        details.setdefault("object_id", text)
        return text[: OBJECT_ID_CHARS - 1] + "…"
    return text


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
    """One audit event. `object_id` may be a list (a bulk action): every id is kept, however
    many, in `details["object_ids"]`, and the column holds a short form."""
    details = dict(details or {})
    event = AuditEvent(
        project_id=project_id,
        actor_id=actor.id if actor else None,
        actor_label=actor.email if actor else "system",
        action=action,
        object_type=object_type,
        object_id=_object_id(object_id, details),
        summary=summary,
        details=details,
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
