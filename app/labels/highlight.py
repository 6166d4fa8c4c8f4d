"""Find a response's quoted excerpts in the target document, for highlighting them in the page.

Pure: the search forgives differences in whitespace (and a quote cut with "..." is found piece by
piece, as a marked omission); the result is spans and text segments a template wraps in <mark>.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

# Keys a structured response's items use for the text they quote.
EXCERPT_KEYS = ("text_excerpt", "excerpt", "quote")
# Guards against pathological input: a one-letter excerpt would otherwise mark every letter.
MAX_OCCURRENCES = 50
# Pieces of a quote with marked omissions must follow each other this closely (normalised chars).
MAX_OMISSION_GAP = 2000
_ELLIPSIS = re.compile(r"\s*(?:\.{3,}|…|\[\s*\.{3}\s*\]|<omitted>)\s*")

MatchStatus = Literal["found", "found_with_omissions", "not_found", "empty"]


@dataclass(frozen=True)
class Span:
    """A half-open character range [start, end) of the original document."""

    start: int
    end: int


@dataclass(frozen=True)
class ExcerptMatch:
    """Where one excerpt occurs. ``spans`` holds every occurrence (each piece of a quote with
    omissions is its own span); empty when the excerpt is not in the document."""

    index: int
    excerpt: str
    status: MatchStatus
    spans: tuple[Span, ...] = ()

    @property
    def found(self) -> bool:
        return self.status in ("found", "found_with_omissions")


@dataclass(frozen=True)
class Segment:
    """A run of document text; ``marks`` are the indices of the excerpts covering it."""

    text: str
    marks: tuple[int, ...] = ()


class _Normalised:
    """The document with every whitespace run made one space, mapped back to the original."""

    def __init__(self, text: str) -> None:
        chars: list[str] = []
        origin: list[int] = []
        previous_space = False
        for position, char in enumerate(text):
            if char.isspace():
                if previous_space:
                    continue
                chars.append(" ")
                previous_space = True
            else:
                chars.append(char)
                previous_space = False
            origin.append(position)
        self.text = "".join(chars)
        self.origin = origin

    def span(self, start: int, end: int) -> Span:
        # The excerpt never starts or ends with a space, so both ends map to real characters.
        return Span(self.origin[start], self.origin[end - 1] + 1)


def squash(text: str) -> str:
    """Text with whitespace runs made single spaces and the ends trimmed."""
    return " ".join(text.split())


def _occurrences(doc: _Normalised, needle: str) -> list[int]:
    starts: list[int] = []
    position = doc.text.find(needle)
    while position != -1 and len(starts) < MAX_OCCURRENCES:
        starts.append(position)
        position = doc.text.find(needle, position + len(needle))
    return starts


def _with_omissions(doc: _Normalised, pieces: list[str]) -> tuple[Span, ...]:
    """The first placement of the pieces in order, each close after the previous one."""
    for first in _occurrences(doc, pieces[0]):
        spans = [doc.span(first, first + len(pieces[0]))]
        cursor = first + len(pieces[0])
        for piece in pieces[1:]:
            found = doc.text.find(piece, cursor)
            if found == -1 or found - cursor > MAX_OMISSION_GAP:
                break
            spans.append(doc.span(found, found + len(piece)))
            cursor = found + len(piece)
        else:
            return tuple(spans)
    return ()


def locate_excerpts(document: str, excerpts: Sequence[str]) -> list[ExcerptMatch]:
    """Every occurrence of each excerpt in ``document``, whitespace-insensitively."""
    doc = _Normalised(document)
    matches: list[ExcerptMatch] = []
    for index, excerpt in enumerate(excerpts):
        needle = squash(excerpt)
        if not needle:
            matches.append(ExcerptMatch(index, excerpt, "empty"))
            continue
        starts = _occurrences(doc, needle)
        if starts:
            spans = tuple(doc.span(s, s + len(needle)) for s in starts)
            matches.append(ExcerptMatch(index, excerpt, "found", spans))
            continue
        pieces = [squash(p) for p in _ELLIPSIS.split(needle)]
        pieces = [p for p in pieces if p]
        if len(pieces) > 1:
            spans = _with_omissions(doc, pieces)
            if spans:
                matches.append(ExcerptMatch(index, excerpt, "found_with_omissions", spans))
                continue
        matches.append(ExcerptMatch(index, excerpt, "not_found"))
    return matches


def segments(document: str, matches: Sequence[ExcerptMatch]) -> list[Segment]:
    """The document cut at every span boundary; overlapping excerpts share a segment."""
    cuts = {0, len(document)}
    for match in matches:
        for span in match.spans:
            cuts.update((span.start, span.end))
    ordered = sorted(cuts)
    result: list[Segment] = []
    for start, end in zip(ordered, ordered[1:], strict=False):
        if start == end:
            continue
        marks = tuple(
            match.index
            for match in matches
            if any(span.start <= start and end <= span.end for span in match.spans)
        )
        if result and result[-1].marks == marks:
            # Adjacent text with the same marks stays one segment (one <mark> element).
            result[-1] = Segment(result[-1].text + document[start:end], marks)
        else:
            result.append(Segment(document[start:end], marks))
    return result


@dataclass(frozen=True)
class StructuredItem:
    """One item of a structured (JSON list) response, with the text it quotes, if any."""

    index: int
    fields: dict[str, Any]
    excerpt: str | None


def _items_of(value: Any, item_field: str | None) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if item_field and isinstance(value.get(item_field), list):
            return list(value[item_field])
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return None


def structured_items(response: str, item_field: str | None = None) -> list[StructuredItem] | None:
    """The response's items when it is a JSON list of objects (or an object holding one list,
    e.g. {"comments": [...]}); None when it is prose, broken JSON or another shape."""
    try:
        value = json.loads(response)
    except (ValueError, RecursionError):
        return None
    items = _items_of(value, item_field)
    if items is None or not all(isinstance(item, dict) for item in items):
        return None
    result: list[StructuredItem] = []
    for index, item in enumerate(items):
        excerpt = next(
            (str(item[key]) for key in EXCERPT_KEYS if isinstance(item.get(key), str)), None
        )
        result.append(StructuredItem(index, dict(item), excerpt))
    return result
