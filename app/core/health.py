"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import JSONResponse

from app.core.migrations import alembic_config

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The database answers and its schema is at the newest migration."""
    engine = request.app.state.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:  # any driver error means "not ready", never a 500
        return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, status_code=503)
    head = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    if current != head:
        return JSONResponse(
            {"status": "migrations pending", "current": sorted(current), "head": sorted(head)},
            status_code=503,
        )
    return JSONResponse({"status": "ready", "migration": sorted(head)})
