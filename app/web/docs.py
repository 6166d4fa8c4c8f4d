"""The interactive API reference at /docs: Swagger UI served from vendored files."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.web.htmx import render

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def api_docs_page(request: Request) -> Response:
    """Public like /openapi.json: it documents the API, it holds no data."""
    return render(request, "api_docs.html", {})
