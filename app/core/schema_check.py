"""Checking a value against a JSON Schema file, with each problem named by its field, in words.

The format documents' schemas (docs/formats/) are the ones imports check with: the label and
verdict files' lines are validated against the same schema files the API serves.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError


@lru_cache(maxsize=16)
def load_schema(path: str) -> dict[str, Any]:
    value = json.loads(Path(path).read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


@lru_cache(maxsize=16)
def _validator(path: str) -> Draft202012Validator:
    schema = load_schema(path)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _field(error: ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = str(error.message).split("'")
        if len(missing) >= 2:
            parts.append(missing[1])
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set((error.schema or {}).get("properties") or {})
        extra = [k for k in error.instance if k not in allowed]
        if extra:
            parts.append(str(extra[0]))
    return ".".join(parts)


def _message(error: ValidationError) -> str:
    if error.validator == "required":
        return "is required"
    if error.validator == "additionalProperties":
        return "is not a known field of this format"
    if error.validator == "anyOf" and isinstance(error.validator_value, list):
        options = [
            " and ".join(option.get("required") or [])
            for option in error.validator_value
            if isinstance(option, dict) and option.get("required")
        ]
        if options:
            return "needs " + " or ".join(options)
    if error.validator == "type":
        wanted = error.validator_value
        words = " or ".join(wanted) if isinstance(wanted, list) else str(wanted)
        return f"must be of type {words}"
    return str(error.message)


def schema_problems(path: str | Path, value: Any) -> list[tuple[str, str]]:
    """(field, message) for each way `value` departs from the schema at `path` (none: valid)."""
    return problems_with(_validator(str(path)), value)


def validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems_with(validator: Draft202012Validator, value: Any) -> list[tuple[str, str]]:
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [(_field(error), _message(error)) for error in errors]
