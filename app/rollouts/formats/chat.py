"""Chat-style rows whose response is the conversation's last answer: Amazon Nova RFT rows
(INTERFACES.md §1.2/§1.5) and OpenAI chat rows ({"messages": [...]} with an optional
"completion")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.rollouts.formats.common import (
    ParsedLine,
    Problem,
    build_record,
    check_external_id,
    check_label,
    check_step,
    describe,
    format_path,
    response_text,
    show,
)

# Text parts come as {"type": "text", "text": ...}; OpenAI's Responses API says input_text.
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})
# Message keys kept on the stored input messages besides role and content.
_KEPT_MESSAGE_KEYS = ("name", "tool_call_id", "tool_calls")


@dataclass(frozen=True, slots=True)
class ChatFlavor:
    label: str  # how messages name the format
    roles: Mapping[str, str]  # role as written -> role stored
    listed_roles: tuple[str, ...]  # roles named when one is wrong
    message_keys: frozenset[str]
    # Both flavours read an answer given in "completion" (so a file detected from a first line
    # without it still reads later lines with it); only OpenAI's messages suggest it.
    suggest_completion: bool


NOVA = ChatFlavor(
    label="Nova",
    roles={
        "system": "system",
        "user": "user",
        "assistant": "assistant",
        "tool": "tool",
        # Accepted by AWS's dataset validator and console templates.
        "nova_assistant": "assistant",
        "bot": "assistant",
        "developer": "system",
    },
    listed_roles=("system", "user", "assistant", "tool", "nova_assistant"),
    message_keys=frozenset({"role", "content", "tool_calls", "tool_call_id", "name"}),
    suggest_completion=False,
)

OPENAI = ChatFlavor(
    label="OpenAI chat",
    roles={
        "system": "system",
        "developer": "system",
        "user": "user",
        "assistant": "assistant",
        "tool": "tool",
    },
    listed_roles=("system", "developer", "user", "assistant", "tool"),
    message_keys=frozenset(
        {"role", "content", "name", "tool_calls", "tool_call_id", "weight", "refusal"}
    ),
    suggest_completion=True,
)

Report = Callable[[str | None, str], None]  # (field, message) -> records a problem

# Top-level keys with a meaning; every other key is kept in metadata.
_RECOGNISED = frozenset(
    {"id", "messages", "reference_answer", "metadata", "model", "checkpoint", "step", "group"}
)


def parse_nova_row(row: dict[str, Any], line_no: int) -> ParsedLine | list[Problem]:
    return parse_chat_row(row, line_no, NOVA)


def parse_openai_row(row: dict[str, Any], line_no: int) -> ParsedLine | list[Problem]:
    return parse_chat_row(row, line_no, OPENAI)


def parse_chat_row(
    row: dict[str, Any], line_no: int, flavor: ChatFlavor
) -> ParsedLine | list[Problem]:
    problems: list[Problem] = []

    def problem(field: str | None, message: str) -> None:
        problems.append(Problem(line_no, field, message))

    raw_messages = row.get("messages")
    messages: list[dict[str, Any]] = []
    if "messages" not in row:
        problem(
            "messages",
            "missing: every row needs 'messages', the conversation ending with the model's answer",
        )
    elif not isinstance(raw_messages, list):
        problem("messages", f"expected a list of messages, got {describe(raw_messages)}")
    else:
        for index, raw in enumerate(raw_messages):
            stored = _message(raw, ["messages", index], flavor, problem)
            if stored is not None:
                messages.append(stored)

    external_id, wrong = check_external_id(row.get("id"))
    if wrong:
        problem("id", wrong)
    for key in ("model", "checkpoint", "group"):
        wrong = check_label(row.get(key))
        if wrong:
            problem(key, wrong)
    step, wrong = check_step(row.get("step"))
    if wrong:
        problem("step", wrong)
    metadata_in = row.get("metadata")
    if metadata_in is not None and not isinstance(metadata_in, dict):
        problem("metadata", f"expected an object, got {describe(metadata_in)}")
        metadata_in = None

    completion_given = "completion" in row
    if completion_given and row["completion"] is None:
        problem("completion", "expected the model's answer as text, got null")
    if problems or not isinstance(raw_messages, list):
        return problems

    split = _split_answer(row, raw_messages, messages, flavor, completion_given)
    if isinstance(split, Problem):
        return [Problem(line_no, split.field, split.message)]
    input_messages, response = split

    metadata = dict(metadata_in or {})
    reference_answer = row.get("reference_answer")
    if reference_answer is None:
        # Nova documents both places (INTERFACES.md §1.2); top level wins.
        reference_answer = metadata.pop("reference_answer", None)
    for key, value in row.items():
        if key not in _RECOGNISED and key != "completion":
            metadata[key] = value  # Nova passes extra keys through to the reward function

    record = build_record(
        line_no=line_no,
        external_id=external_id,
        input_messages=input_messages,
        target_document=None,
        reference_documents=[],
        reference_answer=reference_answer,
        response=response,
        model=row.get("model"),
        checkpoint=row.get("checkpoint"),
        step=step,
        group=row.get("group"),
        metadata=metadata,
    )
    return ParsedLine(line_no, [record], pair=False)


def _split_answer(
    row: dict[str, Any],
    raw_messages: list[Any],
    messages: list[dict[str, Any]],
    flavor: ChatFlavor,
    completion_given: bool,
) -> tuple[list[dict[str, Any]], str] | Problem:
    """(input messages, response), or the problem (without a line) that prevents the split."""
    if completion_given:
        if not messages:
            return Problem(
                None, "messages", "expected at least one message before the completion, got none"
            )
        return messages, response_text(row["completion"])
    last = len(messages) - 1
    if last < 0:
        return Problem(
            None,
            "messages",
            "expected the prompt messages followed by the model's answer, got an empty list",
        )
    if messages[last]["role"] != "assistant":
        also = " (or give the answer in 'completion')" if flavor.suggest_completion else ""
        return Problem(
            None,
            f"messages[{last}].role",
            f"the last message must be the model's answer (role 'assistant'){also}, got "
            f"{show(raw_messages[last]['role'])}; a row without an answer is a training prompt, "
            "not a rollout",
        )
    if last == 0:
        return Problem(
            None,
            "messages",
            "expected the prompt messages followed by the model's answer, got only the answer",
        )
    content = messages[last]["content"]
    refusal = raw_messages[last].get("refusal")
    if not content and isinstance(refusal, str):
        content = refusal  # OpenAI puts a refusal's text beside an empty content
    return messages[:last], content


def _message(
    raw: Any, path: list[str | int], flavor: ChatFlavor, report: Report
) -> dict[str, Any] | None:
    """The message as stored ({role, content} and tool keys), or None after reporting."""
    field = format_path(path)
    if not isinstance(raw, dict):
        report(
            field,
            f'expected a message like {{"role": "user", "content": "..."}}, got {describe(raw)}',
        )
        return None
    ok = True
    for key in raw:
        if key not in flavor.message_keys:
            allowed = ", ".join(sorted(flavor.message_keys))
            report(
                format_path([*path, key]),
                f"unknown field in a message; the allowed fields are: {allowed}",
            )
            ok = False
    role = raw.get("role")
    if "role" not in raw:
        report(f"{field}.role", f"missing: every message needs a 'role' ({_roles(flavor)})")
        ok = False
    elif not isinstance(role, str) or role not in flavor.roles:
        report(f"{field}.role", f"expected one of {_roles(flavor)}, got {show(role)}")
        ok = False
    content: str | None = ""
    if "content" not in raw:
        if not raw.get("tool_calls"):
            report(f"{field}.content", "missing: every message needs a 'content' text")
            ok = False
    else:
        content = _content_text(raw["content"], [*path, "content"], report)
        ok = ok and content is not None
    if not ok or content is None or not isinstance(role, str):
        return None
    message: dict[str, Any] = {"role": flavor.roles[role], "content": content}
    for key in _KEPT_MESSAGE_KEYS:
        if raw.get(key) is not None:
            message[key] = raw[key]
    return message


def _content_text(value: Any, path: list[str | int], report: Report) -> str | None:
    """Content as one text: a string, or text parts joined by line breaks."""
    if value is None:
        return ""  # an assistant turn that only calls tools has no content
    if isinstance(value, str):
        return value
    parts = value if isinstance(value, list) else [value] if isinstance(value, dict) else None
    if parts is None:
        report(format_path(path), f"expected text, got {describe(value)}")
        return None
    texts: list[str] = []
    for index, part in enumerate(parts):
        where = format_path([*path, index]) if isinstance(value, list) else format_path(path)
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            report(where, f'expected a text part like {{"text": "..."}}, got {describe(part)}')
            return None
        part_type = part.get("type", "text")
        if part_type not in _TEXT_PART_TYPES:
            report(
                where, f"only text content can be imported, got a part of type {show(part_type)}"
            )
            return None
        text = part.get("text")
        if not isinstance(text, str):
            report(f"{where}.text", f"expected text, got {describe(text)}")
            return None
        texts.append(text)
    return "\n".join(texts)


def _roles(flavor: ChatFlavor) -> str:
    return ", ".join(flavor.listed_roles)
