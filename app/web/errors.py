"""Error answers: JSON for the API, a page (or an htmx fragment) for the browser. Never a 500 for
bad input: validation problems become 422 with readable messages."""

from __future__ import annotations

import logging
import sqlite3
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Match, Mount

from app.core.db import QUERY_CANCELED
from app.core.errors import DomainError, Unauthenticated
from app.core.problems import from_validation_errors, labelled
from app.web.htmx import is_htmx, render

log = logging.getLogger(__name__)


class Problem(BaseModel):
    """One thing wrong with the request, named by the field it concerns."""

    field: str | None = Field(
        default=None, description="The field, dotted for nested ones; 'request' for the whole."
    )
    message: str
    line: int | None = Field(default=None, description="The line of an uploaded file, if any.")


class ErrorBody(BaseModel):
    """Every API error answers this shape."""

    detail: str = Field(description="What went wrong, in plain words.")
    problems: list[Problem] | None = Field(
        default=None, description="Per-field problems, when the request was not valid."
    )


_ERROR_STATUSES = {
    400: "The request cannot be carried out as sent.",
    401: "Not signed in, or the API token is not valid.",
    403: "Signed in, but this account may not do this.",
    404: "No such object, or it is not in a project you belong to.",
    405: "That method is not allowed on this path (the Allow header lists those that are).",
    409: "A conflicting change was made meanwhile; nothing was overwritten.",
    413: "The request body is too large.",
    422: "The request is not valid; `problems` names each field.",
    429: "Too many attempts; wait and try again.",
    503: "Too busy, or the page took too long (narrow the filter); `Retry-After` says when to "
    "try again.",
}
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody, "description": text} for status, text in _ERROR_STATUSES.items()
}


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or (
        "application/json" in request.headers.get("accept", "")
        and "text/html" not in request.headers.get("accept", "")
    )


def readable_validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    return from_validation_errors(exc.errors())


def error_response(
    request: Request,
    status: int,
    message: str,
    problems=None,
    headers: dict[str, str] | None = None,
) -> Response:
    if wants_json(request):
        body: dict[str, object] = {"detail": message}
        if problems:
            body["problems"] = problems
        return JSONResponse(body, status_code=status, headers=headers)
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
                **(headers or {}),
                "HX-Retarget": "#messages",
                "HX-Reswap": "innerHTML",
                "HX-Reselect": "[data-testid=error-message]",
            },
        )
    return render(request, "errors/error.html", context, status_code=status, headers=headers)


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"/login?next={quote(target, safe='')}"
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _value_out_of_range(exc: StatementError) -> bool:
    """True for the database's "number out of range" and "text with NUL" refusals."""
    orig = exc.orig
    if isinstance(orig, OverflowError):
        return True  # SQLite: Python int too large to convert to SQLite INTEGER
    if isinstance(orig, ValueError) and "NUL" in str(orig):
        return True  # psycopg: PostgreSQL text fields cannot contain NUL (0x00) bytes
    if isinstance(exc, DataError):
        # PostgreSQL SQLSTATE 22003 numeric_value_out_of_range, 22001 string_data_right_truncation
        # (text longer than its column), 22P05 untranslatable_character,
        # 22021 character_not_in_repertoire
        return getattr(orig, "sqlstate", None) in {"22003", "22001", "22P05", "22021"}
    return False


def _query_canceled(exc: StatementError) -> bool:
    """The database cancelled the statement: past the web statement timeout, or the client left
    (PostgreSQL's query_canceled; SQLite's "interrupted", app/core/db.py StatementCanceller)."""
    if getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED:
        return True
    return isinstance(exc.orig, sqlite3.OperationalError) and str(exc.orig) == "interrupted"


TOO_SLOW_MESSAGE = (
    "This page took too long; narrow the filter (a shorter date or step range, a model, a more "
    "specific search) and try again. Nothing was changed."
)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    allowed = set()
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        routes = (r for r in request.app.router.routes if not isinstance(r, Mount))
        if any(route.matches(scope)[0] == Match.FULL for route in routes):
            allowed.add(method)
    return ", ".join(sorted(allowed))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        to_login = isinstance(exc, Unauthenticated) and not wants_json(request)
        if to_login and request.url.path != "/login":
            return _login_redirect(request)
        problems = exc.details if isinstance(exc.details, list) else None
        return error_response(request, exc.status_code, exc.message, problems)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = readable_validation_errors(exc)
        if wants_json(request):
            # A program reads `detail` alone: it names each problem (pages list them once below).
            said = "; ".join(f"{p['field']} {p['message']}" for p in problems[:5])
            return error_response(request, 422, f"The request is not valid: {said}.", problems)
        lead = "Please correct this:" if len(problems) == 1 else "Please correct these:"
        return error_response(request, 422, lead, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "There is no such page.", 405: "That method is not allowed here."}
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code in messages and message in ("Not Found", "Method Not Allowed"):
            message = messages[exc.status_code]
        # Keeps the headers the exception carries: a 405's Allow, a 401's WWW-Authenticate.
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        return error_response(request, exc.status_code, message, headers=headers or None)

    @app.exception_handler(StatementError)
    async def database_refused_value(request: Request, exc: StatementError) -> Response:
        # Safety net behind the bounded types of app.core.ids and the text checks of
        # app.web.input_guard: a value the column cannot hold is the caller's mistake, not ours.
        if _query_canceled(exc):
            log.warning("statement cancelled on %s %s: %s", request.method, request.url.path, exc)
            return error_response(request, 503, TOO_SLOW_MESSAGE, headers={"Retry-After": "30"})
        if _value_out_of_range(exc):
            log.warning(
                "database refused a value on %s %s: %s", request.method, request.url.path, exc.orig
            )
            return error_response(
                request,
                422,
                "A number or text in the request is outside what can be stored "
                "(too large, too long, or containing a NUL character).",
                [{"field": "request", "message": "contains a value outside the storable range"}],
            )
        return await unexpected_error(request, exc)

    @app.exception_handler(OverflowError)
    async def overflow_error(request: Request, exc: OverflowError) -> Response:
        return error_response(
            request,
            422,
            "A number in the request is too large.",
            [{"field": "request", "message": "contains a number that is too large"}],
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            request, 500, "Something went wrong on our side. Nothing you sent was lost; try again."
        )
