"""A refused form shown again: the lead sentence at the top, each problem beside its field, and
problems about no field of this form listed under the lead (so nothing is said twice or lost)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.datastructures import FormData

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
    others = [p for p in problems if p not in beside]
    lead = error.message
    if beside and not others and lead.endswith("please correct:"):
        # Nothing is listed under the lead: point at the fields instead.
        many = len(beside) > 1
        lead = lead.removesuffix(":") + (
            " the marked fields below." if many else " the marked field below."
        )
    return {
        "form_error": lead,
        "field_errors": by_field(beside),
        "other_problems": others,
    }


def form_text(form: FormData, name: str) -> str:
    """A posted text field, or "" when it is missing or a file."""
    raw = form.get(name)
    return raw if isinstance(raw, str) else ""
