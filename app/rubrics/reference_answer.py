"""The reference answer as the judge sees it, in one place for the studio and every export.

A trainer may hand the same reference as an object or as its JSON text (verl's `ground_truth` is
usually a string): both render the same text. Pure, standard library only: copied verbatim into
exported reward functions.
"""

from __future__ import annotations

import json
from typing import Any


def reference_answer_text(value: Any) -> str:
    """The text a judge prompt shows for a reference answer: an object or array (or its JSON
    text) as pretty JSON, a JSON-quoted string as the string, other text as it is."""
    if value is None:
        return ""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] not in ("{", "[", '"'):
            return value
        try:
            value = json.loads(stripped)
        except ValueError:
            return value
        if isinstance(value, str):
            return value
    return json.dumps(value, indent=2, ensure_ascii=False)
