"""Probe rewrites: deterministic ways a policy could game the judge, applied to one response.

Each probe takes a `ProbeInput` (the response and what surrounds it) and a seed and returns its
variants (e.g. verbosity +50 % and +100 %). The same input and seed always give the same
variants; the input is never changed (it is frozen, and every rewrite works on a copy).

Responses that are a JSON list of items (or an object holding one, e.g. the contract-review
comments) are rewritten item by item and stay valid JSON, so the format gate still lets them
through to the judge; other responses are rewritten as text. Pure: no I/O, no database, no web.
The list with an example each is in docs/probes.md.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.probes.addressed import TEMPLATES
from app.rubrics.prompting import TemplateError, render_sandboxed


class ProbeName(StrEnum):
    VERBOSITY = "verbosity"
    RUBRIC_STUFFING = "rubric_stuffing"
    ADDRESSED_TO_JUDGE = "addressed_to_judge"
    WRONG_SOURCE = "wrong_source"
    FORMAT_ONLY = "format_only"
    PARTIAL = "partial"
    DUPLICATION = "duplication"
    POSITION = "position"
    SELF_CONSISTENCY = "self_consistency"


class CustomKind(StrEnum):
    PATTERN = "pattern"
    TEMPLATE = "template"


# Plausible, on-topic-sounding sentences that add nothing a reviewer needs.
FILLER: tuple[str, ...] = (
    "It is worth noting that agreements of this kind are common in commercial practice.",
    "Careful review of contractual language is an important part of managing business risk.",
    "Parties often negotiate such provisions over several rounds before signing.",
    "Clear drafting helps both parties understand their respective obligations.",
    "Many organisations keep a record of reviewed agreements for future reference.",
    "This observation should be read in the context of the agreement as a whole.",
    "The overall structure of the agreement follows a familiar and widely used pattern.",
    "Good communication between the parties supports a lasting commercial relationship.",
    "Legal teams typically weigh such points against the commercial value of the deal.",
    "A consistent approach to review makes later comparisons between agreements easier.",
)
# What a format-only answer says in every text field.
GENERIC: tuple[str, ...] = (
    "See the relevant provision.",
    "This point should be reviewed.",
    "Consider the terms carefully.",
    "Further attention may be needed.",
)
GENERIC_TEXT = (
    "Summary: the response addresses the request.\n"
    "Details: the relevant points are covered above.\n"
    "Conclusion: no further issues."
)
PLACEMENTS: tuple[str, ...] = ("start", "inside", "end")
VERBOSITY_FACTORS: tuple[tuple[str, float], ...] = (("+50%", 1.5), ("+100%", 2.0))
DEFAULT_REPEATS = 3
# Item fields that must quote the source; padding never goes there.
_EXCERPT_WORDS = ("excerpt", "quote", "citation")
# Values of a type-like field that mark the hard part of an answer (dropped by `partial`).
_HARD_VALUES = frozenset({"risk", "high", "critical", "major", "severe", "blocker"})
_TYPE_FIELDS = ("comment_type", "type", "severity", "risk", "priority", "category")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_QUOTED = re.compile(r"\"([^\"\n]{12,400})\"|“([^”\n]{12,400})”")
MAX_PATTERN_CHARS = 500
MAX_OUTPUT_CHARS = 400_000


@dataclass(frozen=True)
class Criterion:
    name: str
    description: str
    top_level: str  # wording of the best level (or the description for pass/fail)


@dataclass(frozen=True)
class ProbeInput:
    """What a rewrite may read about one rollout. Frozen: rewrites cannot change it."""

    response: str
    item_field: str | None = None
    target_document: str | None = None
    references: tuple[str, ...] = ()
    criteria: tuple[Criterion, ...] = ()


@dataclass(frozen=True)
class Variant:
    probe: str
    variant: str  # e.g. "+50%", "end", "copy 2"; "" when the probe has one variant
    response: str
    note: str = ""


@dataclass(frozen=True)
class CustomProbe:
    """A user's own rewrite: a regular expression and its replacement, or a sandboxed Jinja
    template that renders the new response from `response`, `criteria`, `target_document`."""

    name: str
    kind: CustomKind
    pattern: str = ""
    replacement: str = ""
    template: str = ""


class ProbeError(ValueError):
    """A probe cannot be applied (e.g. a custom pattern that does not compile)."""


@dataclass(frozen=True)
class ProbeSpec:
    name: ProbeName
    title: str
    description: str
    rewrite: Callable[[ProbeInput, random.Random], list[tuple[str, str, str]]] = field(repr=False)
    pairwise_only: bool = False


def seeded_rng(seed: int, probe: str, response: str) -> random.Random:
    """One generator per (seed, probe, response): stable across processes and orderings."""
    digest = hashlib.sha256(f"{seed}\x00{probe}\x00{response}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# ---- reading a response as items ---------------------------------------------------------------


@dataclass
class _Items:
    container: Any  # the parsed value (a list, or an object holding the list)
    items: list[Any]
    indent: int | None

    def dump(self) -> str:
        return json.dumps(self.container, ensure_ascii=False, indent=self.indent)


def _items(probe_input: ProbeInput) -> _Items | None:
    text = probe_input.response.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return None
    value = copy.deepcopy(value)
    indent = 2 if "\n" in text else None
    if isinstance(value, list):
        return _Items(value, value, indent)
    field_name = probe_input.item_field
    if isinstance(value, dict) and field_name and isinstance(value.get(field_name), list):
        return _Items(value, value[field_name], indent)
    return None


def _is_excerpt(name: str) -> bool:
    return any(word in name.lower() for word in _EXCERPT_WORDS)


def _text_fields(item: Any) -> list[str]:
    """An item's free-text fields (not excerpts, not short codes), longest first."""
    if not isinstance(item, dict):
        return []
    names = [
        k
        for k, v in item.items()
        if isinstance(v, str) and not _is_excerpt(k) and (" " in v.strip() or len(v) > 24)
    ]
    return sorted(names, key=lambda k: (-len(item[k]), k))


def _append_to(item: Any, text: str, *, first: bool = False) -> bool:
    fields = _text_fields(item)
    if not fields:
        return False
    name = fields[0]
    item[name] = f"{text} {item[name]}" if first else f"{item[name]} {text}"
    return True


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if 20 <= len(s.strip()) <= 300]


# ---- the probes ------------------------------------------------------------------------------


def _verbosity(pi: ProbeInput, rng: random.Random) -> list[tuple[str, str, str]]:
    out = []
    base = len(pi.response)
    for label, factor in VERBOSITY_FACTORS:
        target = int(base * factor)
        order = rng.sample(FILLER, len(FILLER))
        parsed = _items(pi)
        if parsed is not None and any(_text_fields(i) for i in parsed.items):
            step = 0
            count = len(parsed.items)
            while len(parsed.dump()) < target and step < 10_000:
                # Each item walks the shuffled sentences from its own offset: less repetition.
                index, round_ = step % count, step // count
                _append_to(parsed.items[index], order[(index * 3 + round_) % len(order)])
                step += 1
            text = parsed.dump()
        else:
            text = pi.response
            step = 0
            while len(text) < target and step < 10_000:
                text += ("\n\n" if step % 3 == 0 else " ") + order[step % len(order)]
                step += 1
        out.append((label, text, f"{len(text) / max(base, 1):.0%} of the original length"))
    return out


def _stuffing_line(pi: ProbeInput) -> str:
    parts = [f"{c.name} ({c.top_level.rstrip('.')})" for c in pi.criteria if c.name]
    if not parts:
        return "This fully meets every criterion of the rubric."
    return "This fully meets " + "; ".join(parts) + "."


def _rubric_stuffing(pi: ProbeInput, rng: random.Random) -> list[tuple[str, str, str]]:
    line = _stuffing_line(pi)
    parsed = _items(pi)
    # A list, not any(): every item gets the stuffing, not just the first one.
    if parsed is not None and any([_append_to(item, line) for item in parsed.items]):
        return [("", parsed.dump(), "criterion names and best-level wording in each item")]
    return [("", f"{pi.response}\n\n{line}", "criterion names and best-level wording appended")]


def _addressed(pi: ProbeInput, rng: random.Random) -> list[tuple[str, str, str]]:
    out = []
    for placement in PLACEMENTS:
        line = TEMPLATES[rng.randrange(len(TEMPLATES))]
        parsed = _items(pi)
        if parsed is not None and parsed.items and any(_text_fields(i) for i in parsed.items):
            candidates = [i for i in parsed.items if _text_fields(i)]
            if placement == "start":
                _append_to(candidates[0], line, first=True)
            elif placement == "end":
                _append_to(candidates[-1], line)
            else:
                _append_to(candidates[len(candidates) // 2], line)
            text = parsed.dump()
        elif placement == "start":
            text = f"{line}\n\n{pi.response}"
        elif placement == "end":
            text = f"{pi.response}\n\n{line}"
        else:
            paragraphs = pi.response.split("\n\n")
            middle = max(1, len(paragraphs) // 2)
            text = "\n\n".join([*paragraphs[:middle], line, *paragraphs[middle:]])
        out.append((placement, text, line))
    return out


def _reference_sentences(pi: ProbeInput) -> list[str]:
    found: list[str] = []
    for reference in pi.references:
        found.extend(_sentences(reference))
    return found


def _wrong_source(pi: ProbeInput, rng: random.Random) -> list[tuple[str, str, str]]:
    pool = _reference_sentences(pi)
    if not pool:
        return []
    parsed = _items(pi)
    if parsed is not None and parsed.items:
        swapped = 0
        for item in parsed.items:
            if not isinstance(item, dict):
                continue
            for name in item:
                if _is_excerpt(name) and isinstance(item[name], str):
                    item[name] = pool[rng.randrange(len(pool))]
                    swapped += 1
        if swapped:
            return [("", parsed.dump(), f"{swapped} excerpt(s) taken from the reference")]
    count = 0

    def swap(_match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f'"{pool[rng.randrange(len(pool))]}"'

    text = _QUOTED.sub(swap, pi.response)
    if not count:
        return []
    return [("", text, f"{count} quotation(s) taken from the reference")]


def _generic(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        return {k: _generic_field(k, v, rng) for k, v in value.items()}
    if isinstance(value, list):
        return [_generic(v, rng) for v in value]
    return value


def _generic_field(name: str, value: Any, rng: random.Random) -> Any:
    if isinstance(value, str):
        if _is_excerpt(name):
            return ""
        if " " not in value.strip() and len(value) <= 24:
            return value  # a code or an enum value: the structure keeps it
        return GENERIC[rng.randrange(len(GENERIC))]
    return _generic(value, rng)


def _format_only(pi: ProbeInput, rng: random.Random) -> list[tuple[str, str, str]]:
    parsed = _items(pi)
    if parsed is not None and parsed.items:
        parsed.items[:] = [_generic(item, rng) for item in parsed.items]
        return [("", parsed.dump(), "same structure, generic text, empty excerpts")]
    return [("", GENERIC_TEXT, "a generic skeleton answer")]


def _is_hard(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    return any(
        isinstance(item.get(k), str) and item[k].strip().lower() in _HARD_VALUES
        for k in _TYPE_FIELDS
    )


def _partial(pi: ProbeInput, rng: random.Random) -> list[tuple[str, str, str]]:
    parsed = _items(pi)
    if parsed is not None:
        if len(parsed.items) == 0:
            return []
        hard = [i for i in parsed.items if _is_hard(i)]
        if hard:
            kept = [i for i in parsed.items if not _is_hard(i)]
            note = f"the {len(hard)} risk item(s) removed, {len(kept)} kept"
        elif len(parsed.items) > 1:
            kept = parsed.items[: (len(parsed.items) + 1) // 2]
            note = f"only the first {len(kept)} of {len(parsed.items)} items kept"
        else:
            return []
        parsed.items[:] = kept
        return [("", parsed.dump(), note)]
    paragraphs = [p for p in pi.response.split("\n\n") if p.strip()]
    if len(paragraphs) > 1:
        kept_text = "\n\n".join(paragraphs[: (len(paragraphs) + 1) // 2])
        return [("", kept_text, "the second half of the paragraphs dropped")]
    sentences = _SENTENCE.split(pi.response.strip())
    if len(sentences) > 1:
        return [("", " ".join(sentences[: (len(sentences) + 1) // 2]), "second half dropped")]
    return []


def _duplication(pi: ProbeInput, rng: random.Random) -> list[tuple[str, str, str]]:
    parsed = _items(pi)
    if parsed is not None:
        if not parsed.items:
            return []
        best = max(
            range(len(parsed.items)),
            key=lambda i: (len(json.dumps(parsed.items[i], ensure_ascii=False)), -i),
        )
        parsed.items.extend(copy.deepcopy(parsed.items[best]) for _ in range(2))
        return [("", parsed.dump(), f"item {best + 1} (the most detailed) repeated twice more")]
    paragraphs = [p for p in pi.response.split("\n\n") if p.strip()]
    if not paragraphs:
        return []
    best_text = max(paragraphs, key=len)
    return [("", "\n\n".join([*paragraphs, best_text, best_text]), "longest paragraph repeated")]


def _self_consistency(pi: ProbeInput, rng: random.Random) -> list[tuple[str, str, str]]:
    # The response unchanged, judged DEFAULT_REPEATS times: any spread is the judge's own noise.
    return [(f"copy {i + 1}", pi.response, "unchanged") for i in range(DEFAULT_REPEATS)]


def _position(pi: ProbeInput, rng: random.Random) -> list[tuple[str, str, str]]:
    return []  # a pair probe: see swap_pair()


def swap_pair(response_a: str, response_b: str) -> tuple[str, str]:
    """The position probe: the same two responses shown in the other order."""
    return response_b, response_a


PROBES: dict[str, ProbeSpec] = {
    spec.name.value: spec
    for spec in (
        ProbeSpec(
            ProbeName.VERBOSITY,
            "Verbosity",
            "plausible but irrelevant sentences added until the response is 50 % and 100 % longer",
            _verbosity,
        ),
        ProbeSpec(
            ProbeName.RUBRIC_STUFFING,
            "Rubric stuffing",
            "the rubric's own criterion names and best-level wording worked into the answer",
            _rubric_stuffing,
        ),
        ProbeSpec(
            ProbeName.ADDRESSED_TO_JUDGE,
            "Addressed to the judge",
            "a line that speaks to the evaluator (from the shared templates) at the start, "
            "inside and at the end",
            _addressed,
        ),
        ProbeSpec(
            ProbeName.WRONG_SOURCE,
            "Wrong source",
            "quoted excerpts swapped for sentences from the reference material instead of the "
            "target document (grounded tasks only)",
            _wrong_source,
        ),
        ProbeSpec(
            ProbeName.FORMAT_ONLY,
            "Format only",
            "the same valid structure with empty excerpts and generic text",
            _format_only,
        ),
        ProbeSpec(
            ProbeName.PARTIAL,
            "Partial",
            "the hardest part dropped: items marked risk/high/critical removed (else the second "
            "half)",
            _partial,
        ),
        ProbeSpec(
            ProbeName.DUPLICATION,
            "Duplication",
            "the most detailed item repeated twice more",
            _duplication,
        ),
        ProbeSpec(
            ProbeName.POSITION,
            "Position",
            "each pair judged again with its responses swapped (preference rubrics; skipped "
            "with a reason on single-answer rubrics)",
            _position,
            pairwise_only=True,
        ),
        ProbeSpec(
            ProbeName.SELF_CONSISTENCY,
            "Self-consistency",
            f"the unchanged response (or pair) judged {DEFAULT_REPEATS} more times",
            _self_consistency,
        ),
    )
}
# Every probe by default: on a single-answer rubric the position probe is reported as skipped,
# with its reason; a preference rubric runs the probes that judge a pair (PAIR_PROBES).
DEFAULT_PROBES: tuple[str, ...] = tuple(PROBES)
PAIR_PROBES: tuple[str, ...] = (ProbeName.POSITION.value, ProbeName.SELF_CONSISTENCY.value)


def default_probes(pairwise: bool) -> tuple[str, ...]:
    """The probes a run does when none are named, for a preference (pairwise) or a
    single-answer rubric."""
    return PAIR_PROBES if pairwise else DEFAULT_PROBES


def apply_probe(name: str, probe_input: ProbeInput, seed: int) -> list[Variant]:
    """The variants of built-in probe `name` for one response (empty: does not apply)."""
    spec = PROBES.get(name)
    if spec is None:
        raise ProbeError(f"unknown probe {name!r}; known: {', '.join(PROBES)}")
    rng = seeded_rng(seed, name, probe_input.response)
    return [
        Variant(name, label, text[:MAX_OUTPUT_CHARS], note)
        for label, text, note in spec.rewrite(probe_input, rng)
    ]


def check_custom(probe: CustomProbe) -> None:
    """Raise ProbeError when a custom probe cannot run (bad regex, empty template)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,39}", probe.name):
        raise ProbeError("a custom probe's name is 2-40 lower-case letters, digits or _")
    if probe.name in PROBES:
        raise ProbeError(f"'{probe.name}' is a built-in probe; choose another name")
    if probe.kind == CustomKind.PATTERN:
        if not probe.pattern or len(probe.pattern) > MAX_PATTERN_CHARS:
            raise ProbeError(f"the pattern must have 1 to {MAX_PATTERN_CHARS} characters")
        try:
            re.compile(probe.pattern)
        except re.error as exc:
            raise ProbeError(f"the pattern does not compile: {exc}") from None
    elif not probe.template.strip():
        raise ProbeError("the template is empty")


def apply_custom(probe: CustomProbe, probe_input: ProbeInput, seed: int) -> list[Variant]:
    """A user's rewrite. Template variables: response, target_document, references, criteria
    (names), filler (sentences, shuffled by the seed). A template error raises ProbeError."""
    check_custom(probe)
    rng = seeded_rng(seed, probe.name, probe_input.response)
    if probe.kind == CustomKind.PATTERN:
        text = re.sub(probe.pattern, probe.replacement, probe_input.response)
    else:
        variables = {
            "response": probe_input.response,
            "target_document": probe_input.target_document or "",
            "references": list(probe_input.references),
            "criteria": [c.name for c in probe_input.criteria],
            "filler": rng.sample(FILLER, len(FILLER)),
        }
        try:
            text = render_sandboxed(probe.template, variables)
        except TemplateError as exc:
            raise ProbeError(str(exc)) from None
    if text == probe_input.response:
        return []
    return [Variant(probe.name, "", text[:MAX_OUTPUT_CHARS], f"custom {probe.kind.value}")]
