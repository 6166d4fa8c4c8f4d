"""Jinja2 environment for the app's own templates: autoescape always, strict undefined."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.core.problems import labelled
from app.core.readable import readable_pairs
from app.core.security import csrf_token
from app.web.flash import take_flashes
from app.web.urls import project_url

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates"
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
HTMX_VERSION = "2.0.11"
CHARTJS_VERSION = "4.6.2"


def _datetime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return value.strftime(fmt) + " UTC" if value else "—"


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _number(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _plural(count: int | None, singular: str, plural: str | None = None) -> str:
    """`3|plural("label")` → "3 labels", `1|plural("label")` → "1 label" (numbers with commas)."""
    n = count or 0
    word = singular if n == 1 else (plural or singular + "s")
    return f"{_number(n)} {word}"


def template_context(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    seed = getattr(request.state, "csrf_seed", "")
    user = getattr(request.state, "user", None)
    return {
        "current_user": user,
        "csrf_token": csrf_token(
            settings.secret_key, seed, getattr(request.state, "session_token", None)
        ),
        "project_nav": getattr(request.state, "project_nav", None),
        "flashes": take_flashes(request),
        "htmx_version": HTMX_VERSION,
        "app_env": settings.env,
    }


def build_templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["datetime"] = _datetime
    env.filters["pretty_json"] = _pretty_json
    env.filters["number"] = _number
    env.filters["labelled"] = labelled
    env.filters["plural"] = _plural
    env.filters["readable_pairs"] = readable_pairs
    env.globals["project_url"] = project_url
    env.globals["chartjs_version"] = CHARTJS_VERSION  # macros imported without context see it
    return Jinja2Templates(env=env, context_processors=[template_context])
