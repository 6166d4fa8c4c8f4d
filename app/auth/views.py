"""HTML routes for signing in and out, API tokens, and site administration of users."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from app.auth import service as auth_service
from app.auth.dependencies import CurrentUser, SessionDep, SiteAdmin, current_user_optional
from app.core.errors import DomainError
from app.core.ids import Id
from app.web.flash import flash
from app.web.htmx import redirect, render

router = APIRouter(tags=["pages: accounts"])


def _safe_next(url: str | None) -> str:
    """Only same-site relative paths: an open redirect would help phishing."""
    if not url:
        return "/"
    parsed = urlparse(url)
    if parsed.scheme or parsed.netloc or not url.startswith("/") or url.startswith("//"):
        return "/"
    return url


@router.get("/login", include_in_schema=False)
def login_page(request: Request, session: SessionDep, next: str = "/") -> Response:
    if current_user_optional(request, session):
        return redirect(request, _safe_next(next))
    return render(
        request, "auth/login.html", {"next": _safe_next(next), "error": None, "email": ""}
    )


@router.post("/login", include_in_schema=False)
def login_action(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    settings = request.app.state.settings
    client_ip = request.client.host if request.client else ""
    try:
        user = auth_service.authenticate(
            session, settings, email=email, password=password, client_ip=client_ip
        )
    except DomainError as exc:
        context = {"next": _safe_next(next), "error": exc.message, "email": email}
        return render(request, "auth/login.html", context, status_code=exc.status_code)
    login = auth_service.start_session(
        session, settings, user, request.headers.get("user-agent", "")
    )
    response = redirect(request, _safe_next(next))
    response.set_cookie(
        settings.session_cookie_name,
        request.app.state.cookie_signer.sign(login.token),
        max_age=settings.session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    return response


@router.post("/logout", include_in_schema=False)
def logout_action(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    if request.state.session_token:
        auth_service.end_session(session, request.state.session_token)
    response = redirect(request, "/login")
    response.delete_cookie(request.app.state.settings.session_cookie_name)
    return response


@router.get("/account", include_in_schema=False)
def account_page(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    tokens = auth_service.list_api_tokens(session, user)
    return render(request, "auth/account.html", {"tokens": tokens, "new_token": None})


@router.post("/account/tokens", include_in_schema=False)
def token_create_action(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    name: Annotated[str, Form(max_length=200)],
) -> Response:
    created = auth_service.create_api_token(session, user, name)
    tokens = auth_service.list_api_tokens(session, user)
    # Shown once, on this response only; only its hash is stored.
    return render(request, "auth/account.html", {"tokens": tokens, "new_token": created})


@router.post("/account/tokens/{token_id}/revoke", include_in_schema=False)
def token_revoke_action(
    request: Request, session: SessionDep, user: CurrentUser, token_id: Id
) -> Response:
    record = auth_service.revoke_api_token(session, token_id, actor=user)
    response = redirect(request, "/account" if record.user_id == user.id else "/admin/users")
    flash(request, response, f"Token '{record.name}' revoked.")
    return response


@router.get("/admin/users", include_in_schema=False)
def users_page(request: Request, session: SessionDep, admin: SiteAdmin) -> Response:
    context = {
        "users": auth_service.list_users(session),
        "tokens": auth_service.list_api_tokens(session),
        "error": None,
    }
    return render(request, "auth/users.html", context)


@router.post("/admin/users", include_in_schema=False)
def user_create_action(
    request: Request,
    session: SessionDep,
    admin: SiteAdmin,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    display_name: Annotated[str, Form(max_length=200)] = "",
    is_admin: Annotated[bool, Form()] = False,
) -> Response:
    user = auth_service.create_user(
        session,
        email=email,
        password=password,
        display_name=display_name,
        is_admin=is_admin,
        actor=admin,
    )
    response = redirect(request, "/admin/users")
    flash(
        request, response, f"Account {user.email} created. Add it to projects from their settings."
    )
    return response


@router.post("/admin/users/{user_id}/active", include_in_schema=False)
def user_active_action(
    request: Request,
    session: SessionDep,
    admin: SiteAdmin,
    user_id: Id,
    active: Annotated[bool, Form()],
) -> Response:
    user = auth_service.set_user_active(session, user_id, active, actor=admin)
    response = redirect(request, "/admin/users")
    flash(request, response, f"{user.email} {'activated' if active else 'deactivated'}.")
    return response
