"""Turn a judge's parsed answer into scores, recomputed from the per-criterion scores.

STDLIB ONLY, plain dicts in and out: this file is copied verbatim into exported reward
functions (AWS Lambda and trainer plug-ins), so it must not import anything from the app.
`defn` is a rubric definition as `RubricDefinition.model_dump(mode="json")`.

Rules (the judge's own aggregate_score / item_score are never trusted):
- boolean criteria: pass = 1, fail = 0; scale criteria: (value - min) / (max - min).
- a criterion "passes" when it is true (boolean) or at least its scale's midpoint
  (min + max) / 2, e.g. 3 or more on 1-5. all_must_pass and hard_fail use that rule.
- weighted_mean: sum(weight * normalized) / sum(weight).
- all_must_pass: 1 when every criterion passes, else 0.
- minimum: the lowest normalized criterion score (weights ignored).
- per_item_mean: each item of the answer's item list scores the weighted mean of its
  criteria; the result is the mean over items. An empty list scores 0 (aggregate 0 too, as in
  the contract-review reference case: no comments at all is worse than any attempt).
- item coverage (per_item_mean, when the caller knows how many items the response has, see
  response_item_count): the answer must score every item exactly once, item_index 0..n-1.
  A missing, duplicated or out-of-range index makes the answer unusable (ScoringError: repair,
  then neutral), never a score from the items that happened to come back: a judge that skips
  the bad comments would otherwise hand the policy a higher reward.
- hard_fail: a failing hard-fail criterion makes the normalized score 0 and the aggregate
  the scale's minimum (per item, for per_item_mean).
- "aggregate" is on the rubric's raw scale: the common [min, max] when every criterion is a
  scale with the same range (e.g. 1-5), otherwise [0, 1]. "normalized" is always 0..1.
A missing or invalid score raises ScoringError: the caller treats it as a judge failure
(neutral reward), not as a low score.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_TRUE_WORDS = frozenset({"true", "pass", "passed", "yes", "y", "1"})
_FALSE_WORDS = frozenset({"false", "fail", "failed", "no", "n", "0"})
_WINNER_ALIASES = {
    "a": "A",
    "response a": "A",
    "response_a": "A",
    "model_a": "A",
    "b": "B",
    "response b": "B",
    "response_b": "B",
    "model_b": "B",
    "tie": "tie",
    "draw": "tie",
    "equal": "tie",
}


class ScoringError(ValueError):
    """The judge's answer cannot be scored (missing, malformed or out-of-range score)."""


def criterion_range(criterion: dict[str, Any]) -> tuple[int, int]:
    """(min, max) of a criterion: (0, 1) for boolean, first and last level for a scale."""
    if criterion["type"] == "boolean":
        return 0, 1
    levels = criterion["levels"]
    return int(levels[0]["value"]), int(levels[-1]["value"])


def rubric_scale(defn: dict[str, Any]) -> tuple[float, float]:
    """The raw scale of the aggregate: the shared scale range, else (0, 1)."""
    ranges = {criterion_range(c) for c in defn["criteria"] if c["type"] == "scale"}
    all_scales = all(c["type"] == "scale" for c in defn["criteria"])
    if all_scales and len(ranges) == 1:
        low, high = next(iter(ranges))
        return float(low), float(high)
    return 0.0, 1.0


def criterion_passes(criterion: dict[str, Any], raw: bool | float) -> bool:
    """Pass rule shared by all_must_pass and hard_fail (see the module docstring)."""
    if criterion["type"] == "boolean":
        return bool(raw)
    low, high = criterion_range(criterion)
    return float(raw) >= (low + high) / 2


def _read_boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ScoringError(f"{where}: expected true or false, got {value!r}")


def _read_scale(value: Any, low: int, high: int, where: str) -> float | int:
    number: float | int
    if isinstance(value, bool):
        raise ScoringError(f"{where}: expected a number from {low} to {high}, got {value!r}")
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ScoringError(
                f"{where}: expected a number from {low} to {high}, got {value!r}"
            ) from None
        if number.is_integer():
            number = int(number)
    else:
        raise ScoringError(f"{where}: expected a number from {low} to {high}, got {value!r}")
    if not math.isfinite(number) or not low <= number <= high:
        raise ScoringError(f"{where}: {value!r} is outside the scale {low}..{high}")
    return number


def _read_score(criterion: dict[str, Any], entry: Any, where: str) -> bool | float | int:
    # Accept {"score": v, ...} as the schema asks, and a bare value from looser judges.
    value = entry.get("score") if isinstance(entry, dict) else entry
    where = f"{where}.score" if isinstance(entry, dict) else where
    if value is None:
        raise ScoringError(f"{where}: missing score")
    if criterion["type"] == "boolean":
        return _read_boolean(value, where)
    low, high = criterion_range(criterion)
    return _read_scale(value, low, high, where)


def _normalize(criterion: dict[str, Any], raw: bool | float) -> float:
    if criterion["type"] == "boolean":
        return 1.0 if raw else 0.0
    low, high = criterion_range(criterion)
    return (float(raw) - low) / (high - low)


def _score_criteria(
    defn: dict[str, Any], criteria_answer: Any, where: str
) -> tuple[dict[str, float], dict[str, bool | float | int], bool]:
    if not isinstance(criteria_answer, dict):
        raise ScoringError(f"{where}: expected an object of per-criterion scores")
    normalized: dict[str, float] = {}
    raw: dict[str, bool | float | int] = {}
    hard_failed = False
    for criterion in defn["criteria"]:
        key = criterion["key"]
        if key not in criteria_answer:
            raise ScoringError(f"{where}.{key}: missing criterion")
        value = _read_score(criterion, criteria_answer[key], f"{where}.{key}")
        raw[key] = value
        normalized[key] = _normalize(criterion, value)
        if criterion.get("hard_fail") and not criterion_passes(criterion, value):
            hard_failed = True
    return normalized, raw, hard_failed


def _weighted_mean(defn: dict[str, Any], normalized: dict[str, float]) -> float:
    weights = {c["key"]: float(c.get("weight", 1.0)) for c in defn["criteria"]}
    total = sum(weights.values())
    return sum(weights[key] * value for key, value in normalized.items()) / total


def _combine(
    defn: dict[str, Any],
    aggregation: str,
    normalized: dict[str, float],
    raw: dict[str, bool | float | int],
) -> float:
    if aggregation in ("weighted_mean", "per_item_mean"):
        return _weighted_mean(defn, normalized)
    if aggregation == "all_must_pass":
        passed = all(criterion_passes(c, raw[c["key"]]) for c in defn["criteria"])
        return 1.0 if passed else 0.0
    if aggregation == "minimum":
        return min(normalized.values())
    raise ScoringError(f"unknown aggregation {aggregation!r}")


def _to_scale(normalized: float, scale: tuple[float, float]) -> float:
    low, high = scale
    return low + normalized * (high - low)


_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)


def response_item_count(response: str, item_field: str | None) -> int:
    """How many items a per-item rubric's judge must score in `response`: the length of the
    response's JSON list (or of its `item_field` list when the response is an object); 0 when
    the response cannot be read as a list, as the judge is told to answer with an empty list."""
    text = _THINK.sub("", response or "", count=1).strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except ValueError:
        return 0
    if isinstance(value, dict) and item_field:
        value = value.get(item_field)
    return len(value) if isinstance(value, list) else 0


def check_item_coverage(field: str, items: list[Any], expected: int) -> None:
    """Raise ScoringError unless `items` score each of the response's `expected` items exactly
    once (item_index 0..expected-1, no duplicate, none missing, none out of range)."""
    seen: dict[int, int] = {}
    for position, item in enumerate(items):
        index = item.get("item_index") if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int):
            raise ScoringError(f"{field}[{position}].item_index: expected a whole number")
        if not 0 <= index < expected:
            raise ScoringError(
                f"{field}[{position}].item_index: {index} is out of range: the response has "
                f"{expected} item{'s' if expected != 1 else ''} (indices 0 to {expected - 1})"
                if expected
                else f"{field}[{position}]: the response has no items to score"
            )
        if index in seen:
            raise ScoringError(
                f"{field}[{position}].item_index: item {index} is scored twice "
                f"(also at {field}[{seen[index]}])"
            )
        seen[index] = position
    missing = [i for i in range(expected) if i not in seen]
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise ScoringError(
            f"{field}: the answer scores {len(seen)} of the response's {expected} items; "
            f"item_index {shown} {'is' if len(missing) == 1 else 'are'} missing"
        )


def _score_items(
    defn: dict[str, Any], answer: dict[str, Any], item_count: int | None
) -> dict[str, Any]:
    field = defn["item_field"]
    items = answer.get(field)
    if not isinstance(items, list):
        raise ScoringError(f"{field}: expected a list of items, got {type(items).__name__}")
    if item_count is not None:
        check_item_coverage(field, items, item_count)
        # Score in the response's order, whatever order the judge listed them in.
        items = sorted(items, key=lambda item: int(item["item_index"]))
    scale = rubric_scale(defn)
    scored: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            raise ScoringError(f"{where}: expected an object")
        normalized, raw, hard_failed = _score_criteria(
            defn, item.get("criteria"), f"{where}.criteria"
        )
        value = 0.0 if hard_failed else _combine(defn, "per_item_mean", normalized, raw)
        scored.append(
            {
                "index": index,
                "item_index": item.get("item_index", index),
                "criteria": normalized,
                "raw": raw,
                "score": _to_scale(value, scale),
                "normalized": value,
                "hard_failed": hard_failed,
            }
        )
    if not scored:
        return {
            "criteria": {},
            "raw": {},
            "aggregate": 0.0,
            "normalized": 0.0,
            "hard_failed": False,
            "items": [],
        }
    keys = [c["key"] for c in defn["criteria"]]
    count = len(scored)
    overall = sum(item["normalized"] for item in scored) / count
    return {
        "criteria": {k: sum(item["criteria"][k] for item in scored) / count for k in keys},
        # Mean raw value per criterion; for a boolean criterion that is the pass rate.
        "raw": {k: sum(float(item["raw"][k]) for item in scored) / count for k in keys},
        "aggregate": _to_scale(overall, scale),
        "normalized": overall,
        "hard_failed": any(item["hard_failed"] for item in scored),
        "items": scored,
    }


def score_answer(
    defn: dict[str, Any], answer: dict[str, Any], item_count: int | None = None
) -> dict[str, Any]:
    """Scores of a rubric-mode judge answer; see the module docstring for the rules.
    `item_count`: how many items the judged response has (response_item_count); per-item
    rubrics then require the answer to cover each exactly once. None skips that check.

    Returns {"criteria": {key: 0..1}, "raw": {key: raw score}, "aggregate": raw scale,
    "normalized": 0..1, "hard_failed": bool, "items": [per-item scores, per_item_mean only]}.
    """
    if defn.get("mode") == "preference":
        raise ScoringError("a preference rubric has no score: use preference_winner()")
    if not isinstance(answer, dict):
        raise ScoringError(f"expected the judge's answer as an object, got {type(answer).__name__}")
    if defn["aggregation"] == "per_item_mean":
        return _score_items(defn, answer, item_count)
    normalized, raw, hard_failed = _score_criteria(defn, answer.get("criteria"), "criteria")
    value = 0.0 if hard_failed else _combine(defn, defn["aggregation"], normalized, raw)
    return {
        "criteria": normalized,
        "raw": raw,
        "aggregate": _to_scale(value, rubric_scale(defn)),
        "normalized": value,
        "hard_failed": hard_failed,
        "items": [],
    }


def preference_winner(answer: dict[str, Any]) -> str:
    """'A', 'B' or 'tie' from a preference-mode judge answer (a few spellings accepted)."""
    if not isinstance(answer, dict):
        raise ScoringError(f"expected the judge's answer as an object, got {type(answer).__name__}")
    value = answer.get("winner")
    if isinstance(value, str):
        winner = _WINNER_ALIASES.get(" ".join(value.strip().lower().split()))
        if winner is not None:
            return winner
    raise ScoringError(f"winner: expected 'A', 'B' or 'tie', got {value!r}")
