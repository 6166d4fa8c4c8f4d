"""Parsing streams: it reads lazily, and memory stays flat whatever the file or line size."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import pytest

from app.rollouts.parsing import FileRejected, ParsedLine, ParseOptions, Problem, iter_parse

LINES = 50_000


class GeneratorStream(io.RawIOBase):
    """A non-seekable binary stream whose bytes come from a generator, like a network upload."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def generator_stream(chunks: Iterator[bytes]) -> BinaryIO:
    return cast(BinaryIO, GeneratorStream(chunks))  # a raw stream has all iter_parse uses


class Counter:
    produced = 0


def rollout_lines(count: int, counter: Counter, padding: int = 0) -> Iterator[bytes]:
    for number in range(count):
        counter.produced += 1
        row = {
            "input": [
                {"role": "system", "content": "You review contracts for the buyer."},
                {"role": "user", "content": f"Review clause {number}." + " " * padding},
            ],
            "response": f"Clause {number} caps liability at twelve months of fees.",
            "step": number % 500,
        }
        yield (json.dumps(row) + "\n").encode()


@pytest.mark.slow
def test_fifty_thousand_lines_are_read_as_they_are_consumed():
    counter = Counter()
    items = iter_parse(generator_stream(rollout_lines(LINES, counter)), ParseOptions())
    count = 0
    for item in items:  # consumed one at a time: no list of lines or records is built
        assert isinstance(item, ParsedLine)
        count += 1
        assert item.line_no == count
        # The parser never reads far ahead of the record it hands out.
        assert counter.produced - count < 2_000
    assert count == LINES == counter.produced


def test_memory_does_not_grow_with_the_file():
    counter = Counter()
    # 5,000 lines of about 2 KiB: a 10 MiB file.
    items = iter_parse(generator_stream(rollout_lines(5_000, counter, padding=2_000)))
    tracemalloc.start()
    try:
        count = sum(1 for item in items if isinstance(item, ParsedLine))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 5_000
    assert peak < 2 * 1024 * 1024


def test_a_huge_line_is_skipped_without_holding_it_in_memory():
    good = b'{"input": [{"role": "user", "content": "hi"}], "response": "yo"}\n'

    def chunks() -> Iterator[bytes]:
        yield good
        yield b'{"input": [], "response": "'
        for _ in range(64):  # a 64 MiB line, made of 1 MiB pieces
            yield b"x" * (1024 * 1024)
        yield b'"}\n'
        yield good

    tracemalloc.start()
    try:
        items = list(iter_parse(generator_stream(chunks()), ParseOptions(max_line_bytes=64 * 1024)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [str(item) for item in items if isinstance(item, Problem)] == [
        "line 2: the line is 64 MiB long, over the 64 KiB limit for one rollout; it was skipped"
    ]
    assert [item.line_no for item in items if isinstance(item, ParsedLine)] == [1, 3]
    assert peak < 8 * 1024 * 1024  # a few 1 MiB pieces at most, never the 64 MiB line


def test_size_limit_of_a_stream_that_cannot_tell_its_size():
    counter = Counter()
    stream = generator_stream(rollout_lines(LINES, counter))
    items = iter_parse(stream, ParseOptions(max_file_bytes=100 * 1024))
    with pytest.raises(FileRejected) as caught:
        for _ in items:
            pass
    assert str(caught.value) == (
        "the file is larger than the 100 KiB limit for one import; split it into smaller files, "
        "for example `split -l 100000 rollouts.jsonl part_`"
    )
    assert counter.produced < 2_000  # it stopped reading at the limit


def test_csv_streams_too():
    counter = Counter()

    def rows() -> Iterator[bytes]:
        yield b"input,response,step\n"
        for number in range(5_000):
            counter.produced += 1
            yield f'"Review clause {number}.","Fine, capped.",{number}\n'.encode()

    items = iter_parse(generator_stream(rows()), ParseOptions(format="csv"))
    first = next(items)
    assert isinstance(first, ParsedLine) and first.records[0].step == 0
    assert counter.produced < 3_000
    assert sum(1 for _ in items) == 4_999
