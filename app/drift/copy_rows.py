"""PostgreSQL COPY rows of drift records, built where the lines are parsed.

A large drift import parses its lines in a pool of processes (app/drift/jobs.py). Sending each
parsed record back to the importing process (pickled, then turned into two COPY rows there by
psycopg, value by value) was most of that process's work, and that process is the one that
also feeds the database. So the pool processes build the rows themselves, as the bytes of
COPY's text format, and send back a `PackedLine`: those bytes, what the import needs to find
duplicates in a batch (record id, content hash), the step (the run's step range) and the line's
text (to parse it again in the rare batch that meets records already stored, which goes the
checked way with whole records).

Both rows are built without the rollout id, which the importing process takes from the
database's sequence: the rollout row is missing its first column (`id`), and the sample row's
first column is `rollout_id`, so each becomes a row by putting the id in front. Pure: no
database, no web.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from app.core.clock import utcnow
from app.drift.records import DriftLine, DriftOptions, DriftRecord, parse_line
from app.rollouts.columns import ROLLOUT_COLUMNS
from app.rollouts.formats.common import Problem
from app.rollouts.formats.lines import RawLine

# The COPY column lists the rows are built for (the id in front comes from the importer).
ROLLOUT_COPY_COLUMNS = ("id", *ROLLOUT_COLUMNS)
# The drift_sample columns the import writes (app/drift/bulk.py); COPY rows put rollout_id first.
SAMPLE_COLUMNS = (
    "project_id",
    "training_run_id",
    "record_id",
    "content_hash",
    "rollout_id",
    "step",
    "step_mapped",
    "recorded_at",
    "source",
    "bundle_hash",
    "sample_id",
    "group_id",
    "prompt_key",
    "reward",
    "components",
    "components_passed",
    "gated_by",
    "judge_status",
    "judge_criteria",
    "judge_aggregate",
    "neutral_reward",
    "latency_ms",
    "attempts",
    "error",
    "response_chars",
    "judge_addressed",
    "quotes_total",
    "quotes_ungrounded",
    "metadata",
    "import_id",
    "created_at",
)
SAMPLE_COPY_COLUMNS = ("rollout_id", *(name for name in SAMPLE_COLUMNS if name != "rollout_id"))
NULL = "\\N"


class PackTarget(NamedTuple):
    """Where the rows go: the same for every line of an import."""

    project_id: int
    training_run_id: int
    import_id: int | None
    source_file: str


class PackedLine(NamedTuple):
    """A good line as COPY rows (see the module's docstring)."""

    line_no: int
    record_id: str
    content_hash: str
    step: int | None
    text: str | None  # the line as read; None when packed from a DriftLine already at hand
    rollout_row: bytes  # "\t" + the rollout's columns after its id + "\n"
    sample_row: bytes  # "\t" + the sample's columns after rollout_id + "\n"


def _text(value: str | None) -> str:
    """A text value in COPY's text format (NUL characters were refused before)."""
    if value is None:
        return NULL
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\n" in value:
        value = value.replace("\n", "\\n")
    if "\r" in value:
        value = value.replace("\r", "\\r")
    if "\t" in value:
        value = value.replace("\t", "\\t")
    return value


def _json(value: Any) -> str:
    """A JSON value for a jsonb column: compact JSON (orjson; json for what it refuses, such
    as integers beyond 64 bits), whose only character COPY escapes is the backslash."""
    try:
        encoded = orjson.dumps(value).decode()
    except TypeError:
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return encoded.replace("\\", "\\\\") if "\\" in encoded else encoded


def _number(value: float | int | None) -> str:
    return NULL if value is None else repr(value)


def _bool(value: bool) -> str:
    return "t" if value else "f"


def _time(value: datetime) -> str:
    return value.isoformat()


def pack(line: DriftLine, target: PackTarget, now: datetime, text: str | None) -> PackedLine:
    """A checked, storable line as its two COPY rows."""
    record: DriftRecord = line.record
    rollout = record.rollout
    content_hash = _text(record.content_hash)
    project = str(target.project_id)
    import_id = NULL if target.import_id is None else str(target.import_id)
    created = _time(now)
    rollout_row = "\t".join(
        (
            "",
            project,
            _text(rollout.external_id),
            _text(rollout.content_hash),
            _json(rollout.input_messages),
            _text(rollout.target_document),
            _json(rollout.reference_documents),
            NULL if rollout.reference_answer is None else _json(rollout.reference_answer),
            _text(rollout.response),
            _text(rollout.model),
            _text(rollout.checkpoint),
            _number(rollout.step),
            _text(rollout.group_key),
            _text(target.source_file),
            str(rollout.line_no),
            _json(rollout.metadata),
            import_id,
            created,
            "t\n",
        )
    )
    sample_row = "\t".join(
        (
            "",
            project,
            str(target.training_run_id),
            _text(record.record_id),
            content_hash,
            _number(record.step),
            _bool(record.step_mapped),
            _time(record.recorded_at),
            _text(record.source),
            _text(record.bundle_hash),
            _text(record.sample_id),
            _text(record.group_id),
            _text(record.prompt_key),
            repr(record.reward),
            _json(record.components),
            _json(record.components_passed),
            _text(record.gated_by),
            _text(record.judge_status),
            _json(record.judge_criteria),
            _number(record.judge_aggregate),
            _bool(record.neutral_reward),
            _number(record.latency_ms),
            _number(record.attempts),
            _text(record.error),
            str(record.response_chars),
            _bool(record.judge_addressed),
            _number(record.quotes_total),
            _number(record.quotes_ungrounded),
            _json(record.metadata),
            import_id,
            created + "\n",
        )
    )
    return PackedLine(
        line.line_no,
        record.record_id,
        record.content_hash,
        record.step,
        text,
        rollout_row.encode(),
        sample_row.encode(),
    )


def pack_chunk(
    lines: Sequence[RawLine], options: DriftOptions, target: PackTarget
) -> list[PackedLine | DriftLine | Problem]:
    """records.parse_chunk, with each good line that orjson read cleanly (see
    DriftLine.storable) packed as COPY rows; the others stay DriftLines, checked and stored by
    the importer as before. The work a pool process does."""
    now = utcnow()
    out: list[PackedLine | DriftLine | Problem] = []
    for raw in lines:
        for item in parse_line(raw, options):
            if isinstance(item, DriftLine) and item.storable:
                out.append(pack(item, target, now, raw.text))
            else:
                out.append(item)
    return out


def unpack(line: PackedLine, options: DriftOptions) -> DriftLine:
    """The DriftLine a packed line was made from, parsed again from its text."""
    assert line.text is not None
    items = parse_line(RawLine(line.line_no, line.text, len(line.text), True), options)
    found = [item for item in items if isinstance(item, DriftLine)]
    assert len(found) == 1, "a packed line parses to one record"
    return found[0]
