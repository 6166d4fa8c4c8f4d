"""Byte-level reading of an uploaded file: first-block checks (empty, binary, UTF-16), bounded
line-by-line reading with size limits, and decoding one JSONL line into an object."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from app.rollouts.formats.common import FileRejected, Problem, describe

HEAD_BYTES = 64 * 1024
UTF8_BOM = b"\xef\xbb\xbf"
_DRAIN_CHUNK = 1024 * 1024

JSON_ARRAY_MESSAGE = (
    "the file is a JSON array; expected one JSON object per line (JSONL) — convert with "
    "`jq -c '.[]'`"
)
PRETTY_JSON_MESSAGE = (
    "the file is a JSON object spread over several lines; expected one JSON object per line "
    "(JSONL) — convert with `jq -c .`"
)
EMPTY_MESSAGE = "the file is empty"
BLANK_MESSAGE = "the file contains only blank lines: there are no rollouts in it"
BINARY_MESSAGE = (
    "the file is not text (it contains binary data near byte {offset}); expected a JSONL or "
    "CSV file saved as UTF-8 text"
)
GZIP_MESSAGE = (
    "the file is gzip-compressed; decompress it first (for example `gunzip rollouts.jsonl.gz`) "
    "and upload the .jsonl file"
)
ZIP_MESSAGE = (
    "the file is a ZIP archive or an Excel workbook; save the sheet as “CSV UTF-8” or extract "
    "the .jsonl file, and upload that"
)
WIDE_ENCODING_MESSAGE = (
    "line 1: the file is encoded as {name}; expected UTF-8. Save it again as UTF-8 (in Excel "
    "choose “CSV UTF-8”; on the command line `iconv -f {name} -t UTF-8 in.jsonl > out.jsonl`)"
)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            if unit == "bytes":
                return f"{size} bytes"
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def too_big_message(limit: int, size: int | None) -> str:
    actual = f" (it is {human_size(size)})" if size is not None else ""
    return (
        f"the file is larger than the {human_size(limit)} limit for one import{actual}; split it "
        "into smaller files, for example `split -l 100000 rollouts.jsonl part_`"
    )


def read_head(stream: BinaryIO) -> bytes:
    """Up to HEAD_BYTES from the start of the stream (raw streams may return short reads)."""
    parts: list[bytes] = []
    size = 0
    while size < HEAD_BYTES:
        chunk = stream.read(HEAD_BYTES - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def remaining_size(stream: BinaryIO) -> int | None:
    """Bytes left in a seekable stream, None when it cannot tell without reading."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
    except (OSError, ValueError, AttributeError):
        return None
    return end - here


def check_head(head: bytes) -> None:
    """Reject files whose first block shows they are not UTF-8 text at all."""
    if not head or head == UTF8_BOM:
        raise FileRejected(EMPTY_MESSAGE)
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise FileRejected(WIDE_ENCODING_MESSAGE.format(name="UTF-32"), line=1)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileRejected(WIDE_ENCODING_MESSAGE.format(name="UTF-16"), line=1)
    if head.startswith(b"\x1f\x8b"):
        raise FileRejected(GZIP_MESSAGE)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise FileRejected(ZIP_MESSAGE)
    sample = head[:4096]
    nuls = sample.count(0)
    if nuls:
        # UTF-16 without a byte-order mark: ASCII text with a zero byte beside every letter.
        evens, odds = sample[0::2], sample[1::2]
        if nuls * 3 >= len(sample) and (
            odds.count(0) >= 0.9 * len(odds) or evens.count(0) >= 0.9 * len(evens)
        ):
            raise FileRejected(WIDE_ENCODING_MESSAGE.format(name="UTF-16"), line=1)
        raise FileRejected(BINARY_MESSAGE.format(offset=head.index(0)), line=None)
    # A stray control character happens in real text; many of them mean a binary format.
    controls = len(_CONTROL_BYTE.findall(head))
    if controls > max(8, len(head) // 100):
        first = _CONTROL_BYTE.search(head)
        raise FileRejected(BINARY_MESSAGE.format(offset=first.start() if first else 0))


# Control bytes that never occur in text (tab, line breaks, form feed and escape do).
_CONTROL_BYTE = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")


def first_text_line(head: bytes) -> bytes:
    """The first non-blank line of the head, stripped (may be cut at the head's end)."""
    for line in head.split(b"\n"):
        if line.strip():
            return line.strip()
    return b""


def check_json_shape(head: bytes) -> None:
    """Reject a JSON array or a pretty-printed object, which are JSON but not JSONL."""
    first = first_text_line(head)
    if first.startswith(b"["):
        raise FileRejected(JSON_ARRAY_MESSAGE, line=1)
    if first == b"{":
        raise FileRejected(PRETTY_JSON_MESSAGE, line=1)


class _Rejoined(io.RawIOBase):
    """The head already read, followed by the rest of the stream, as one raw stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass(frozen=True, slots=True)
class RawLine:
    number: int
    text: str | None  # None when the line was over the limit and skipped
    size: int  # bytes, without the line break
    ends_with_newline: bool


class LineSource:
    """Reads lines with a bounded readline: memory stays within one line's limit."""

    def __init__(
        self,
        head: bytes,
        stream: BinaryIO,
        *,
        max_line_bytes: int,
        max_file_bytes: int,
        encoding: str,
    ) -> None:
        self._bom = head.startswith(UTF8_BOM)
        body = head[len(UTF8_BOM) :] if self._bom else head
        self._buffer = io.BufferedReader(_Rejoined(body, stream), buffer_size=HEAD_BYTES)
        self._total = len(UTF8_BOM) if self._bom else 0
        self.max_line_bytes = max_line_bytes
        self.max_file_bytes = max_file_bytes
        self.encoding = encoding

    def _count(self, size: int) -> None:
        self._total += size
        if self._total > self.max_file_bytes:
            raise FileRejected(too_big_message(self.max_file_bytes, None))

    def __iter__(self) -> Iterator[RawLine]:
        number = 0
        while True:
            raw = self._buffer.readline(self.max_line_bytes + 2)  # room for "\r\n"
            if not raw:
                return
            number += 1
            self._count(len(raw))
            ends_with_newline = raw.endswith(b"\n")
            content = raw.removesuffix(b"\n").removesuffix(b"\r")
            if len(content) > self.max_line_bytes:
                size = len(content)
                while not ends_with_newline:  # skip the rest of the line, a chunk at a time
                    chunk = self._buffer.readline(_DRAIN_CHUNK)
                    if not chunk:
                        break
                    self._count(len(chunk))
                    ends_with_newline = chunk.endswith(b"\n")
                    size += len(chunk.removesuffix(b"\n").removesuffix(b"\r"))
                yield RawLine(number, None, size, ends_with_newline)
                continue
            yield RawLine(number, self._decode(content, number), len(content), ends_with_newline)

    def _decode(self, content: bytes, number: int) -> str:
        try:
            return content.decode(self.encoding)
        except UnicodeDecodeError as error:
            raise FileRejected(
                not_utf8_message(content, number, error, self.encoding), line=number
            ) from None


def not_utf8_message(content: bytes, number: int, error: UnicodeDecodeError, encoding: str) -> str:
    column = len(content[: error.start].decode(encoding, errors="replace")) + 1
    byte = content[error.start]
    name = "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    message = (
        f"line {number} is not valid {name} text (byte 0x{byte:02X} at column {column}); "
        f"expected {name}."
    )
    try:
        content.decode("cp1252")
    except UnicodeDecodeError:
        return message + " Save the file again as UTF-8."
    return message + (
        " The file looks like Latin-1 / Windows-1252: save it again as UTF-8 (in Excel choose "
        "“CSV UTF-8”; on the command line `iconv -f WINDOWS-1252 -t UTF-8 in.jsonl > out.jsonl`)"
    )


def too_long_problem(line: RawLine, limit: int) -> Problem:
    return Problem(
        line.number,
        None,
        f"the line is {human_size(line.size)} long, over the {human_size(limit)} limit for one "
        "rollout; it was skipped",
    )


# ---------------------------------------------------------------------------- JSON lines

_JSON_REASONS = {
    "Expecting ',' delimiter": "expected a comma or a closing bracket",
    "Expecting ':' delimiter": "expected ':' after a field name",
    "Expecting value": "expected a value",
    "Expecting property name enclosed in double quotes": (
        "expected a field name in double quotes (JSON allows no single quotes and no comma "
        "before a closing bracket)"
    ),
    "Unterminated string starting at": "a text value has no closing quote",
    "Invalid control character at": (
        "a text value contains a raw line break or tab (write it as \\n or \\t)"
    ),
    "Extra data": "unexpected text after the end of the JSON object (two objects on one line?)",
    "Invalid \\escape": "invalid backslash escape in a text value",
    "Invalid \\uXXXX escape": "invalid \\u escape in a text value",
}

TRUNCATED_MESSAGE = (
    "the last line is truncated: the file ends before the JSON object is closed (was the file "
    "cut off while copying or uploading?)"
)

_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class _NonStandardNumber(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _reject_constant(name: str) -> Any:
    raise _NonStandardNumber(name)


# Python's json reads NaN and Infinity, which are not JSON and which PostgreSQL refuses.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


# A run of this many digits may be an integer beyond 64 bits, which orjson reads as a float:
# such a line is read by json, which keeps the integer exact (content hashes depend on it).
# Found by mapping every digit to 0 and looking for the run: several times faster than a regex.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


def fast_decode(text: str) -> Any:
    """The JSON value of a line by orjson, or None when the line needs json's reading.

    orjson refuses NaN, infinite numbers and lone surrogates (json's path reports them in plain
    words) and reads integers beyond 64 bits as floats (json keeps them exact); for everything
    else both give the same value, orjson several times faster. A line read here holds no
    infinite number, so only a \\u0000 escape can make it unstorable (see rollouts.bulk).
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if _LONG_DIGITS in text.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO):
        return None
    return value


def decode_json_object(
    text: str, line: RawLine, max_depth: int, value: Any = None
) -> dict[str, Any] | list[Problem]:
    """One JSONL line as an object, or the problems that stop it being one.

    value: the line already decoded by fast_decode (None: decode it here).
    """
    number = line.number
    if value is None:
        value = fast_decode(text)
    try:
        if value is None:
            value = _DECODER.decode(text)
    except _NonStandardNumber as error:
        return [
            Problem(
                number,
                None,
                f"not valid JSON: {error.name} is not a JSON value (write null for a missing "
                "number)",
            )
        ]
    except json.JSONDecodeError as error:
        at_end = error.pos >= len(text) or error.msg.startswith("Unterminated string")
        if at_end and not line.ends_with_newline:
            return [Problem(number, None, TRUNCATED_MESSAGE)]
        reason = _JSON_REASONS.get(error.msg, error.msg)
        if at_end:
            reason = "the line ends before the JSON object is closed (is a value split over two "
            reason += "lines?)"
        return [Problem(number, None, f"not valid JSON at column {error.colno}: {reason}")]
    except RecursionError:
        return [Problem(number, None, f"nested more than {max_depth} levels deep")]
    if not isinstance(value, dict):
        return [
            Problem(
                number, None, f"expected a JSON object ({{...}}) on each line, got {kind_of(value)}"
            )
        ]
    # Counting brackets is cheap and bounds the depth, so most lines skip the walk.
    if text.count("{") + text.count("[") > max_depth:
        deep = too_deep_field(value, max_depth)
        if deep is not None:
            return [Problem(number, deep, f"nested more than {max_depth} levels deep")]
    if _ESCAPED_SURROGATE.search(text):
        broken = broken_text_field(value)
        if broken is not None:
            return [
                Problem(
                    number,
                    broken,
                    "contains a broken character escape (half of a \\uXXXX surrogate pair); "
                    "export the file again as UTF-8",
                )
            ]
    return value


def kind_of(value: Any) -> str:
    return "a list" if isinstance(value, list) else describe(value)


def too_deep_field(value: dict[str, Any], max_depth: int) -> str | None:
    """The top-level field holding a value nested deeper than max_depth (the line is depth 1)."""
    stack: list[tuple[Any, int, str]] = [
        (child, 2, key) for key, child in value.items() if isinstance(child, dict | list)
    ]
    while stack:
        item, depth, top = stack.pop()
        if depth > max_depth:
            return top
        children = item.values() if isinstance(item, dict) else item
        stack.extend(
            (child, depth + 1, top) for child in children if isinstance(child, dict | list)
        )
    return None


def broken_text_field(value: dict[str, Any]) -> str | None:
    """The top-level field holding a lone surrogate, which no database can store as UTF-8."""
    stack: list[tuple[Any, str]] = [(child, key) for key, child in value.items()]
    stack.extend((key, key) for key in value)
    while stack:
        item, top = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return top
        elif isinstance(item, dict):
            stack.extend((child, top) for child in item.values())
            stack.extend((key, top) for key in item)
        elif isinstance(item, list):
            stack.extend((child, top) for child in item)
    return None
