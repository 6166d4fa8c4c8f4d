"""The Studio JSONL rollout format: validation against rollout.schema.json, with each schema
error turned into a Problem a non-programmer can act on, and conversion into records."""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from app.rollouts.formats.common import (
    MAX_LABEL_CHARS,
    ParsedLine,
    Problem,
    RolloutRecord,
    build_record,
    describe,
    format_path,
    pair_external_ids,
    response_text,
    show,
    step_message,
)

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "rollout.schema.json"

# Names people reach for, mapped to the Studio field they mean.
_SYNONYMS = {
    "prompt": "input",
    "messages": "input",
    "completion": "response",
    "output": "response",
    "answer": "response",
    "reference": "references",
    "document": "target_document",
    "meta": "metadata",
    "group_id": "group",
    "model_name": "model",
}

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "object": "an object",
    "array": "a list",
    "boolean": "true or false",
}

_MISSING = {
    ("input",): "missing: every rollout needs 'input', the list of messages sent to the model",
    ("input", "role"): "missing: every message needs a 'role' (system, user, assistant or tool)",
    ("input", "content"): "missing: every message needs a 'content' text",
    ("references", "text"): "missing: a reference needs a 'text'",
}

RESPONSE_MISSING = (
    "missing: every rollout needs a 'response' (or 'responses' with two answers for a "
    "preference pair)"
)
RESPONSE_AND_RESPONSES = "give either 'response' or 'responses' (a preference pair), not both"
IDENTICAL_PAIR = "the two responses of the preference pair are identical"


@functools.cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


def parse_row(row: dict[str, Any], line_no: int) -> ParsedLine | list[Problem]:
    problems = validate(row, line_no)
    return problems if problems else build(row, line_no)


def validate(row: dict[str, Any], line_no: int) -> list[Problem]:
    if plainly_valid(row):
        return []
    problems: list[Problem] = []
    for error in _validator().iter_errors(row):
        problems.extend(_translate(error, line_no))
    return problems


_FIELDS = frozenset(
    {
        "id",
        "input",
        "target_document",
        "references",
        "reference_answer",
        "response",
        "responses",
        "model",
        "checkpoint",
        "step",
        "group",
        "metadata",
    }
)
_ROLES = frozenset({"system", "user", "assistant", "tool"})


def plainly_valid(row: dict[str, Any]) -> bool:
    """A fast check for the common, simple row; False sends the row to the full schema.

    Running jsonschema costs about 0.2 ms a line, ten times the rest of parsing, so rows
    this accepts skip it. It must never accept what the schema rejects (a test checks it);
    rejecting a valid row only costs time.
    """
    if not row.keys() <= _FIELDS or ("response" in row) == ("responses" in row):
        return False
    messages = row.get("input")
    if type(messages) is not list or not messages:
        return False
    for message in messages:
        if type(message) is not dict or len(message) != 2:
            return False
        role, content = message.get("role"), message.get("content")
        if type(role) is not str or role not in _ROLES or type(content) is not str:
            return False
    if "response" in row:
        if type(row["response"]) is not str:
            return False
    else:
        pair = row["responses"]
        if type(pair) is not list or len(pair) != 2 or not all(type(x) is str for x in pair):
            return False
    external_id = row.get("id")
    if external_id is not None and not (
        (type(external_id) is str and 0 < len(external_id) <= MAX_LABEL_CHARS - 2)
        or type(external_id) is int
    ):
        return False
    for key in ("model", "checkpoint", "group"):
        value = row.get(key)
        if value is not None and (type(value) is not str or len(value) > MAX_LABEL_CHARS):
            return False
    target, step, metadata = row.get("target_document"), row.get("step"), row.get("metadata")
    if target is not None and type(target) is not str:
        return False
    if step is not None and (type(step) is not int or step < 0):
        return False
    if metadata is not None and type(metadata) is not dict:
        return False
    references = row.get("references")
    if references is None:
        return True
    if type(references) is not list:
        return False
    for reference in references:
        if type(reference) is str:
            continue
        if type(reference) is not dict or not reference.keys() <= {"title", "text"}:
            return False
        title = reference.get("title")
        if type(reference.get("text")) is not str or (title is not None and type(title) is not str):
            return False
    return True


def build(row: dict[str, Any], line_no: int) -> ParsedLine | list[Problem]:
    """Records from a row that passed validate()."""
    external_id = row.get("id")
    if isinstance(external_id, int):
        external_id = str(external_id)

    def record(external_id: str | None, response: str) -> RolloutRecord:
        step = row.get("step")
        return build_record(
            line_no=line_no,
            external_id=external_id,
            input_messages=[dict(message) for message in row["input"]],
            target_document=row.get("target_document"),
            reference_documents=[_reference(item) for item in row.get("references") or []],
            reference_answer=row.get("reference_answer"),
            response=response,
            model=row.get("model"),
            checkpoint=row.get("checkpoint"),
            step=int(step) if step is not None else None,
            group=row.get("group"),
            metadata=dict(row.get("metadata") or {}),
        )

    if "responses" not in row:
        return ParsedLine(line_no, [record(external_id, response_text(row["response"]))], False)
    first, second = (response_text(value) for value in row["responses"])
    if first == second:
        return [Problem(line_no, "responses", IDENTICAL_PAIR)]
    id_a, id_b = pair_external_ids(external_id)
    return ParsedLine(line_no, [record(id_a, first), record(id_b, second)], pair=True)


def _reference(item: str | dict[str, Any]) -> dict[str, str]:
    if isinstance(item, str):
        return {"title": "", "text": item}
    return {"title": item.get("title") or "", "text": item["text"]}


# ---------------------------------------------------------------------------- error wording


def _translate(error: ValidationError, line_no: int) -> Iterable[Problem]:
    path = list(error.absolute_path)
    field = format_path(path) or None
    keyword = error.validator
    instance = error.instance
    # Field names without list indexes, to pick a wording: ('input', 'role').
    shape = tuple(part for part in path if isinstance(part, str))

    if keyword == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        for key in instance:
            if key not in allowed:
                yield Problem(line_no, format_path([*path, key]), _unknown(key, allowed, path))
    elif keyword == "required":
        for name in error.validator_value:
            if name not in instance:
                message = _MISSING.get((*shape, name), "missing: this field is required")
                yield Problem(line_no, format_path([*path, name]), message)
    elif keyword == "anyOf" and not path:
        yield Problem(line_no, "response", RESPONSE_MISSING)
    elif keyword == "not" and not path:
        yield Problem(line_no, "responses", RESPONSE_AND_RESPONSES)
    elif keyword == "anyOf":
        yield from _translate_any_of(error, line_no)
    else:
        yield Problem(line_no, field, _message(keyword, error, shape, path))


def _message(keyword: Any, error: ValidationError, shape: tuple[str, ...], path: list[Any]) -> str:
    instance = error.instance
    if shape and shape[0] == "step" and keyword in ("type", "minimum"):
        return step_message(instance)
    if keyword == "type":
        if shape and shape[0] in ("response", "responses"):
            return f"expected the model's answer as text, got {describe(instance)}"
        if shape == ("input",) and len(path) == 2:
            return (
                'expected a message like {"role": "user", "content": "..."}, got '
                f"{describe(instance)}"
            )
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        words = " or ".join(_TYPE_WORDS[name] for name in names if name in _TYPE_WORDS)
        return f"expected {words}, got {describe(instance)}"
    if keyword == "enum":
        return f"expected one of {', '.join(map(str, error.validator_value))}, got {show(instance)}"
    if keyword == "minItems" and shape == ("input",):
        return "expected at least one message, got an empty list"
    if keyword in ("minItems", "maxItems") and shape == ("responses",):
        return f"a preference pair needs exactly 2 responses, got {len(instance)}"
    if keyword == "minLength":
        return "expected a non-empty id" if shape == ("id",) else "expected a non-empty value"
    if keyword == "maxLength":
        return f"expected at most {error.validator_value} characters, got {len(instance)}"
    return str(error.message)


def _translate_any_of(error: ValidationError, line_no: int) -> Iterable[Problem]:
    """A reference is text or an object: report the errors of the branch the value tried."""
    for branch in error.context or []:
        branch_schema = error.validator_value[branch.relative_schema_path[0]]
        if _type_matches(branch_schema.get("type"), error.instance):
            yield from _translate(branch, line_no)
    if not any(
        _type_matches(option.get("type"), error.instance) for option in error.validator_value
    ):
        yield Problem(
            line_no,
            format_path(list(error.absolute_path)),
            "expected text, or an object with a 'title' and a 'text', got "
            f"{describe(error.instance)}",
        )


def _type_matches(expected: Any, value: Any) -> bool:
    if expected == "string":
        return isinstance(value, str)
    if expected == "object":
        return isinstance(value, dict)
    return False


def _unknown(key: str, allowed: list[str], path: list[Any]) -> str:
    where = "field" if not path else "field in " + _container(path)
    guess = _SYNONYMS.get(key) if not path else None
    if guess is None:
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)
        guess = close[0] if close else None
    hint = f" (did you mean '{guess}'?)" if guess else ""
    if not path and key == "messages":
        hint = (
            " (this looks like a Nova or OpenAI chat row: import the file in that format, or "
            "rename 'messages' to 'input' and move the last answer to 'response')"
        )
    return f"unknown {where}{hint}; the allowed fields are: {', '.join(allowed)}"


def _container(path: list[Any]) -> str:
    names = [part for part in path if isinstance(part, str)]
    return {"input": "a message", "references": "a reference"}.get(names[0], f"'{names[0]}'")
