"""Find the JSON answer inside a judge's reply, and word the one repair request when there is none.

STANDARD LIBRARY ONLY: this file is copied verbatim into exported reward functions.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["extract_json", "repair_instructions"]

# Reasoning sections may hold drafts of the answer; the answer is what follows them.
_THINKING = re.compile(
    r"<think>.*?</think>|<thinking>.*?</thinking>|<\|begin_of_thought\|>.*?<\|end_of_thought\|>",
    re.DOTALL | re.IGNORECASE,
)
_SOLUTION = re.compile(
    r"<\|begin_of_solution\|>(.*?)(?:<\|end_of_solution\|>|\Z)", re.DOTALL | re.IGNORECASE
)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_MAX_REASON = 160


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _strip_reasoning(text: str) -> str:
    solutions = _SOLUTION.findall(text)
    if solutions:
        text = solutions[-1]
    text = _THINKING.sub(" ", text)
    # A thinking block whose opening tag is missing (only the closing tag emitted) still
    # precedes the answer.
    for closing in ("</think>", "</thinking>", "<|end_of_thought|>"):
        if closing in text:
            text = text.rsplit(closing, 1)[1]
    return text.strip().lstrip("\ufeff")


def _whole(text: str) -> Any | None:
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict | list) else None


def _scan(text: str) -> tuple[Any | None, str | None]:
    """Top-level JSON objects/arrays embedded in prose: the last object wins, else the last array.

    Returns (value, None) or (None, reason for the most promising failure).
    """
    objects: list[Any] = []
    arrays: list[Any] = []
    first_error: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if ch not in "{[":
            i += 1
            continue
        try:
            value, end = _DECODER.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            if first_error is None and ch == "{":
                first_error = _describe(exc, text)
            i += 1
            continue
        (objects if isinstance(value, dict) else arrays).append(value)
        i = end
    if objects:
        return objects[-1], None
    if arrays:
        return arrays[-1], None
    return None, first_error


def _describe(exc: json.JSONDecodeError, text: str) -> str:
    tail = text[exc.pos :].strip()
    if not tail or tail in "}]" or exc.msg.startswith("Unterminated string"):
        return "JSON is incomplete (the reply looks cut off)"
    return f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


def extract_json(text: str) -> Any:
    """Return the JSON object or array a judge replied with.

    Accepts bare JSON, JSON in ``` fences, JSON with prose before or after, and replies with
    reasoning blocks (<think>, <|begin_of_thought|>, <|begin_of_solution|>). Raises ValueError with
    a short reason when there is no usable object or array.
    """
    if not isinstance(text, str):
        raise ValueError(f"reply is {type(text).__name__}, not text")
    body = _strip_reasoning(text)
    if not body:
        raise ValueError("empty reply")
    try:
        whole = _whole(body)
    except ValueError as exc:
        raise ValueError(str(exc)[:_MAX_REASON]) from None
    if whole is not None:
        return whole

    reason: str | None = None
    try:
        fences = _FENCE.findall(body)
        # Fenced blocks are the model's own marking of the answer; prefer the last usable one.
        for _lang, block in reversed(fences):
            block = block.strip()
            if not block:
                continue
            value = _whole(block)
            if value is not None:
                return value
        for _lang, block in reversed(fences):
            value, why = _scan(block)
            if value is not None:
                return value
            reason = reason or why
        value, why = _scan(body)
    except ValueError as exc:  # a non-finite constant inside an otherwise valid value
        raise ValueError(str(exc)[:_MAX_REASON]) from None
    if value is not None:
        return value
    reason = reason or why
    raise ValueError((reason or "no JSON object or array found in the reply")[:_MAX_REASON])


def repair_instructions(error: str, schema: dict[str, Any] | None) -> str:
    """The follow-up user message for the single repair attempt after an unusable reply."""
    reason = " ".join(str(error).split())[:_MAX_REASON] or "it was not valid JSON"
    lines = [
        f"Your previous reply could not be used: {reason}.",
        "Reply again with only the corrected JSON: no prose, no explanation, no code fences.",
    ]
    if schema is not None:
        lines.append("It must match this JSON Schema:")
        lines.append(json.dumps(schema, separators=(",", ":"), sort_keys=True))
    return "\n".join(lines)
