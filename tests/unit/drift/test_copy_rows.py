"""COPY rows built where lines are parsed (copy_rows): one field per column, in the order the
COPY statements name them, with COPY's text-format escapes, and the line parsed again from its
text gives the same record."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

from app.drift import bulk
from app.drift.copy_rows import (
    ROLLOUT_COPY_COLUMNS,
    SAMPLE_COPY_COLUMNS,
    PackedLine,
    PackTarget,
    pack,
    pack_chunk,
    unpack,
)
from app.drift.records import DriftLine, DriftOptions, iter_records, parse_line
from app.drift.synthetic import records
from app.rollouts import bulk as rollout_bulk
from app.rollouts.formats.lines import RawLine

TARGET = PackTarget(7, 11, 13, "runs/a\tb.jsonl")
NOW = datetime(2026, 12, 1, 10, 22, 31, 5, tzinfo=UTC)


def _fields(row: bytes) -> list[str | None]:
    """A COPY text row back to its values (None for NULL)."""
    assert row.endswith(b"\n") and row.count(b"\n") == 1
    out: list[str | None] = []
    for field in row[:-1].decode().split("\t"):
        if field == "\\N":
            out.append(None)
            continue
        text, i = [], 0
        while i < len(field):
            if field[i] == "\\":
                text.append({"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}[field[i + 1]])
                i += 2
            else:
                text.append(field[i])
                i += 1
        out.append("".join(text))
    return out


def _line(row: dict[str, Any], number: int = 1) -> DriftLine:
    [item] = list(iter_records(io.BytesIO(json.dumps(row).encode()), DriftOptions("run-1")))
    assert isinstance(item, DriftLine)
    return item


def test_the_columns_are_the_tables_columns_with_the_id_first() -> None:
    assert ("id", *rollout_bulk.ROLLOUT_COLUMNS) == ROLLOUT_COPY_COLUMNS
    assert SAMPLE_COPY_COLUMNS[0] == "rollout_id"
    assert sorted(SAMPLE_COPY_COLUMNS) == sorted(bulk.SAMPLE_COLUMNS)


def test_rows_have_a_field_per_column_and_escape_tabs_newlines_and_backslashes() -> None:
    row = next(iter(records(1, run="run-1", steps=3)))
    row["rollout"]["response"] = 'Line one\n\tline two \\ "quoted"\r\nend é'
    row["error"] = "a\tb\\c"
    row["note"] = {"path": "C:\\tmp\\x", "tab": "\t"}
    line = _line(row)
    packed = pack(line, TARGET, NOW, None)
    rollout = _fields(b"1" + packed.rollout_row)
    sample = _fields(b"1" + packed.sample_row)
    assert len(rollout) == len(ROLLOUT_COPY_COLUMNS) and len(sample) == len(SAMPLE_COPY_COLUMNS)
    r = dict(zip(ROLLOUT_COPY_COLUMNS, rollout, strict=True))
    s = dict(zip(SAMPLE_COPY_COLUMNS, sample, strict=True))
    record = line.record
    assert r["response"] == row["rollout"]["response"]
    assert r["source_file"] == TARGET.source_file and r["from_drift"] == "t"
    assert r["project_id"] == "7" and r["import_id"] == "13" and r["reference_answer"] is None
    assert json.loads(r["metadata"] or "") == record.rollout.metadata
    assert json.loads(r["input_messages"] or "") == record.rollout.input_messages
    assert s["error"] == "a\tb\\c" and json.loads(s["metadata"] or "") == record.metadata
    assert s["record_id"] == record.record_id and s["content_hash"] == record.content_hash
    assert float(s["reward"] or "") == record.reward and s["training_run_id"] == "11"
    assert datetime.fromisoformat(s["recorded_at"] or "") == record.recorded_at
    assert datetime.fromisoformat(s["created_at"] or "") == NOW
    assert s["neutral_reward"] == ("t" if record.neutral_reward else "f")
    assert json.loads(s["components"] or "") == record.components
    assert (packed.line_no, packed.record_id, packed.step) == (1, record.record_id, record.step)


def test_a_packed_line_parses_again_to_its_record() -> None:
    rows = list(records(5, run="run-1", steps=3))
    text = [json.dumps(row) for row in rows]
    raw = [RawLine(n, t, len(t), True) for n, t in enumerate(text, start=1)]
    raw.append(RawLine(6, '{"id": "x"}', 11, True))
    options = DriftOptions("run-1")
    items = pack_chunk(raw, options, TARGET)
    packed = [item for item in items if isinstance(item, PackedLine)]
    assert len(packed) == 5 and len(items) > 5  # the bad line's problems come through
    for item in packed:
        again = unpack(item, options)
        [line] = parse_line(raw[item.line_no - 1], options)
        assert isinstance(line, DriftLine) and again == line
