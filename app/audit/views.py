"""HTML and JSON routes to browse the audit log."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from app.audit import service as audit_service
from app.auth.dependencies import AuditReader, SessionDep, SiteAdmin
from app.core.ids import Id, Int32, NonNegInt64
from app.web.htmx import render
from app.web.urls import project_url

router = APIRouter(tags=["pages: audit"])
api_router = APIRouter(prefix="/api/v1", tags=["audit"])


def _filter(
    project_id: Id | None, action: str, actor: str, object_type: str
) -> audit_service.AuditFilter:
    return audit_service.AuditFilter(
        project_id=project_id,
        action=action.strip() or None,
        actor=actor.strip() or None,
        object_type=object_type.strip() or None,
    )


@router.get("/projects/{project_id}/audit", include_in_schema=False)
def project_audit_page(
    request: Request,
    session: SessionDep,
    ctx: AuditReader,
    action: str = "",
    actor: str = "",
    object_type: str = "",
    before: NonNegInt64 | None = None,
) -> Response:
    flt = _filter(ctx.project_id, action, actor, object_type)
    events = audit_service.list_events(session, flt, before_id=before)
    context = {
        "ctx": ctx,
        "events": events,
        "flt": flt,
        "actions": audit_service.distinct_actions(session, ctx.project_id),
        "base_url": project_url(ctx.project_id, "audit"),
    }
    return render(request, "audit/list.html", context, fragment="audit/_events.html")


@router.get("/admin/audit", include_in_schema=False)
def site_audit_page(
    request: Request,
    session: SessionDep,
    admin: SiteAdmin,
    action: str = "",
    actor: str = "",
    object_type: str = "",
    before: NonNegInt64 | None = None,
) -> Response:
    flt = _filter(None, action, actor, object_type)
    events = audit_service.list_events(session, flt, before_id=before)
    context = {
        "ctx": None,
        "events": events,
        "flt": flt,
        "actions": audit_service.distinct_actions(session, None),
        "base_url": "/admin/audit",
    }
    return render(request, "audit/list.html", context, fragment="audit/_events.html")


class AuditEventPublic(BaseModel):
    id: int
    actor: str
    action: str
    object_type: str
    object_id: str
    summary: str
    details: dict[str, object]
    created_at: datetime


@api_router.get("/projects/{project_id}/audit", response_model=list[AuditEventPublic])
def project_audit(
    session: SessionDep,
    ctx: AuditReader,
    action: str = "",
    actor: str = "",
    before: NonNegInt64 | None = None,
    limit: Int32 = 50,
) -> list[AuditEventPublic]:
    flt = _filter(ctx.project_id, action, actor, "")
    events = audit_service.list_events(
        session, flt, before_id=before, limit=min(max(limit, 1), 500)
    )
    return [
        AuditEventPublic(
            id=e.id or 0,
            actor=e.actor_label,
            action=e.action,
            object_type=e.object_type,
            object_id=e.object_id,
            summary=e.summary,
            details=e.details,
            created_at=e.created_at,
        )
        for e in events
    ]
