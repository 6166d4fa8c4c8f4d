"""CSV that spreadsheets cannot execute: every CSV the app writes goes through here.

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is read by Excel, LibreOffice
and Google Sheets as a formula ("CSV injection"). Following OWASP's guidance, such a cell is
prefixed with a single quote, which spreadsheets show as text. Plain numbers such as `-3` or
`+0.5` stay numbers. A cell that already starts with quotes before one of those characters gets
one more quote, so `restore_cell` gives back exactly what was written (our own importers use it).

    writer = safe_writer(buffer)           # a csv.writer whose rows are neutralised
    writer.writerow(["name", "=1+1"])       # writes: name,'=1+1

    return StreamingResponse(safe_csv_rows(header, rows), media_type="text/csv")
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_QUOTED_FORMULA = re.compile(r"'+[=+\-@\t\r]")


def _is_plain_number(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


def neutralise_cell(value: Any) -> Any:
    """The cell as a spreadsheet shows it as text; non-strings (numbers, None) unchanged."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(FORMULA_STARTS) and not _is_plain_number(value):
        return "'" + value
    if _QUOTED_FORMULA.match(value):
        return "'" + value  # keeps restore_cell exact
    return value


def restore_cell(value: str) -> str:
    """Undo `neutralise_cell` for a cell read back from one of our CSVs."""
    if _QUOTED_FORMULA.match(value):
        return value[1:]
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [neutralise_cell(cell) for cell in row]


class _Writer(Protocol):
    def writerow(self, row: Iterable[Any], /) -> Any: ...


class SafeCsvWriter:
    """A `csv.writer` that neutralises every cell it writes."""

    def __init__(self, fileobj: Any, **kwargs: Any) -> None:
        self._writer: _Writer = csv.writer(fileobj, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def safe_writer(fileobj: Any, **kwargs: Any) -> SafeCsvWriter:
    """Like `csv.writer(fileobj, **kwargs)`, with formula cells neutralised."""
    return SafeCsvWriter(fileobj, **kwargs)


def safe_csv_rows(
    header: Iterable[Any] | None,
    rows: Iterable[Iterable[Any]],
    *,
    chunk_bytes: int = 64 * 1024,
    **kwargs: Any,
) -> Iterator[str]:
    """CSV text in chunks of about `chunk_bytes`, for a StreamingResponse of any length."""
    buffer = io.StringIO()
    writer = safe_writer(buffer, **kwargs)
    if header is not None:
        writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() >= chunk_bytes:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    tail = buffer.getvalue()
    if tail:
        yield tail


def to_csv_text(header: Iterable[Any] | None, rows: Iterable[Iterable[Any]], **kwargs: Any) -> str:
    """The whole CSV as one string (for small files)."""
    return "".join(safe_csv_rows(header, rows, **kwargs))
