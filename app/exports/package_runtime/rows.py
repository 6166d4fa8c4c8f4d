"""Training rows as reward samples: the messages, response, reference answer, documents and
metadata a trainer's row holds, read the same way for every training stack. Part of the runtime
copied into exported packages: it imports nothing of the studio."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from . import components, prompt

ASSISTANT_ROLES = ("assistant", "nova_assistant")
# Keys of a training row the reward reads itself; the rest of `metadata` is the template's.
CONSUMED_KEYS = ("reference_answer", "target_document", "references")


def lookup_field(row: dict[str, Any], key: str) -> Any:
    """A custom field at the top level of a training row first, then under `metadata`."""
    if row.get(key) is not None:
        return row[key]
    metadata = row.get("metadata")
    return metadata.get(key) if isinstance(metadata, dict) else None


def _template_metadata(row: dict[str, Any]) -> dict[str, Any]:
    metadata = row.get("metadata")
    if not isinstance(metadata, dict):
        return {}
    return {k: v for k, v in metadata.items() if k not in CONSUMED_KEYS}


def _references(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def split_messages(messages: Any) -> tuple[list[dict[str, Any]], str]:
    """(input messages, response): the response is the last assistant message's text."""
    if not isinstance(messages, list):
        raise ValueError("messages must be a list")
    normalized = []
    for message in messages:
        if not isinstance(message, dict):
            raise ValueError("each message must be an object")
        normalized.append(
            {
                "role": str(message.get("role") or "user"),
                "content": prompt.content_text(message.get("content")),
            }
        )
    for index in range(len(normalized) - 1, -1, -1):
        if normalized[index]["role"] in ASSISTANT_ROLES:
            return normalized[:index], normalized[index]["content"]
    return normalized, ""


def sample_from_row(
    row: dict[str, Any], document_location: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A training row with its generated response (Nova RFT shape A or B) as a reward sample."""
    if not isinstance(row, dict):
        raise ValueError(f"a sample must be an object, got {type(row).__name__}")
    input_messages, response = split_messages(row.get("messages"))
    return build_sample(input_messages, response, row, document_location)


def finite(value: float, fallback: float) -> float:
    return value if isinstance(value, int | float) and math.isfinite(value) else fallback


def justification_text(answer: Any) -> str:
    """The judge's justifications, one line per criterion (and item): "key: text"."""
    lines: list[str] = []

    def walk(value: Any, key: str, prefix: str) -> None:
        if isinstance(value, dict):
            text = value.get("justification")
            if isinstance(text, str) and text.strip():
                lines.append(f"{prefix}{key}: {' '.join(text.split())}" if key else text.strip())
            item = value.get("item_index")
            inner = f"item {item}, " if isinstance(item, int) else prefix
            for child_key, child in value.items():
                if child_key != "justification":
                    walk(
                        child, child_key if child_key not in ("criteria", "comments") else "", inner
                    )
        elif isinstance(value, list):
            for child in value:
                walk(child, key, prefix)

    walk(answer, "", "")
    return "\n".join(lines)


# Response endings trainers leave on decoded text (OpenRLHF decodes with special tokens kept).
END_MARKERS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "</s>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>",
)
# Keys of a label object that make it a training row rather than the reference answer itself.
ROW_KEYS = ("reference_answer", "messages", "prompt", "target_document", "references")


def strip_end_markers(text: str) -> str:
    stripped = text.rstrip()
    changed = True
    while changed:
        changed = False
        for marker in END_MARKERS:
            if stripped.endswith(marker):
                stripped = stripped[: -len(marker)].rstrip()
                changed = True
    return stripped


def messages_of(value: Any) -> list[dict[str, Any]]:
    """Input messages from a prompt in any shape trainers pass: text, or a list of messages
    (also a numpy array of them, as verl's non-tensor batch holds)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    input_messages, _ = split_messages(list(value))
    return input_messages


def build_sample(
    input_messages: list[dict[str, Any]],
    response: str,
    row: dict[str, Any],
    document_location: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A reward sample from a trainer's row (custom fields at the top level or in metadata).
    `grounding_document` is the document the grounding check reads: where the project said it is
    (the row's target_document, a custom field, or the user message between markers)."""
    target = lookup_field(row, "target_document")
    target = target if isinstance(target, str) else None
    return {
        "input_messages": input_messages,
        "response": response,
        "reference_answer": lookup_field(row, "reference_answer"),
        "target_document": target,
        "grounding_document": components.document_text(
            document_location,
            target_document=target,
            input_messages=input_messages,
            lookup=lambda key: lookup_field(row, key),
        ),
        "references": _references(lookup_field(row, "references")),
        "metadata": _template_metadata(row),
    }


def label_row(label: Any) -> dict[str, Any]:
    value = label
    if isinstance(label, str) and label.strip().startswith("{"):
        try:
            value = json.loads(label)
        except ValueError:
            value = label
    if isinstance(value, dict) and any(key in value for key in ROW_KEYS):
        return value
    return {"reference_answer": label}


def row_builder(row: Any, document_location: dict[str, Any] | None) -> Callable[[], dict[str, Any]]:
    return lambda: sample_from_row(row, document_location)


def column_at(values: Any, index: int) -> Any:
    if isinstance(values, list | tuple):
        return values[index] if index < len(values) else None
    return None
