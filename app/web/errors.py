"""Error answers: JSON for the API, a page (or an htmx fragment) for the browser. Never a 500 for
bad input: validation problems become 422 with readable messages."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.core.errors import DomainError, Unauthenticated
from app.core.problems import from_validation_errors, labelled
from app.web.htmx import is_htmx, render

log = logging.getLogger(__name__)


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or (
        "application/json" in request.headers.get("accept", "")
        and "text/html" not in request.headers.get("accept", "")
    )


def readable_validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    return from_validation_errors(exc.errors())


def _error_response(request: Request, status: int, message: str, problems=None) -> Response:
    if wants_json(request):
        body: dict[str, object] = {"detail": message}
        if problems:
            body["problems"] = problems
        return JSONResponse(body, status_code=status)
    context = {"status": status, "message": message, "problems": labelled(problems or [])}
    if is_htmx(request):
        # Shown in the page's message area, whatever element made the request.
        return render(
            request,
            "errors/_message.html",
            context,
            status_code=status,
            # Reselect: an hx-select on the requesting element must not filter the message away.
            headers={
                "HX-Retarget": "#messages",
                "HX-Reswap": "innerHTML",
                "HX-Reselect": "[data-testid=error-message]",
            },
        )
    return render(request, "errors/error.html", context, status_code=status)


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"/login?next={quote(target, safe='')}"
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        to_login = isinstance(exc, Unauthenticated) and not wants_json(request)
        if to_login and request.url.path != "/login":
            return _login_redirect(request)
        problems = exc.details if isinstance(exc.details, list) else None
        return _error_response(request, exc.status_code, exc.message, problems)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = readable_validation_errors(exc)
        if wants_json(request):
            # A program reads `detail` alone: it names each problem (pages list them once below).
            said = "; ".join(f"{p['field']} {p['message']}" for p in problems[:5])
            return _error_response(request, 422, f"The request is not valid: {said}.", problems)
        lead = "Please correct this:" if len(problems) == 1 else "Please correct these:"
        return _error_response(request, 422, lead, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "There is no such page.", 405: "That method is not allowed here."}
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code in messages and message in ("Not Found", "Method Not Allowed"):
            message = messages[exc.status_code]
        return _error_response(request, exc.status_code, message)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(
            request, 500, "Something went wrong on our side. Nothing you sent was lost; try again."
        )
