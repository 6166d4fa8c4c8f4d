"""Render a full page, or only its fragment when htmx asks; one helper for every view."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

VARY = "HX-Request, HX-History-Restore-Request"


def is_htmx(request: Request) -> bool:
    """An htmx request that wants a fragment. Back/Forward restores (when htmx has no cached copy)
    and boosted links send HX-Request too, but they replace the whole page: they get the page."""
    headers = request.headers
    return (
        headers.get("hx-request") == "true"
        and headers.get("hx-boosted") != "true"
        and headers.get("hx-history-restore-request") != "true"
    )


def context_of(context: object) -> dict[str, Any]:
    """What a template reads: a page-context dataclass's fields (the objects themselves, not
    copies), or the dict as given."""
    if context is None:
        return {}
    if dataclasses.is_dataclass(context) and not isinstance(context, type):
        return {f.name: getattr(context, f.name) for f in dataclasses.fields(context)}
    if isinstance(context, dict):
        return context
    raise TypeError(f"A page context is a dataclass or a dict, not {type(context).__name__}.")


def render(
    request: Request,
    template: str,
    context: object = None,
    *,
    fragment: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The page template, or `fragment` for an htmx request; caches keyed on the htmx headers."""
    name = fragment if fragment and is_htmx(request) else template
    response = request.app.state.templates.TemplateResponse(
        request, name, context_of(context), status_code=status_code, headers=headers
    )
    response.headers["Vary"] = VARY
    return response


def redirect(request: Request, url: str) -> Response:
    """After a successful POST: a normal 303, or HX-Redirect for htmx so the page reloads there."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)
