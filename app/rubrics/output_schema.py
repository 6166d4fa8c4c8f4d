"""The JSON Schema (draft 2020-12) of the judge's answer for a rubric, and validation of answers.

The same schema is shown to the judge in its prompt, passed to providers that support
schema-constrained decoding, and used to check every verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from app.rubrics.definition import PREFERENCE_CHOICES, Criterion, RubricDefinition, RubricMode

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_MAX_MESSAGE_CHARS = 300


def _score_schema(criterion: Criterion) -> dict[str, Any]:
    if criterion.type == "boolean":
        return {"type": "boolean", "description": "true = pass, false = fail"}
    return {
        "type": "integer",
        "minimum": criterion.min_value,
        "maximum": criterion.max_value,
    }


def _criterion_answer_schema(criterion: Criterion) -> dict[str, Any]:
    # Evidence and justification come before the score on purpose: models that decode in
    # property order then reason before they commit to a number.
    return {
        "type": "object",
        "description": criterion.name,
        "properties": {
            "evidence": {
                "type": "string",
                "description": "Exact quote(s) from the material that support the score",
            },
            "justification": {"type": "string", "description": "Why this score"},
            "score": _score_schema(criterion),
        },
        "required": ["evidence", "justification", "score"],
        "additionalProperties": False,
    }


def _criteria_schema(defn: RubricDefinition) -> dict[str, Any]:
    keys = [criterion.key for criterion in defn.criteria]
    return {
        "type": "object",
        "properties": {c.key: _criterion_answer_schema(c) for c in defn.criteria},
        "required": keys,
        "additionalProperties": False,
    }


def _preference_schema(defn: RubricDefinition) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    if defn.criteria:
        properties["criteria"] = {
            "type": "object",
            "properties": {
                c.key: {
                    "type": "object",
                    "description": c.name,
                    "properties": {
                        "justification": {"type": "string"},
                        "winner": {"enum": list(PREFERENCE_CHOICES)},
                    },
                    "required": ["justification", "winner"],
                    "additionalProperties": False,
                }
                for c in defn.criteria
            },
            "required": [c.key for c in defn.criteria],
            "additionalProperties": False,
        }
        required.append("criteria")
    properties["justification"] = {"type": "string"}
    properties["winner"] = {
        "enum": list(PREFERENCE_CHOICES),
        "description": "A, B, or tie when neither is better",
    }
    required += ["justification", "winner"]
    return {"properties": properties, "required": required}


def build_output_schema(defn: RubricDefinition) -> dict[str, Any]:
    """The JSON Schema the judge's answer must satisfy for this definition."""
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "title": f"Judge answer: {defn.title}",
        "type": "object",
    }
    if defn.mode == RubricMode.preference:
        schema.update(_preference_schema(defn))
    elif defn.aggregation == "per_item_mean":
        assert defn.item_field is not None  # guaranteed by RubricDefinition's validator
        item = {
            "type": "object",
            "properties": {
                "item_index": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Position of the item in the response's list, from 0",
                },
                "excerpt": {
                    "type": "string",
                    "description": "A short quote identifying the item",
                },
                "criteria": _criteria_schema(defn),
                "item_score": {"type": "number"},
            },
            "required": ["item_index", "excerpt", "criteria", "item_score"],
            "additionalProperties": False,
        }
        schema["properties"] = {
            defn.item_field: {"type": "array", "items": item},
            "aggregate_score": {"type": "number"},
        }
        schema["required"] = [defn.item_field, "aggregate_score"]
    else:
        schema["properties"] = {
            "criteria": _criteria_schema(defn),
            "aggregate_score": {"type": "number"},
        }
        schema["required"] = ["criteria", "aggregate_score"]
    schema["additionalProperties"] = False
    return schema


def format_path(path: Any) -> str:
    """'comments[0].criteria.Actionability.score' from a jsonschema/pydantic path."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _shorten(message: str) -> str:
    # jsonschema quotes the whole offending value, which may be an entire judge answer.
    if len(message) <= _MAX_MESSAGE_CHARS:
        return message
    return message[: _MAX_MESSAGE_CHARS - 1] + "…"


def _path_sort_key(error: ValidationError) -> tuple[tuple[int, int, str], ...]:
    return tuple(
        (0, part, "") if isinstance(part, int) else (1, 0, str(part))
        for part in error.absolute_path
    )


def answer_checker(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """A yes/no check of answers against `schema`, for checking every verdict of a judge run.

    jsonschema-rs (compiled, Rust) takes ~2 µs per answer where jsonschema takes ~400 µs, which
    at hundreds of verdicts a second is a large share of a worker's CPU. jsonschema stays the
    reference: it words the errors (validate_answer), and checks a schema jsonschema-rs refuses.
    """
    try:
        return jsonschema_rs.validator_for(schema).is_valid
    except (ValueError, jsonschema_rs.ReferencingError):  # a schema jsonschema-rs cannot compile
        return Draft202012Validator(schema).is_valid


def validate_answer(defn: RubricDefinition, answer: Any) -> list[str]:
    """Every way `answer` breaks the output schema, as 'path: message' lines (empty = valid)."""
    validator = Draft202012Validator(build_output_schema(defn))
    errors: list[ValidationError] = sorted(validator.iter_errors(answer), key=_path_sort_key)
    return [f"{format_path(e.absolute_path)}: {_shorten(e.message)}" for e in errors]
