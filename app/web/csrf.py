"""CSRF protection for every state-changing request that relies on the session cookie."""

from __future__ import annotations

from fastapi import Request

from app.core.errors import PermissionDenied
from app.core.security import csrf_valid

SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
# Anonymous forms that still need a token (login CSRF).
PUBLIC_FORMS = {"/login"}


async def csrf_protect(request: Request) -> None:
    """App-wide dependency. Token-authenticated API calls carry no ambient credential: exempt."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    has_session = bool(getattr(request.state, "session_token", None))
    if not has_session and request.url.path not in PUBLIC_FORMS:
        return  # anonymous: authentication will refuse it with 401 or a redirect
    given = request.headers.get(CSRF_HEADER, "")
    if not given:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else ""
    settings = request.app.state.settings
    if not csrf_valid(
        settings.secret_key,
        getattr(request.state, "csrf_seed", None),
        getattr(request.state, "session_token", None),
        given,
    ):
        raise PermissionDenied(
            "This form has expired or did not come from Rubric Studio (CSRF check failed). "
            "Reload the page and try again."
        )
