"""CSV rollouts: a header row, and a mapping from Studio fields to column names. Each data row
becomes a Studio row and goes through the same validation; problems name the row and the column."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from app.rollouts.formats import studio
from app.rollouts.formats.common import (
    FileRejected,
    ParsedLine,
    Problem,
    cap_problems,
    describe,
)
from app.rollouts.formats.lines import (
    BLANK_MESSAGE,
    LineSource,
    first_text_line,
    human_size,
    too_long_problem,
)

# Studio fields a column can hold; "system" is a CSV convenience: a system message put first.
CSV_FIELDS = (
    "id",
    "system",
    "input",
    "target_document",
    "references",
    "reference_answer",
    "response",
    "model",
    "checkpoint",
    "step",
    "group",
    "metadata",
)
_DELIMITERS = (",", "\t", ";")

_CSV_ERRORS = {
    "field larger than field limit": "a value is longer than the limit for one cell",
    "',' expected after '\"'": (
        'a quoted value is followed by more text before the next separator (write "" for a '
        "quote inside a quoted value)"
    ),
    "unexpected end of data": "the file ends inside a quoted value (a closing quote is missing)",
    "line contains NUL": "the row contains a NUL character (binary data)",
}

NO_DATA_ROWS = "the CSV file has a header row but no data rows"


def pick_delimiter(head: bytes) -> str:
    """The separator the header line uses most: Excel in many countries writes ';'."""
    header = first_text_line(head).decode("utf-8", errors="replace")
    counts = {delimiter: header.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


class CsvRows:
    """Reads the header at construction (so a missing column rejects the file at once), then
    yields one ParsedLine or its Problems per data row."""

    def __init__(self, lines: LineSource, head: bytes, mapping: Mapping[str, str]) -> None:
        if first_text_line(head).startswith(b"{"):
            raise FileRejected(
                "the file looks like JSONL (its first line is a JSON object), not CSV; import it "
                "as JSONL or let the format be detected",
                line=1,
            )
        self._lines = lines
        self._pending: list[Problem] = []
        self._record_bytes = 0
        self._row = 0
        # Cells may hold whole documents; the csv module's default cap is 128 KiB.
        if csv.field_size_limit() < lines.max_line_bytes:
            csv.field_size_limit(lines.max_line_bytes)
        self._reader = csv.reader(self._text(), delimiter=pick_delimiter(head), strict=True)
        self.header = self._read_header()
        self.columns = resolve_mapping(self.header, mapping)

    def _text(self) -> Iterator[str]:
        for raw in self._lines:
            if raw.text is None:
                # Report it against the row it belongs to; a blank line keeps the rows aligned.
                message = too_long_problem(raw, self._lines.max_line_bytes).message
                self._pending.append(Problem(self._row + 1, None, message))
                yield "\n"
                continue
            self._record_bytes += raw.size
            if self._record_bytes > self._lines.max_line_bytes:
                raise FileRejected(
                    f"line {self._row + 1}: the row is over the "
                    f"{human_size(self._lines.max_line_bytes)} limit for one rollout; a quoted "
                    "value is probably never closed (check the quotes in this row)",
                    line=self._row + 1,
                )
            yield raw.text + "\n"

    def _next_record(self) -> list[str] | Problem | None:
        try:
            values = next(self._reader)
        except StopIteration:
            return None
        except csv.Error as error:
            self._row += 1
            self._record_bytes = 0
            text = str(error)
            reason = next((v for k, v in _CSV_ERRORS.items() if text.startswith(k)), text)
            return Problem(self._row, None, f"this row is not valid CSV: {reason}")
        self._row += 1
        self._record_bytes = 0
        return values

    def _read_header(self) -> list[str]:
        while True:
            record = self._next_record()
            if record is None:
                raise FileRejected(BLANK_MESSAGE)
            if isinstance(record, Problem):
                raise FileRejected(f"line {record.line}: the header row is not valid CSV")
            if any(value.strip() for value in record):
                return [value.strip() for value in record]

    def __iter__(self) -> Iterator[ParsedLine | Problem]:
        data_rows = 0
        while True:
            record = self._next_record()
            yield from self._pending
            self._pending.clear()
            if record is None:
                break
            if isinstance(record, Problem):
                data_rows += 1
                yield record
                continue
            if not any(value.strip() for value in record):
                continue
            data_rows += 1
            result = self._row_result(record, self._row)
            if isinstance(result, ParsedLine):
                yield result
            else:
                yield from cap_problems(result)
        if not data_rows:
            raise FileRejected(NO_DATA_ROWS)

    def _row_result(self, values: list[str], row_no: int) -> ParsedLine | list[Problem]:
        if len(values) > len(self.header):
            return [
                Problem(
                    row_no,
                    None,
                    f"the row has {len(values)} values but the header has {len(self.header)} "
                    "columns (a separator inside a value that is not quoted?)",
                )
            ]
        row, problems, system = self._studio_row(values, row_no)
        problems += [self._rename(problem) for problem in studio.validate(row, row_no)]
        if problems:
            return problems
        if system:
            row["input"] = [{"role": "system", "content": system}, *row["input"]]
        result = studio.build(row, row_no)
        return result if isinstance(result, ParsedLine) else [self._rename(p) for p in result]

    def _cell(self, values: list[str], field: str) -> str:
        index = self.columns.get(field)
        return values[index] if index is not None and index < len(values) else ""

    def _studio_row(
        self, values: list[str], row_no: int
    ) -> tuple[dict[str, Any], list[Problem], str]:
        row: dict[str, Any] = {}
        problems: list[Problem] = []

        def column(field: str) -> str:
            return self.header[self.columns[field]]

        prompt = self._cell(values, "input")
        if not prompt.strip():
            problems.append(
                Problem(
                    row_no,
                    column("input"),
                    "the cell is empty; expected the prompt sent to the model",
                )
            )
        # Without a prompt the row is still checked, so all its problems are reported at once.
        row["input"] = (
            _messages_cell(prompt) if prompt.strip() else [{"role": "user", "content": ""}]
        )
        row["response"] = self._cell(values, "response")
        for field in ("id", "model", "checkpoint", "group"):
            text = self._cell(values, field).strip()
            if text:
                row[field] = text
        target = self._cell(values, "target_document")
        if target.strip():
            row["target_document"] = target
        references = self._cell(values, "references")
        if references.strip():
            parsed = _json_cell(references, "[")
            row["references"] = parsed if isinstance(parsed, list) else [references]
        answer = self._cell(values, "reference_answer")
        if answer.strip():
            parsed = _json_cell(answer, "[{")
            row["reference_answer"] = answer if parsed is None else parsed
        step = self._cell(values, "step").strip()
        if step:
            row["step"] = _number_cell(step)
        metadata: dict[str, Any] = {}
        metadata_text = self._cell(values, "metadata")
        if metadata_text.strip():
            parsed = _json_cell(metadata_text, "{")
            if isinstance(parsed, dict):
                metadata.update(parsed)
            else:
                problems.append(
                    Problem(
                        row_no,
                        column("metadata"),
                        'expected a JSON object like {"key": "value"}, got '
                        f"{describe(metadata_text)}",
                    )
                )
        used = set(self.columns.values())
        for index, value in enumerate(values):
            if index not in used and value != "":
                metadata.setdefault(self.header[index] or f"column {index + 1}", value)
        if metadata:
            row["metadata"] = metadata
        return row, problems, self._cell(values, "system").strip()

    def _rename(self, problem: Problem) -> Problem:
        """Studio field paths ('input[1].role') become column names ('Prompt[1].role')."""
        if not problem.field:
            return problem
        match = re.match(r"[a-z_]+", problem.field)
        field = match.group(0) if match else ""
        if field not in self.columns:
            return problem
        renamed = self.header[self.columns[field]] + problem.field[len(field) :]
        return Problem(problem.line, renamed, problem.message)


def resolve_mapping(header: list[str], mapping: Mapping[str, str]) -> dict[str, int]:
    """Studio field -> column index: the given mapping, then columns named like the field."""
    columns: dict[str, int] = {}
    listed = ", ".join(name or "(unnamed)" for name in header)
    for field, column in mapping.items():
        if field not in CSV_FIELDS:
            raise FileRejected(
                f"the CSV column mapping names an unknown field '{field}'; the fields are: "
                f"{', '.join(CSV_FIELDS)}"
            )
        column = (column or "").strip()
        if not column:
            continue  # a field the user chose to leave out
        if column not in header:
            raise FileRejected(
                f"the CSV file has no column '{column}' (chosen for '{field}'); its columns are: "
                f"{listed}"
            )
        if header.count(column) > 1:
            raise FileRejected(
                f"the CSV file has {header.count(column)} columns named '{column}' (chosen for "
                f"'{field}'); rename them so each name is used once"
            )
        columns[field] = header.index(column)
    lowered = [name.lower() for name in header]
    for field in CSV_FIELDS:
        if field in mapping or field not in lowered:
            continue
        index = lowered.index(field)
        if index not in columns.values():
            columns[field] = index
    missing = [field for field in ("input", "response") if field not in columns]
    if missing:
        needed = " and ".join(f"'{field}'" for field in missing)
        raise FileRejected(
            f"the CSV file needs a column for {needed}; its columns are: {listed} — choose "
            "which column holds each field"
        )
    return columns


def _json_cell(text: str, openers: str) -> Any:
    """The cell's JSON value when it starts like one and parses; None otherwise."""
    stripped = text.strip()
    if not stripped or stripped[0] not in openers:
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def _messages_cell(text: str) -> list[Any]:
    """A JSON list of message objects, or the cell's text as one user message."""
    parsed = _json_cell(text, "[")
    if isinstance(parsed, list) and parsed and all(isinstance(item, dict) for item in parsed):
        return parsed
    return [{"role": "user", "content": text}]


def _number_cell(text: str) -> Any:
    """A step cell as a number when it is one; as the text otherwise (validation reports it)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text
