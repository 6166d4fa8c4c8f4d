"""CSV cells that a spreadsheet would run as formulas are written as text, and read back exactly."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from app.core.csv_safe import neutralise_cell, restore_cell, safe_csv_rows, safe_writer, to_csv_text


def test_formula_cells_are_prefixed_with_a_quote() -> None:
    for cell in ("=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", '=HYPERLINK("http://x")'):
        assert neutralise_cell(cell) == "'" + cell


def test_numbers_and_ordinary_text_are_unchanged() -> None:
    for cell in ("-3", "+0.5", "-1e5", "hello", "a=b", "", "'quoted"):
        assert neutralise_cell(cell) == cell
    assert neutralise_cell(None) is None
    assert neutralise_cell(-4) == -4


@given(st.text())
def test_restore_undoes_neutralise(text: str) -> None:
    assert restore_cell(neutralise_cell(text)) == text


def test_writer_and_streaming_helpers_neutralise_every_cell() -> None:
    buffer = io.StringIO()
    writer = safe_writer(buffer, lineterminator="\n")
    writer.writerow(["name", "=1+1"])
    writer.writerows([["@x", "-7"]])
    assert buffer.getvalue() == "name,'=1+1\n'@x,-7\n"
    chunks = list(safe_csv_rows(["h"], (["=a"] for _ in range(5000)), chunk_bytes=1000))
    assert len(chunks) > 1
    rows = list(csv.reader(io.StringIO("".join(chunks))))
    assert rows[0] == ["h"] and {row[0] for row in rows[1:]} == {"'=a"}
    assert to_csv_text(None, [["+x"]]) == "'+x\r\n"
