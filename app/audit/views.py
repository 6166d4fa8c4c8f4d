"""HTML and JSON routes to browse the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from app.audit import service as audit_service
from app.auth.dependencies import AuditReader, SessionDep, SiteAdmin
from app.core.cursor import decode_cursor, encode_cursor
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


class AuditPage(BaseModel):
    items: list[AuditEventPublic]
    next_cursor: str | None = Field(
        description="send back as `cursor` for the next (older) page; null on the last page"
    )


@api_router.get("/projects/{project_id}/audit", response_model=AuditPage)
def project_audit(
    session: SessionDep,
    ctx: AuditReader,
    action: str = "",
    actor: str = "",
    cursor: Annotated[
        str | None, Query(max_length=100, description="next_cursor of the previous page")
    ] = None,
    before: Annotated[
        NonNegInt64 | None, Query(deprecated=True, description="deprecated: use cursor")
    ] = None,
    limit: Int32 = 50,
) -> AuditPage:
    """The project's audit events, newest first; send `next_cursor` back as `cursor`."""
    flt = _filter(ctx.project_id, action, actor, "")
    size = min(max(limit, 1), 500)
    before_id = decode_cursor(cursor) if cursor is not None else before
    events = audit_service.list_events(session, flt, before_id=before_id, limit=size + 1)
    page = events[:size]
    return AuditPage(
        items=[
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
            for e in page
        ],
        next_cursor=encode_cursor(page[-1].id or 0) if len(events) > size and page else None,
    )
