"""Per-request plumbing: the signed session cookie, the CSRF seed cookie and security headers."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from app.web.flash import FLASH_COOKIE

CSRF_SEED_COOKIE = "rs_csrf"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def install_middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def session_and_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        settings = request.app.state.settings
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_upload_bytes + 1024 * 1024:
            # Refuse before Starlette spools a huge body to disk.
            limit_mib = settings.max_upload_bytes // (1024 * 1024)
            return JSONResponse(
                {"detail": f"The upload is larger than the limit of {limit_mib} MiB."},
                status_code=413,
                headers=SECURITY_HEADERS,
            )
        signer = request.app.state.cookie_signer
        raw_session = request.cookies.get(settings.session_cookie_name)
        request.state.session_token = signer.unsign(raw_session) if raw_session else None
        seed = request.cookies.get(CSRF_SEED_COOKIE)
        new_seed = not seed or len(seed) > 100
        request.state.csrf_seed = secrets.token_urlsafe(24) if new_seed else seed

        response = await call_next(request)

        if new_seed:
            response.set_cookie(
                CSRF_SEED_COOKIE,
                request.state.csrf_seed,
                httponly=True,
                samesite="lax",
                secure=settings.cookie_secure,
            )
        if getattr(request.state, "flash_consumed", False) and not getattr(
            request.state, "pending_flash", None
        ):
            response.delete_cookie(FLASH_COOKIE)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith("/api/") or "text/html" in response.headers.get(
            "content-type", ""
        ):
            response.headers.setdefault("Cache-Control", "no-store")
        return response
