"""Problems with what someone submitted, said once and in plain words: the shape shared by every
form, the API's `problems` list and the error pages. Pure: no web or database imports.

A problem is ``{"field": <machine name>, "label": <what the form calls it>, "message": <words>}``.
The field stays for programs (API clients, the form that puts the message beside its input); people
read the label and the message. The error's own message is a lead sentence that never repeats the
problems, so each problem is said exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

Problem = dict[str, str]

# Words a form would use for the parts of a field name that are abbreviations.
_WORDS = {
    "api": "API",
    "url": "URL",
    "uri": "URI",
    "id": "ID",
    "ids": "IDs",
    "s3": "S3",
    "arn": "ARN",
    "json": "JSON",
    "llm": "LLM",
    "env": "variable",
    "1k": "1,000 tokens",
    "s": "(seconds)",
}
_HIDDEN_LOCATIONS = {"body", "query", "path", "form", "header", "cookie"}


def field_label(field: str, labels: Mapping[str, str] | None = None) -> str:
    """`api_key_env` → "API key variable"; `judge.weight` → "Judge › weight"; a name as typed by a
    person (a criterion called "Clear") stays as it is."""
    if labels and field in labels:
        return labels[field]
    if not field or field in ("request", "body"):
        return ""
    if ":" in field:  # "critique:Clear" → the critique of the criterion "Clear"
        kind, _, name = field.partition(":")
        return f"{field_label(kind, labels)} of “{name}”"
    parts = []
    for part in field.split("."):
        if part.isdigit():
            parts.append(f"item {int(part) + 1}")
            continue
        if "_" not in part and not part.islower():
            parts.append(part)  # a person's name for something: keep their spelling
            continue
        words = [_WORDS.get(w, w) for w in part.split("_") if w]
        text = " ".join(words)
        parts.append(text[:1].upper() + text[1:] if text else part)
    return " › ".join(parts)


def _limit(ctx: Mapping[str, Any] | None, key: str) -> str:
    value = (ctx or {}).get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def plain_message(error: Mapping[str, Any]) -> str:
    """One pydantic (or jsonschema-like) error in words a non-programmer understands."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx")
    msg = str(error.get("msg", "is not valid"))
    if kind == "missing":
        return "is required"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type", "decimal_parsing"):
        return "must be a number"
    if kind in ("bool_parsing", "bool_type"):
        return "must be yes or no"
    if kind == "greater_than_equal":
        return f"must be at least {_limit(ctx, 'ge')}"
    if kind == "greater_than":
        return f"must be more than {_limit(ctx, 'gt')}"
    if kind == "less_than_equal":
        return f"must be at most {_limit(ctx, 'le')}"
    if kind == "less_than":
        return f"must be less than {_limit(ctx, 'lt')}"
    if kind == "string_too_short":
        n = (ctx or {}).get("min_length", 1)
        return (
            "must not be empty"
            if n == 1
            else f"must be at least {_limit(ctx, 'min_length')} characters"
        )
    if kind == "string_too_long":
        return f"is too long (at most {_limit(ctx, 'max_length')} characters)"
    if kind in ("too_short", "too_long"):
        bound = "min_length" if kind == "too_short" else "max_length"
        word = "at least" if kind == "too_short" else "at most"
        return f"must have {word} {_limit(ctx, bound)} items"
    if kind in ("literal_error", "enum"):
        expected = str((ctx or {}).get("expected", "")).replace("'", "")
        return f"must be one of: {expected}" if expected else "is not one of the choices"
    if kind == "json_invalid":
        return "is not valid JSON"
    if kind == "extra_forbidden":
        return "is not a setting this form knows"
    if kind in ("url_parsing", "url_scheme", "url_type"):
        return "is not a valid web address (it should start with http:// or https://)"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a set of named values (a JSON object)"
    if kind in ("list_type", "tuple_type", "set_type"):
        return "must be a list"
    if kind in ("string_type", "str_type"):
        return "must be text"
    if kind == "string_pattern_mismatch":
        return "is not in the expected form"
    if kind in ("value_error", "assertion_error"):
        return re.sub(r"^(Value error|Assertion failed), ", "", msg)
    return msg[:1].lower() + msg[1:] if msg[:2] != msg[:2].upper() else msg


def from_validation_errors(
    errors: Iterable[Mapping[str, Any]],
    *,
    prefix: str = "",
    labels: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Pydantic's `exc.errors()` as problems, one per distinct field and message."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if str(p) not in _HIDDEN_LOCATIONS]
        # Union members add their type name to the path ("int", "function-after[...]"); drop them.
        loc = [p for p in loc if not re.fullmatch(r"[a-z-]+\[.*\]|int|float|str|bool|none", p)]
        field = prefix + ".".join(loc) if loc else (prefix.rstrip(".") or "request")
        message = plain_message(err)
        if err.get("type") == "json_invalid":
            field = "body"
        if (field, message) in seen:
            continue
        seen.add((field, message))
        problems.append(problem(field, message, labels))
    return problems


def problem(field: str, message: str, labels: Mapping[str, str] | None = None) -> Problem:
    return {"field": field, "label": field_label(field, labels), "message": message}


def labelled(problems: Iterable[Any], labels: Mapping[str, str] | None = None) -> list[Problem]:
    """Problems built elsewhere (without a label, or plain sentences) made ready to show; other
    keys (a line number, say) are kept as they are."""
    out: list[Any] = []
    for p in problems:
        if not isinstance(p, Mapping):
            out.append({"field": "", "label": "", "message": str(p)})
            continue
        item = dict(p)
        if item.get("field") is None:
            item["field"] = ""
        item.setdefault("message", "")
        if "label" not in item:
            item["label"] = field_label(str(item["field"] or ""), labels)
            if item.get("line") is not None:
                line = f"Line {item['line']}"
                item["label"] = f"{line}, {item['label']}" if item["label"] else line
        out.append(item)
    return out


def by_field(problems: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Field → message, for a form that shows each message beside its input."""
    out: dict[str, str] = {}
    for p in problems:
        field = str(p.get("field", ""))
        message = str(p.get("message", ""))
        out[field] = f"{out[field]}; {message}" if field in out else message
    return out
