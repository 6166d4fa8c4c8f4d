"""Label files: read and write expert labels as JSON Lines or CSV (the formats are below).

Pure: parsing reports every problem with its line and field; checking values against a rubric
and finding rollouts is the service's job.

JSONL, one label per line::

    {"rollout": "<rollout external id>", "annotator": "Jane Doe",
     "values": {"Grounding": 4, "Safe": "pass"}, "critiques": {"Grounding": "..."},
     "overall_critique": "...", "submitted_at": "2025-01-31T10:00:00Z"}

Preference labels name both responses and the winner: ``"rollout": "<A>", "rollout_b": "<B>",
"preference": "A" | "B" | "tie"``. ``rollout_id`` (the studio's numeric id) may replace
``rollout``. CSV has the columns rollout, rollout_b, annotator, preference, overall_critique,
submitted_at, one column per criterion key and ``critique:<key>`` for critiques.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from app.core.csv_safe import restore_cell, safe_writer
from app.core.schema_check import schema_problems

LABEL_SCHEMA = Path(__file__).resolve().parent / "label.schema.json"

Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")
MAX_RECORDS = 200_000
CRITIQUE_PREFIX = "critique:"
BASE_COLUMNS = (
    "rollout",
    "rollout_b",
    "annotator",
    "preference",
    "overall_critique",
    "submitted_at",
)
_IGNORED_COLUMNS = frozenset({"rollout_id", "rubric", "rubric_version", "status", "shown_order"})
_KNOWN_KEYS = frozenset(
    {
        "rollout",
        "rollout_id",
        "rollout_b",
        "annotator",
        "values",
        "critiques",
        "overall_critique",
        "preference",
        "submitted_at",
        "rubric",
        "rubric_version",
        "shown_order",
    }
)


@dataclass
class Problem:
    line: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


@dataclass
class LabelRecord:
    """One label as read from a file, before it is checked against a rubric."""

    line: int
    annotator: str
    rollout: str | None = None
    rollout_id: int | None = None
    rollout_b: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    critiques: dict[str, str] = field(default_factory=dict)
    overall_critique: str = ""
    preference: str | None = None
    submitted_at: datetime | None = None


def guess_format(filename: str, text: str) -> Format:
    """CSV for a .csv name or a first line that is not a JSON object, else JSONL."""
    if filename.lower().endswith(".csv"):
        return "csv"
    if filename.lower().endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    first = next((line for line in text.splitlines() if line.strip()), "")
    return "jsonl" if first.lstrip().startswith("{") else "csv"


def _timestamp(value: Any, line: int, problems: list[Problem]) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        problems.append(Problem(line, "submitted_at", "must be an ISO 8601 date-time string"))
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        problems.append(Problem(line, "submitted_at", f"{value!r} is not an ISO 8601 date-time"))
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(value: Any, name: str, line: int, problems: list[Problem]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(Problem(line, name, "must be text"))
        return ""
    return value


def _check_identity(record: LabelRecord, problems: list[Problem]) -> None:
    if not record.annotator.strip():
        problems.append(Problem(record.line, "annotator", "is required (the expert's name)"))
    if not record.rollout and record.rollout_id is None:
        problems.append(Problem(record.line, "rollout", "is required (the rollout's external id)"))


def _record_from_object(obj: dict[str, Any], line: int, problems: list[Problem]) -> LabelRecord:
    start = len(problems)
    for key in obj:
        if key not in _KNOWN_KEYS:
            problems.append(Problem(line, key, "is not a known field of a label record"))
    rollout = obj.get("rollout")
    rollout_id = obj.get("rollout_id")
    if rollout is not None and not isinstance(rollout, str | int):
        problems.append(Problem(line, "rollout", "must be the rollout's external id (text)"))
        rollout = None
    if rollout_id is not None and (isinstance(rollout_id, bool) or not isinstance(rollout_id, int)):
        problems.append(Problem(line, "rollout_id", "must be an integer"))
        rollout_id = None
    values = obj.get("values", {})
    if not isinstance(values, dict):
        problems.append(Problem(line, "values", "must be an object {criterion key: value}"))
        values = {}
    critiques = obj.get("critiques", {})
    if not isinstance(critiques, dict) or not all(isinstance(v, str) for v in critiques.values()):
        problems.append(Problem(line, "critiques", "must be an object {criterion key: text}"))
        critiques = {}
    preference = obj.get("preference")
    annotator = obj.get("annotator")
    record = LabelRecord(
        line=line,
        annotator=annotator.strip() if isinstance(annotator, str) else "",
        rollout=str(rollout) if rollout is not None else None,
        rollout_id=rollout_id,
        rollout_b=str(obj["rollout_b"]) if obj.get("rollout_b") not in (None, "") else None,
        values=dict(values),
        critiques={k: v for k, v in critiques.items() if v.strip()},
        overall_critique=_text(obj.get("overall_critique"), "overall_critique", line, problems),
        preference=str(preference) if preference not in (None, "") else None,
        submitted_at=_timestamp(obj.get("submitted_at"), line, problems),
    )
    if annotator is not None and not isinstance(annotator, str):
        problems.append(Problem(line, "annotator", "must be text"))
    elif len(problems) == start:
        _check_identity(record, problems)
    if len(problems) == start:  # the same schema the API serves (GET /api/v1/formats/labels)
        for name, message in schema_problems(LABEL_SCHEMA, obj):
            problems.append(Problem(line, name or "line", message))
    return record


def parse_jsonl(text: str) -> tuple[list[LabelRecord], list[Problem]]:
    """Records and every problem found (line numbers from 1); blank lines are skipped."""
    records: list[LabelRecord] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if len(records) >= MAX_RECORDS:
            problems.append(Problem(number, "file", f"more than {MAX_RECORDS} labels in one file"))
            break
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            problems.append(Problem(number, "line", f"is not valid JSON ({exc})"))
            continue
        if not isinstance(obj, dict):
            problems.append(Problem(number, "line", "must be a JSON object"))
            continue
        before = len(problems)
        record = _record_from_object(obj, number, problems)
        if len(problems) == before:
            records.append(record)
    if not records and not problems:
        problems.append(Problem(0, "file", "contains no labels"))
    return records, problems


def parse_csv(text: str) -> tuple[list[LabelRecord], list[Problem]]:
    """Records from CSV with a header row; each row's line number is its line in the file."""
    records: list[LabelRecord] = []
    problems: list[Problem] = []
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        return [], [Problem(1, "header", "the file is empty or has no header row")]
    if "annotator" not in header or not ({"rollout", "rollout_id"} & set(header)):
        return [], [Problem(1, "header", "needs the columns rollout and annotator")]
    try:
        for row in reader:
            line = reader.line_num
            if len(records) >= MAX_RECORDS:
                problems.append(Problem(line, "file", f"more than {MAX_RECORDS} labels"))
                break
            cells = {
                (k or "").strip(): restore_cell(v or "") for k, v in row.items() if k is not None
            }
            if None in row:
                problems.append(Problem(line, "row", "has more cells than the header"))
                continue
            if not any(value.strip() for value in cells.values()):
                continue
            before = len(problems)
            obj: dict[str, Any] = {"values": {}, "critiques": {}}
            for name, value in cells.items():
                if name.startswith(CRITIQUE_PREFIX):
                    obj["critiques"][name[len(CRITIQUE_PREFIX) :]] = value
                elif name == "rollout_id":
                    if value.strip():
                        try:
                            obj["rollout_id"] = int(value)
                        except ValueError:
                            problems.append(Problem(line, name, "must be an integer"))
                elif name in _IGNORED_COLUMNS:
                    continue
                elif name in BASE_COLUMNS:
                    obj[name] = value if value.strip() else None
                elif name:
                    obj["values"][name] = value
            record = _record_from_object(obj, line, problems)
            if len(problems) == before:
                records.append(record)
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, "file", f"is not valid CSV ({exc})"))
    if not records and not problems:
        problems.append(Problem(0, "file", "contains no labels"))
    return records, problems


def parse(text: str, fmt: Format) -> tuple[list[LabelRecord], list[Problem]]:
    return parse_csv(text) if fmt == "csv" else parse_jsonl(text)


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def to_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    """One JSON object per line (rows as built by the service's export)."""
    return "".join(
        json.dumps({k: _json_value(v) for k, v in row.items()}, ensure_ascii=False) + "\n"
        for row in rows
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "pass" if value else "fail"
    return str(_json_value(value))


def to_csv(rows: Iterable[dict[str, Any]], criterion_keys: Sequence[str]) -> str:
    """CSV with the base columns, then each criterion and its critique."""
    out = io.StringIO()
    columns = [
        "rollout",
        "rollout_id",
        "rollout_b",
        "annotator",
        "rubric",
        "rubric_version",
        "preference",
        "overall_critique",
        "submitted_at",
        *criterion_keys,
        *(CRITIQUE_PREFIX + key for key in criterion_keys),
    ]
    writer = safe_writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = row.get("values") or {}
        critiques = row.get("critiques") or {}
        writer.writerow(
            [
                *(_cell(row.get(name)) for name in columns[:9]),
                *(_cell(values.get(key)) for key in criterion_keys),
                *(_cell(critiques.get(key)) for key in criterion_keys),
            ]
        )
    return out.getvalue()
