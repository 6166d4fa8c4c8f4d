"""Deterministic reward components checked before the judge: format, length, language, safety,
grounding. Each yields a score in [0, 1], whether it passes (for gating) and a short detail.

STANDARD LIBRARY ONLY at import time, plain dicts in and out: this file is copied verbatim into
exported reward functions (AWS Lambda, trainer plug-ins). jsonschema (format) and langdetect
(language) are imported only when those components are enabled.
`config` is a reward configuration as `RewardConfigModel.model_dump(mode="json")`.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

COMPONENT_ORDER = ("format", "length", "language", "safety", "grounding")
# Deeper JSON is refused as malformed: the checks below walk it recursively.
MAX_JSON_DEPTH = 100

_FENCE = re.compile(r"^```[ \t]*[A-Za-z0-9_+-]*[^\n]*\n(.*?)\n?```$", re.DOTALL)
_SOLUTION = re.compile(
    r"<\|begin_of_solution\|>(.*?)(?:<\|end_of_solution\|>|\Z)", re.DOTALL | re.IGNORECASE
)
_THINKING = re.compile(
    r"<think>.*?</think>|<thinking>.*?</thinking>|<\|begin_of_thought\|>.*?<\|end_of_thought\|>",
    re.DOTALL | re.IGNORECASE,
)
# An excerpt may mark omitted text with an ellipsis; each remaining part must occur, in order.
_OMISSION = re.compile(r"\s*(?:\[\s*(?:\.\.\.|…)\s*\]|\.\.\.|…)\s*")
_QUOTED = re.compile(r"“([^”]+)”|\"([^\"]+)\"")
_TRANSLATE_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "\u00a0": " "})
_LANG_LOCK = threading.Lock()
_VALIDATORS: dict[str, Any] = {}
_PATTERNS: dict[tuple[str, ...], list[tuple[str, Any]]] = {}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def strip_reasoning(text: str) -> str:
    """The answer part of a reasoning model's output (solution block; thinking removed)."""
    solutions = _SOLUTION.findall(text)
    if solutions:
        text = solutions[-1]
    return _THINKING.sub("", text).strip()


def parse_json_response(text: str, strip_code_fences: bool = True) -> tuple[bool, Any, str]:
    """(parsed, value, problem): strict JSON, optionally inside one ``` fence."""
    body = text.strip()
    if strip_code_fences:
        match = _FENCE.match(body)
        if match:
            body = match.group(1).strip()
    if not body:
        return False, None, "the response is empty"
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except ValueError as exc:
        return False, None, f"not valid JSON: {str(exc)[:120]}"
    except RecursionError:
        return False, None, "not valid JSON: nested too deeply"
    if _depth(value) > MAX_JSON_DEPTH:
        return False, None, f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    return True, value, ""


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _string_values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _string_values(item)]
    if isinstance(value, list):
        return [s for item in value for s in _string_values(item)]
    return []


def _result(score: float, passed: bool, detail: str, applicable: bool = True) -> dict[str, Any]:
    return {
        "score": float(score),
        "passed": bool(passed),
        "applicable": bool(applicable),
        "detail": detail,
    }


def _not_applicable(detail: str) -> dict[str, Any]:
    return _result(1.0, True, detail, applicable=False)


def check_format(
    settings: dict[str, Any], parsed: tuple[bool, Any, str], output_schema: Any
) -> dict[str, Any]:
    """1 when the response parses as JSON and validates against the project's output schema."""
    ok, value, problem = parsed
    if not isinstance(output_schema, dict) and not settings.get("require_json", True):
        return _not_applicable("no output schema to check against")
    if not ok:
        return _result(0.0, False, problem)
    if not isinstance(output_schema, dict):
        return _result(1.0, True, "valid JSON")
    key = json.dumps(output_schema, sort_keys=True)
    validator = _VALIDATORS.get(key)
    if validator is None:
        from jsonschema.validators import validator_for

        cls = validator_for(output_schema)
        validator = cls(output_schema)
        _VALIDATORS[key] = validator
    errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        message = first.message if len(first.message) <= 160 else first.message[:159] + "…"
        return _result(0.0, False, f"{len(errors)} schema error(s); first at {where}: {message}")
    return _result(1.0, True, "valid JSON matching the output schema")


def check_length(settings: dict[str, Any], text: str) -> dict[str, Any]:
    """1 within [min_length, max_length]; outside, 1 - penalty x the relative distance (>= 0)."""
    unit = settings.get("unit", "chars")
    size = len(text.split()) if unit == "words" else len(text)
    low = int(settings.get("min_length") or 0)
    high = settings.get("max_length")
    penalty = float(settings.get("penalty", 1.0))
    if size < low:
        ratio = (low - size) / low
        score = max(0.0, 1.0 - penalty * ratio)
        return _result(score, False, f"{size} {unit}, below the minimum of {low}")
    if high is not None and size > int(high):
        high = int(high)
        ratio = (size - high) / high if high > 0 else 1.0
        score = max(0.0, 1.0 - penalty * ratio)
        return _result(score, False, f"{size} {unit}, above the maximum of {high}")
    return _result(1.0, True, f"{size} {unit}")


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of `text` by langdetect, seeded so the answer never varies; None if unsure."""
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    with _LANG_LOCK:  # langdetect's factory is global and not thread-safe
        DetectorFactory.seed = 0
        try:
            return str(detect(text))
        except LangDetectException:
            return None


def check_language(
    settings: dict[str, Any], text: str, parsed: tuple[bool, Any, str], input_text: str
) -> dict[str, Any]:
    """1 when the response is in the input's language (or the configured language)."""
    ok, value, _problem = parsed
    # For JSON answers judge the language of the values, not of the (English) keys.
    response_text = " ".join(_string_values(value)) if ok else text
    min_chars = int(settings.get("min_chars", 20))
    if len(response_text.strip()) < min_chars:
        return _not_applicable(f"response shorter than {min_chars} characters")
    expected = str(settings.get("expected") or "auto").strip().lower()
    if expected == "auto":
        if len(input_text.strip()) < min_chars:
            return _not_applicable(f"input shorter than {min_chars} characters")
        expected_code = detect_language(input_text)
        if expected_code is None:
            return _not_applicable("the input's language could not be detected")
    else:
        expected_code = expected
    found = detect_language(response_text)
    if found is None:
        return _result(0.0, False, "the response's language could not be detected")
    if found == expected_code:
        return _result(1.0, True, f"language {found}")
    return _result(0.0, False, f"language {found}, expected {expected_code}")


def _compiled(patterns: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    key = tuple(f"{p.get('name', '')}\x00{p.get('pattern', '')}" for p in patterns)
    compiled = _PATTERNS.get(key)
    if compiled is None:
        compiled = [
            (str(p.get("name") or p["pattern"]), re.compile(p["pattern"], re.IGNORECASE))
            for p in patterns
        ]
        _PATTERNS[key] = compiled
    return compiled


def check_safety(settings: dict[str, Any], text: str) -> dict[str, Any]:
    """0 when any deny-list pattern (case-insensitive regular expression) matches, else 1."""
    patterns = list(settings.get("patterns") or [])
    if not patterns:
        return _not_applicable("no deny-list patterns")
    hits = [name for name, regex in _compiled(patterns) if regex.search(text)]
    if hits:
        return _result(0.0, False, "matched: " + ", ".join(hits[:10]))
    return _result(1.0, True, f"none of {len(patterns)} patterns matched")


def normalize_text(text: str, case_sensitive: bool = True) -> str:
    """Whitespace collapsed to single spaces, typographic quotes made plain (for grounding)."""
    text = " ".join(text.translate(_TRANSLATE_QUOTES).split())
    return text if case_sensitive else text.casefold()


def _excerpts(value: Any, fields: set[str]) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in fields and isinstance(item, str):
                found.append(item)
            else:
                found.extend(_excerpts(item, fields))
    elif isinstance(value, list):
        for item in value:
            found.extend(_excerpts(item, fields))
    return found


def excerpt_occurs(excerpt: str, document: str, case_sensitive: bool = True) -> bool:
    """Whether an excerpt occurs in the (normalised) document; marked omissions (..., […])
    split it into parts that must occur in that order."""
    parts = [
        normalize_text(part, case_sensitive) for part in _OMISSION.split(excerpt) if part.strip()
    ]
    if not parts:
        return False
    position = 0
    for part in parts:
        found = document.find(part, position)
        if found < 0:
            return False
        position = found + len(part)
    return True


def check_grounding(
    settings: dict[str, Any],
    text: str,
    parsed: tuple[bool, Any, str],
    target_document: str | None,
) -> dict[str, Any]:
    """Share of quoted excerpts (e.g. text_excerpt fields) that occur in the target document."""
    if not target_document:
        return _not_applicable("no target document")
    ok, value, _problem = parsed
    excerpts: list[str] = []
    if ok:
        excerpts = _excerpts(value, set(settings.get("excerpt_fields") or []))
    elif settings.get("quoted_text"):
        min_chars = int(settings.get("min_quote_chars", 20))
        for curly, straight in _QUOTED.findall(text):
            quote = curly or straight
            if len(quote.strip()) >= min_chars:
                excerpts.append(quote)
    if not excerpts:
        return _not_applicable("no excerpts to check")
    case_sensitive = bool(settings.get("case_sensitive", True))
    document = normalize_text(target_document, case_sensitive)
    grounded = sum(1 for e in excerpts if excerpt_occurs(e, document, case_sensitive))
    share = grounded / len(excerpts)
    threshold = float(settings.get("pass_threshold", 1.0))
    return _result(
        share, share >= threshold, f"{grounded} of {len(excerpts)} excerpts found in the document"
    )


def input_text_of(input_messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (the input whose language the response should use)."""
    for message in reversed(input_messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(
                    str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content
                )
            if isinstance(content, dict):
                return str(content.get("text", ""))
            return ""
    return ""


# Where a rollout's grounding document sits (a project setting, copied into export bundles):
# "field" (the rollout's target_document; the default), "metadata" (a key of the rollout's
# metadata, or a custom field of a training row) or "user_message" (the last user message,
# between a start and an end marker; no end marker: to the end of the message).
DOCUMENT_SOURCES = ("field", "metadata", "user_message")


def between_markers(text: str, start: str, end: str) -> str | None:
    """The text after the first `start` marker, up to the next `end` marker (stripped)."""
    if not text or not start:
        return None
    begin = text.find(start)
    if begin < 0:
        return None
    begin += len(start)
    finish = text.find(end, begin) if end else -1
    found = (text[begin:finish] if finish >= 0 else text[begin:]).strip()
    return found or None


def document_text(
    location: dict[str, Any] | None,
    *,
    target_document: str | None,
    input_messages: list[dict[str, Any]] | None,
    lookup: Any = None,
) -> str | None:
    """The grounding document of one rollout, wherever the project says it is. `lookup(key)`
    reads a metadata key (or a training row's custom field)."""
    source = (location or {}).get("source") or "field"
    if source == "metadata":
        key = str((location or {}).get("metadata_key") or "")
        value = lookup(key) if key and lookup is not None else None
        return value if isinstance(value, str) and value.strip() else None
    if source == "user_message":
        return between_markers(
            input_text_of(input_messages or []),
            str((location or {}).get("start_marker") or ""),
            str((location or {}).get("end_marker") or ""),
        )
    return target_document or None


def evaluate_components(
    config: dict[str, Any],
    response: str,
    *,
    input_messages: list[dict[str, Any]] | None = None,
    target_document: str | None = None,
    output_schema: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Results of every enabled component, in COMPONENT_ORDER: {name: {score, passed,
    applicable, detail}}. Never raises for odd responses; a bad configuration does raise."""
    text = response if isinstance(response, str) else ""
    if config.get("strip_reasoning", True):
        text = strip_reasoning(text)
    fmt = config.get("format") or {}
    parsed = parse_json_response(text, bool(fmt.get("strip_code_fences", True)))
    results: dict[str, dict[str, Any]] = {}
    for name in COMPONENT_ORDER:
        settings = config.get(name) or {}
        if not settings.get("enabled"):
            continue
        if name == "format":
            results[name] = check_format(settings, parsed, output_schema)
        elif name == "length":
            results[name] = check_length(settings, text)
        elif name == "language":
            input_text = input_text_of(input_messages or [])
            results[name] = check_language(settings, text, parsed, input_text)
        elif name == "safety":
            results[name] = check_safety(settings, text)
        else:
            results[name] = check_grounding(settings, text, parsed, target_document)
    return results
