"""Per-sample figures computed once at import, so the dashboard aggregates plain columns.

Pure: no database, no web. Length is in characters; text addressed to the judge uses the shared
pattern list (app/probes/addressed.py); grounding counts quoted excerpts — `text_excerpt`-like
fields of a JSON response, else quoted spans of at least 20 characters — and how many of them
do not occur in the target document (the same matching as the reward's grounding component).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from app.probes.addressed import PATTERNS
from app.rewards.components import _QUOTED, _excerpts, excerpt_occurs, normalize_text

EXCERPT_FIELDS = frozenset({"text_excerpt", "excerpt", "quote", "quoted_text", "evidence_quote"})
MIN_QUOTE_CHARS = 20
# Grounding is checked against at most this much of the document (its start), to bound the cost.
MAX_DOCUMENT_CHARS = 400_000
# Documents up to this size are normalised once per import process (the samples of a prompt
# share one): at most 512 of them are kept, a few megabytes.
CACHED_DOCUMENT_CHARS = 8_000
_MARKS_AND_SPACES = " \t\n\r\f\v.…[]"


# Words each judge-addressed pattern cannot match without (lower case): a pattern runs only on
# text containing one of its words, which skips most of the regex work on ordinary answers.
# tests/unit/drift/test_records.py checks the result equals probes.addressed.is_judge_addressed.
_PATTERN_WORDS = {
    "evaluator_vocative": (
        "evaluator",
        "grader",
        "judge",
        "reviewer",
        "assessor",
        "scorer",
        "rater",
    ),
    "score_request": ("score", "rat", "grade", "mark", "point"),
    "instruction_override": ("ignore", "disregard", "forget", "override"),
    "rubric_claim": ("satisf", "meets", "fulfil", "exceed", "rubric"),
    "system_impersonation": ("system", "evaluation", "grader", "judge"),
}
_GUARDED = tuple((_PATTERN_WORDS.get(p.name), p.regex) for p in PATTERNS)


def judge_addressed(text: str) -> bool:
    """probes.addressed.is_judge_addressed, with a cheap keyword test before each pattern."""
    lowered = text.lower()
    for words, regex in _GUARDED:
        if words is not None and not any(word in lowered for word in words):
            continue
        if regex.search(text):
            return True
    return False


@dataclass(frozen=True, slots=True)
class SampleMeasures:
    response_chars: int
    judge_addressed: bool
    quotes_total: int | None  # None: no target document to check quotes against
    quotes_ungrounded: int | None


def quoted_excerpts(response: str) -> list[str]:
    """The excerpts a response quotes: excerpt fields of a JSON answer, else quoted spans."""
    body = response.strip()
    if body.startswith(("{", "[")):
        value: Any
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            try:  # what orjson refuses and json reads (NaN, lone surrogates): the same value
                value = json.loads(body)
            except ValueError:
                value = None
        if value is not None:
            return _excerpts(value, set(EXCERPT_FIELDS))
    return [
        curly or straight
        for curly, straight in _QUOTED.findall(response)
        if len((curly or straight).strip()) >= MIN_QUOTE_CHARS
    ]


def grounding_counts(response: str, target_document: str | None) -> tuple[int | None, int | None]:
    """(quotes, quotes not found in the document); (None, None) without a document."""
    if not target_document:
        return None, None
    excerpts = quoted_excerpts(response)
    if not excerpts:
        return 0, 0
    document = (
        _normalized_document(target_document)
        if len(target_document) <= CACHED_DOCUMENT_CHARS
        else normalize_text(target_document[:MAX_DOCUMENT_CHARS])
    )
    # An excerpt found as it is occurs (the document is normalised, so the excerpt's normalised
    # parts between omission marks are parts of it, in order), unless it is nothing but marks
    # and spaces; the full matching runs for the others only.
    missing = sum(
        1
        for excerpt in excerpts
        if not (excerpt in document and excerpt.strip(_MARKS_AND_SPACES))
        and not excerpt_occurs(excerpt, document)
    )
    return len(excerpts), missing


@lru_cache(maxsize=512)
def _normalized_document(target_document: str) -> str:
    """The document as excerpts are matched against it; the samples of one prompt share it."""
    return normalize_text(target_document[:MAX_DOCUMENT_CHARS])


def measure(response: str, target_document: str | None) -> SampleMeasures:
    total, missing = grounding_counts(response, target_document)
    return SampleMeasures(
        response_chars=len(response),
        judge_addressed=judge_addressed(response),
        quotes_total=total,
        quotes_ungrounded=missing,
    )
