"""Shared pieces of rollout import: the records a file becomes, the problems it reports,
content hashing, and the wording helpers every format uses for its messages."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Problems reported for one line beyond this are summarised, so one broken line with
# thousands of unknown keys cannot flood the import report.
MAX_PROBLEMS_PER_LINE = 10

# The rollout table stores external ids, model, checkpoint and group in 200-character columns.
MAX_LABEL_CHARS = 200


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One policy output for one input, ready to be stored."""

    external_id: str
    content_hash: str
    input_messages: list[dict[str, Any]]
    target_document: str | None
    reference_documents: list[dict[str, str]]
    reference_answer: Any | None
    response: str
    model: str | None
    checkpoint: str | None
    step: int | None
    group_key: str | None
    metadata: dict[str, Any]
    line_no: int


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """A line that parsed cleanly: one record, or two for a preference pair (A then B)."""

    line_no: int
    records: list[RolloutRecord]
    pair: bool


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one line (or CSV row); the rest of the file is still read."""

    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class FileRejected(Exception):
    """The whole file cannot be imported (empty, binary, wrong encoding, wrong shape, too big)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


# ---------------------------------------------------------------------------- hashing


def canonical_json(value: Any) -> bytes:
    """Key-sorted, whitespace-free, ASCII-escaped JSON: equal values give equal bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def compute_content_hash(
    *,
    input_messages: list[dict[str, Any]],
    target_document: str | None,
    reference_documents: list[dict[str, str]],
    reference_answer: Any | None,
    response: str,
    model: str | None,
    checkpoint: str | None,
    step: int | None,
) -> str:
    """SHA-256 of what makes a rollout this rollout: its prompt, its answer and its provenance.

    Free metadata and the group are left out, so re-importing a file with an added metadata
    column still recognises the same rollouts. Provenance is in: the same answer at step 0 and
    at step 400 are two drift samples.
    """
    payload = {
        "v": 1,
        "input": input_messages,
        "target_document": target_document,
        "references": reference_documents,
        "reference_answer": reference_answer,
        "response": response,
        "model": model,
        "checkpoint": checkpoint,
        "step": step,
    }
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def derive_group_key(
    input_messages: list[dict[str, Any]],
    target_document: str | None,
    reference_documents: list[dict[str, str]],
) -> str:
    """Group of generations for the same prompt: the prompt is the messages plus the documents
    (a contract-review prompt is the same template for every contract)."""
    prompt = {"input": input_messages, "target": target_document, "refs": reference_documents}
    return "auto:" + hashlib.sha256(canonical_json(prompt)).hexdigest()[:16]


def derive_external_id(record: RolloutRecord) -> str:
    """The id of a rollout that came without one: stable for the same content."""
    return external_id_from_hash(record.content_hash)


def external_id_from_hash(content_hash: str) -> str:
    return "sha256:" + content_hash[:16]


def build_record(
    *,
    line_no: int,
    external_id: str | None,
    input_messages: list[dict[str, Any]],
    target_document: str | None,
    reference_documents: list[dict[str, str]],
    reference_answer: Any | None,
    response: str,
    model: str | None,
    checkpoint: str | None,
    step: int | None,
    group: str | None,
    metadata: dict[str, Any],
) -> RolloutRecord:
    content_hash = compute_content_hash(
        input_messages=input_messages,
        target_document=target_document,
        reference_documents=reference_documents,
        reference_answer=reference_answer,
        response=response,
        model=model,
        checkpoint=checkpoint,
        step=step,
    )
    return RolloutRecord(
        external_id=external_id if external_id is not None else external_id_from_hash(content_hash),
        content_hash=content_hash,
        input_messages=input_messages,
        target_document=target_document,
        reference_documents=reference_documents,
        reference_answer=reference_answer,
        response=response,
        model=model,
        checkpoint=checkpoint,
        step=step,
        group_key=group
        if group is not None
        else derive_group_key(input_messages, target_document, reference_documents),
        metadata=metadata,
        line_no=line_no,
    )


def pair_external_ids(external_id: str | None) -> tuple[str | None, str | None]:
    """Ids of the two halves of a preference pair given one id for the line."""
    if external_id is None:
        return None, None  # each half derives its own id from its own content
    return f"{external_id}:a", f"{external_id}:b"


def response_text(value: Any) -> str:
    """A JSON response is stored as its JSON text (key order kept as written)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------------- wording


def format_path(parts: Sequence[str | int]) -> str:
    """['input', 1, 'role'] -> "input[1].role"."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def show(value: Any, limit: int = 40) -> str:
    """A short quotation of a value for a message: 'text' in quotes, JSON for the rest."""
    if isinstance(value, str):
        text = value if len(value) <= limit else value[:limit] + "…"
        return f"'{text}'"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def describe(value: Any) -> str:
    """What a value is, in words, with a quotation: "the number 42", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {show(value)}"
    if isinstance(value, str):
        return f"the text {show(value)}" if value else "empty text"
    if isinstance(value, list):
        return f"the list {show(value)}" if value else "an empty list"
    if isinstance(value, dict):
        return f"the object {show(value)}" if value else "an empty object"
    return show(value)


def kind(value: Any) -> str:
    """What a value is, in words, without quoting it: "a list"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def step_message(value: Any) -> str:
    return f"expected a whole number 0 or more, got {describe(value)}"


def check_step(value: Any) -> tuple[int | None, str | None]:
    """(step, None) when valid, (None, message) when not; null means no step."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return None, step_message(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value >= 0:
        return value, None
    return None, step_message(value)


def check_label(value: Any) -> str | None:
    """Message for an optional short text (model, checkpoint, group) that is not one."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"expected text, got {describe(value)}"
    if len(value) > MAX_LABEL_CHARS:
        return f"expected at most {MAX_LABEL_CHARS} characters, got {len(value)}"
    return None


def check_external_id(value: Any) -> tuple[str | None, str | None]:
    """(id, None) when valid; whole numbers are accepted and kept as their decimal text."""
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None, f"expected text or a whole number, got {describe(value)}"
    if not value.strip():
        return None, "expected a non-empty id"
    if len(value) > MAX_LABEL_CHARS - 2:  # room for the ":a"/":b" of a preference pair
        return None, f"expected at most {MAX_LABEL_CHARS - 2} characters, got {len(value)}"
    return value, None


def cap_problems(problems: list[Problem]) -> list[Problem]:
    """Drop duplicates and summarise beyond MAX_PROBLEMS_PER_LINE (once, where lines are read)."""
    unique: list[Problem] = []
    seen: set[tuple[str | None, str]] = set()
    for problem in problems:
        key = (problem.field, problem.message)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    if len(unique) <= MAX_PROBLEMS_PER_LINE:
        return unique
    rest = len(unique) - MAX_PROBLEMS_PER_LINE
    kept = unique[:MAX_PROBLEMS_PER_LINE]
    return [*kept, Problem(kept[0].line, None, f"and {rest} more problems on this line")]
