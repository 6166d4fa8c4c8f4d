"""Streaming parser for rollout files (Studio JSONL, Nova RFT rows, OpenAI chat rows, CSV).

Pure: no web or database imports. The import worker calls iter_parse() and stores what it
yields; see docs/formats/rollouts.md for the formats, limits and messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from app.rollouts.formats.chat import parse_nova_row, parse_openai_row
from app.rollouts.formats.common import (
    FileRejected,
    ParsedLine,
    Problem,
    RolloutRecord,
    cap_problems,
    derive_external_id,
)
from app.rollouts.formats.csv_table import CSV_FIELDS, CsvRows
from app.rollouts.formats.lines import (
    BLANK_MESSAGE,
    HEAD_BYTES,
    UTF8_BOM,
    LineSource,
    check_head,
    check_json_shape,
    decode_json_object,
    first_text_line,
    read_head,
    remaining_size,
    too_big_message,
    too_long_problem,
)
from app.rollouts.formats.studio import parse_row as parse_studio_row

__all__ = [
    "CSV_FIELDS",
    "FORMATS",
    "FileRejected",
    "ParseOptions",
    "ParsedLine",
    "Problem",
    "RolloutRecord",
    "derive_external_id",
    "detect_format",
    "iter_parse",
]

FORMATS: tuple[str, ...] = ("auto", "studio", "nova", "openai", "csv")

GiB = 1024**3
MiB = 1024**2

RowParser = Callable[[dict[str, Any], int], "ParsedLine | list[Problem]"]
_ROW_PARSERS: dict[str, RowParser] = {
    "studio": parse_studio_row,
    "nova": parse_nova_row,
    "openai": parse_openai_row,
}


@dataclass(frozen=True)
class ParseOptions:
    format: str = "auto"  # one of FORMATS; plain str so a stored import's value passes as is
    # Studio field -> CSV column name; fields left out use a column of the same name.
    csv_mapping: Mapping[str, str] = field(default_factory=dict)
    max_file_bytes: int = 2 * GiB
    max_line_bytes: int = 8 * MiB
    max_depth: int = 32
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; expected one of {FORMATS}")
        if min(self.max_file_bytes, self.max_line_bytes, self.max_depth) < 1:
            raise ValueError("limits must be positive")
        # Lines are split on the byte b"\n", which only ASCII-compatible encodings keep.
        try:
            compatible = "x\n".encode(self.encoding) == b"x\n"
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r}") from None
        if not compatible:
            raise ValueError(f"encoding {self.encoding!r} is not ASCII-compatible")


def detect_format(head: bytes, filename: str | None = None) -> str:
    """'studio', 'nova', 'openai' or 'csv' from the first block of the file and its name.

    Raises FileRejected for a JSON array and for content none of the formats fits.
    """
    head = head.removeprefix(UTF8_BOM)
    name = (filename or "").lower()
    if name.endswith((".csv", ".tsv")):
        return "csv"
    first = first_text_line(head)
    if first.startswith(b"["):
        check_json_shape(head)
    if first.startswith(b"{"):
        return _detect_json_format(first)
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "studio"
    if any(delimiter in first for delimiter in (b",", b"\t", b";")):
        return "csv"
    raise FileRejected(
        "could not recognise the file format: expected JSONL (one JSON object per line) or CSV "
        "with a header row"
    )


def _detect_json_format(first: bytes) -> str:
    try:
        row = json.loads(first)
    except (ValueError, RecursionError):
        row = None  # cut off at the end of the head, or broken: look at the key names instead
    if isinstance(row, dict):
        if "messages" in row:
            return "openai" if "completion" in row else "nova"
        if {"input", "response", "responses"} & row.keys():
            return "studio"
        found = ", ".join(list(row)[:12]) or "none"
        raise FileRejected(
            "could not recognise the rollout format: line 1 has none of the fields 'input' and "
            "'response' (Studio format) or 'messages' (Nova or OpenAI chat format); its fields "
            f"are: {found}",
            line=1,
        )
    positions = {key: first.find(f'"{key}"'.encode()) for key in ("messages", "input")}
    found_keys = {key: pos for key, pos in positions.items() if pos >= 0}
    if found_keys and min(found_keys, key=lambda key: found_keys[key]) == "messages":
        return "openai" if b'"completion"' in first else "nova"
    return "studio"


def iter_parse(
    stream: BinaryIO, options: ParseOptions | None = None, filename: str | None = None
) -> Iterator[ParsedLine | Problem]:
    """Parse a rollout file one line (or CSV row) at a time.

    Whole-file problems found in the first block (empty, binary, UTF-16, JSON array, unknown
    format, too big, a missing CSV column) raise FileRejected from this call; those found later
    (a line that is not UTF-8, the size limit passed) raise it during iteration. Everything
    else is yielded: a ParsedLine per good line, one or more Problems per bad line.
    """
    options = options or ParseOptions()
    size = remaining_size(stream)
    if size is not None and size > options.max_file_bytes:
        raise FileRejected(too_big_message(options.max_file_bytes, size))
    head = read_head(stream)
    check_head(head)
    body = head.removeprefix(UTF8_BOM)
    if not body.strip() and len(head) < HEAD_BYTES:
        raise FileRejected(BLANK_MESSAGE)
    fmt = options.format if options.format != "auto" else detect_format(head, filename)
    lines = LineSource(
        head,
        stream,
        max_line_bytes=options.max_line_bytes,
        max_file_bytes=options.max_file_bytes,
        encoding=options.encoding,
    )
    if fmt == "csv":
        return iter(CsvRows(lines, body, options.csv_mapping))
    check_json_shape(body)
    return _iter_jsonl(lines, _ROW_PARSERS[fmt], options.max_depth)


def _iter_jsonl(
    lines: LineSource, parse_row: RowParser, max_depth: int
) -> Iterator[ParsedLine | Problem]:
    seen = False
    for line in lines:
        if line.text is None:
            seen = True
            yield too_long_problem(line, lines.max_line_bytes)
            continue
        text = line.text.strip()
        if not text:
            continue
        seen = True
        row = decode_json_object(text, line, max_depth)
        if isinstance(row, list):
            yield from row
            continue
        result = parse_row(row, line.number)
        if isinstance(result, ParsedLine):
            yield result
        else:
            yield from cap_problems(result)
    if not seen:
        raise FileRejected(BLANK_MESSAGE)
