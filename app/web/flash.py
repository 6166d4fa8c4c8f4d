"""One-shot messages shown on the next page, carried in a signed cookie."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.responses import Response

FLASH_COOKIE = "rs_flash"


def _serializer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.app.state.settings.secret_key, salt="rs-flash")


def flash(request: Request, response: Response, message: str, kind: str = "success") -> None:
    messages = list(getattr(request.state, "pending_flash", []))
    messages.append({"kind": kind, "message": message[:500]})
    request.state.pending_flash = messages
    response.set_cookie(
        FLASH_COOKIE,
        _serializer(request).dumps(json.dumps(messages)),
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.cookie_secure,
    )


def take_flashes(request: Request) -> list[dict[str, Any]]:
    """Messages for this page; the middleware deletes the cookie once they were shown."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    request.state.flash_consumed = True
    try:
        data = json.loads(_serializer(request).loads(raw))
    except (BadSignature, ValueError):
        return []
    return [m for m in data if isinstance(m, dict) and "message" in m]
