"""One app-wide check of text that arrives in a request, before any route sees it.

PostgreSQL cannot store a NUL character in text, and no database can store a lone UTF-16
surrogate (JSON allows `"\\ud800"`); both used to surface as 500s from deep inside a service.
Here they answer 422 naming the field, for path, query string, form fields and JSON bodies
alike. JSON bodies nested deeper than anything the app stores are refused too. Uploaded files are
left to their importers, which report such lines as problems.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from app.core.errors import InvalidInput
from app.core.json_limits import MAX_BODY_DEPTH, text_depth

# JSON escapes that decode to a NUL or a surrogate half; only then is the body parsed here.
_SUSPECT_ESCAPE = re.compile(rb"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def text_problem(text: str) -> str | None:
    """Why this text cannot be stored, or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (an invalid \\ud800-\\udfff escape)"
    return None


def _walk(value: Any, path: str, problems: list[dict[str, str]]) -> None:
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack and len(problems) < 20:
        item, where = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                problems.append({"field": where or "body", "message": problem})
        elif isinstance(item, dict):
            for key, child in item.items():
                key_problem = text_problem(key)
                if key_problem:
                    problems.append({"field": where or "body", "message": "a key " + key_problem})
                stack.append((child, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list):
            stack.extend(
                (child, f"{where}.{i}" if where else str(i)) for i, child in enumerate(item)
            )


def _refuse(problems: list[dict[str, str]]) -> InvalidInput:
    first = problems[0]
    return InvalidInput(f"{first['field']}: {first['message']}.", details=problems)


async def reject_unstorable_text(request: Request) -> None:
    """App-wide dependency (see create_app)."""
    problems: list[dict[str, str]] = []
    for name, value in request.path_params.items():
        if isinstance(value, str) and (problem := text_problem(value)):
            problems.append({"field": name, "message": problem})
    for name, value in request.query_params.multi_items():
        if problem := text_problem(name) or text_problem(value):
            problems.append({"field": name, "message": problem})
    content_type = request.headers.get("content-type", "")
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    continue
                if problem := text_problem(name) or text_problem(value):
                    problems.append({"field": name, "message": problem})
        elif "json" in content_type:
            body = await request.body()
            if text_depth(body) > MAX_BODY_DEPTH:
                problems.append(
                    {"field": "body", "message": f"is nested deeper than {MAX_BODY_DEPTH} levels"}
                )
            elif _SUSPECT_ESCAPE.search(body):
                try:
                    value = json.loads(body)
                except (ValueError, RecursionError):
                    value = None  # the route's own parsing answers 422 for invalid JSON
                _walk(value, "", problems)
    if problems:
        raise _refuse(problems)
