"""Render the frozen judge prompt for one sample, exactly as the studio's `render_prompt` does.

Runs inside exported reward functions: jinja2 (the studio's bounded sandbox) and the standard
library only. The rubric definition arrives as a plain dict (in the model's field order) and the
output schema as the text the studio shows the judge, so the rendered prompt is identical byte for
byte.
"""

from __future__ import annotations

import json
from typing import Any

from .reference_answer import reference_answer_text
from .template_sandbox import MAX_RENDERED_CHARS, make_environment


class PromptError(Exception):
    """A template failed to render for this sample."""


# The studio's bounded sandbox (template_sandbox.py, copied verbatim): same text, same limits.
_ENV = make_environment()


def text_of(value: Any) -> str:
    """Plain text of a value: strings as they are, anything else as pretty JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def message_text(content: Any) -> str:
    """Text of a message's content as the studio shows it: a list of parts is joined."""
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    return text_of(content)


def content_text(content: Any) -> str:
    """Text of a chat message's content in any shape trainers send: a string, a list of
    {"type": "text", "text": ...} parts, or a {"text": ...} object."""
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return message_text(content)


def reference_entry(index: int, ref: Any) -> dict[str, Any]:
    """A reference document as {title, text}; plain strings get a numbered title."""
    if isinstance(ref, dict):
        return {"title": str(ref.get("title") or f"Reference {index + 1}"), "text": ref.get("text")}
    return {"title": f"Reference {index + 1}", "text": str(ref)}


def _criterion_range(criterion: dict[str, Any]) -> tuple[int, int]:
    if criterion["type"] == "boolean":
        return 0, 1
    levels = criterion["levels"]
    return int(levels[0]["value"]), int(levels[-1]["value"])


def template_variables(
    definition: dict[str, Any], output_schema_text: str, sample: dict[str, Any]
) -> dict[str, Any]:
    """The variables a template sees (the studio's TEMPLATE_VARIABLES), for one sample.

    `sample` holds input_messages, response, target_document, references, reference_answer and
    metadata, as the reward engine normalised them.
    """
    criteria = []
    for position, criterion in enumerate(definition["criteria"], start=1):
        low, high = _criterion_range(criterion)
        criteria.append(criterion | {"position": position, "min": low, "max": high})
    messages = [
        {"role": str(m.get("role", "user")), "content": message_text(m.get("content"))}
        for m in sample.get("input_messages") or []
        if isinstance(m, dict)
    ]
    entries = [reference_entry(i, r) for i, r in enumerate(sample.get("references") or [])]
    references = [
        {"title": str(r.get("title", "")), "text": text_of(r.get("text"))} for r in entries
    ]
    return {
        "input_messages": messages,
        "prompt": message_text(
            next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        ),
        "target_document": sample.get("target_document") or "",
        "references": references,
        "response": sample.get("response") or "",
        "response_a": "",
        "response_b": "",
        "reference_answer": reference_answer_text(sample.get("reference_answer")),
        "metadata": dict(sample.get("metadata") or {}),
        "criteria": criteria,
        "edge_case_rules": list(definition.get("edge_case_rules") or []),
        "desired_behaviours": list(definition.get("desired_behaviours") or []),
        "discouraged_behaviours": list(definition.get("discouraged_behaviours") or []),
        "examples": definition.get("examples") or [],
        "output_schema": output_schema_text,
        "rubric": definition,
    }


_COMPILED: dict[str, Any] = {}


def _render(part: str, source: str, variables: dict[str, Any]) -> str:
    template = _COMPILED.get(source)
    if template is None:
        template = _ENV.from_string(source)
        _COMPILED[source] = template
    chunks: list[str] = []
    size = 0
    try:
        for chunk in template.generate(variables):
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise PromptError(f"{part} template: the prompt exceeds {MAX_RENDERED_CHARS} chars")
            chunks.append(chunk)
    except PromptError:
        raise
    except Exception as exc:  # any failure inside template code fails this sample only
        raise PromptError(f"{part} template: {type(exc).__name__}: {exc}") from None
    return "".join(chunks)


def render(
    definition: dict[str, Any],
    system_template: str,
    user_template: str,
    output_schema_text: str,
    sample: dict[str, Any],
) -> tuple[str, str]:
    """(system, user) prompt text for one sample; raises PromptError."""
    variables = template_variables(definition, output_schema_text, sample)
    return (
        _render("system", system_template, variables),
        _render("user", user_template, variables),
    )
