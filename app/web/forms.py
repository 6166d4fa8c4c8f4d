"""A refused form shown again: the lead sentence at the top, each problem beside its field, and
problems about no field of this form listed under the lead (so nothing is said twice or lost)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.core.errors import DomainError
from app.core.problems import by_field, labelled


def form_error_context(error: DomainError | None, fields: Iterable[str] = ()) -> dict[str, Any]:
    """Template variables `form_error`, `field_errors` (field → message) and `other_problems`.

    With `fields` empty every problem with a field counts as shown beside it."""
    if error is None:
        return {"form_error": None, "field_errors": {}, "other_problems": []}
    problems = labelled(error.details) if isinstance(error.details, list) else []
    known = set(fields)
    beside = [p for p in problems if p["field"] and (not known or p["field"] in known)]
    return {
        "form_error": error.message,
        "field_errors": by_field(beside),
        "other_problems": [p for p in problems if p not in beside],
    }
