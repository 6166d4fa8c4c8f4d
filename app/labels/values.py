"""Label values checked against a rubric, and the one reading of a judge verdict labels meet.

Pure: checks and normalises what an expert entered (pass/fail, levels, A/B/tie), computes the
expert's aggregate with the judge's own scoring rules, reads a Verdict's stored shape, and decides
whether a judge score and a label disagree.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from app.agreement.preference import combine_swapped
from app.rubrics.definition import Criterion, RubricDefinition, RubricMode
from app.rubrics.scoring import ScoringError, rubric_scale, score_answer

LabelValue = bool | int
Preference = Literal["A", "B", "tie"]


class Deserved(StrEnum):
    """An audit queue's extra question: did the sample deserve the reward it got in training?"""

    yes = "yes"
    no = "no"
    unsure = "unsure"


class LabelStatus(StrEnum):
    """draft: kept while the annotator works; submitted: counted in agreement and exports."""

    draft = "draft"
    submitted = "submitted"


class QueueKind(StrEnum):
    """labeling: expert labels for judge calibration; audit: reviewers auditing drift samples."""

    labeling = "labeling"
    audit = "audit"


def parse_deserved(raw: Any) -> Deserved | None:
    """'yes' / 'no' / 'unsure' (or blank: no answer); LabelValueError otherwise."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        return Deserved(str(raw).strip().lower())
    except ValueError:
        raise LabelValueError(
            [{"field": "deserved", "message": "answer yes, no or unsure"}]
        ) from None


AGGREGATE = "_aggregate"
OK_PARSE_STATUSES = ("ok", "repaired")

_TRUE = frozenset({"pass", "passed", "true", "yes", "y", "1", "p"})
_FALSE = frozenset({"fail", "failed", "false", "no", "n", "0", "f"})
_PREFERENCES: dict[str, Preference] = {
    "a": "A",
    "response a": "A",
    "model_a": "A",
    "b": "B",
    "response b": "B",
    "model_b": "B",
    "tie": "tie",
    "draw": "tie",
    "equal": "tie",
}


class LabelValueError(ValueError):
    """What is wrong with a label, as [{"field": ..., "message": ...}] problems."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))
        self.problems = problems


def _blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def parse_value(criterion: Criterion, raw: Any) -> LabelValue:
    """One criterion's value: True/False for pass/fail, the level (int) for a scale.

    Raises ValueError with a message meant for the expert.
    """
    if criterion.type == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int | float) and raw in (0, 1):
            return bool(raw)
        word = str(raw).strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(f"must be pass or fail, got {raw!r}")
    if isinstance(raw, bool):
        raise ValueError(f"must be a level from {criterion.min_value} to {criterion.max_value}")
    try:
        number = float(str(raw).strip()) if isinstance(raw, str) else float(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"must be a level from {criterion.min_value} to {criterion.max_value}, got {raw!r}"
        ) from None
    if not number.is_integer() or not criterion.min_value <= number <= criterion.max_value:
        raise ValueError(
            f"must be a level from {criterion.min_value} to {criterion.max_value}, got {raw!r}"
        )
    return int(number)


def parse_values(
    definition: RubricDefinition, raw: Mapping[str, Any], *, complete: bool
) -> dict[str, LabelValue]:
    """Every criterion value in ``raw`` checked against the rubric; blanks are left out.

    ``complete`` (for a submission) requires a value for every criterion.
    """
    problems: list[dict[str, str]] = []
    keys = {criterion.key for criterion in definition.criteria}
    for key in raw:
        if key not in keys:
            problems.append({"field": key, "message": "is not a criterion of this rubric"})
    values: dict[str, LabelValue] = {}
    for criterion in definition.criteria:
        value = raw.get(criterion.key)
        if _blank(value):
            if complete and definition.mode == RubricMode.rubric:
                problems.append(
                    {"field": criterion.key, "message": f"“{criterion.name}” needs a value"}
                )
            continue
        try:
            values[criterion.key] = parse_value(criterion, value)
        except ValueError as exc:
            problems.append({"field": criterion.key, "message": str(exc)})
    if problems:
        raise LabelValueError(problems)
    return values


def parse_preference(raw: Any) -> Preference | None:
    """'A', 'B' or 'tie' (a few spellings accepted); None when blank."""
    if _blank(raw):
        return None
    found = _PREFERENCES.get(" ".join(str(raw).strip().lower().split()))
    if found is None:
        raise LabelValueError(
            [{"field": "preference", "message": f"must be A, B or tie, got {raw!r}"}]
        )
    return found


def shown_order(pair_id: int, annotator_key: str) -> str:
    """The random-looking but stable order ("AB" or "BA") a pair is shown to one annotator.

    Stable so a reload shows the same sides; recorded on the label when it is saved.
    """
    digest = hashlib.sha256(f"pair-order:{pair_id}:{annotator_key}".encode()).digest()
    return "AB" if digest[0] % 2 == 0 else "BA"


def preference_from_position(choice: str, order: str) -> Preference | None:
    """The pair's A/B/tie from what the expert chose on screen ("left", "right" or "tie")."""
    word = choice.strip().lower()
    if not word:
        return None
    if word == "tie":
        return "tie"
    if word not in ("left", "right"):
        raise LabelValueError(
            [{"field": "choice", "message": f"must be left, right or tie, got {choice!r}"}]
        )
    left_is_a = order != "BA"
    return "A" if (word == "left") == left_is_a else "B"


def position_of(preference: str | None, order: str) -> str:
    """The on-screen side ("left", "right", "tie" or "") of a stored A/B/tie preference."""
    if preference is None:
        return ""
    if preference == "tie":
        return "tie"
    left_is_a = order != "BA"
    return "left" if (preference == "A") == left_is_a else "right"


def _scoring_definition(definition: RubricDefinition) -> dict[str, Any]:
    # An expert labels the whole response, so a per-item rubric is scored as one item.
    data = definition.model_dump(mode="json")
    if data["aggregation"] == "per_item_mean":
        data["aggregation"] = "weighted_mean"
        data["item_field"] = None
    return data


@dataclass(frozen=True)
class Aggregate:
    """A score on the rubric's raw scale and normalised to 0..1."""

    value: float
    normalized: float


def label_aggregate(
    definition: RubricDefinition, values: Mapping[str, LabelValue]
) -> Aggregate | None:
    """The expert's overall score by the judge's own rules; None while values are missing."""
    if definition.mode != RubricMode.rubric or any(
        c.key not in values for c in definition.criteria
    ):
        return None
    answer = {"criteria": {key: {"score": value} for key, value in values.items()}}
    try:
        scored = score_answer(_scoring_definition(definition), answer)
    except ScoringError:
        return None
    return Aggregate(float(scored["aggregate"]), float(scored["normalized"]))


def aggregate_scale(definition: RubricDefinition) -> tuple[float, float]:
    """(min, max) of the rubric's aggregate: the shared scale range, else 0..1."""
    return rubric_scale(definition.model_dump(mode="json"))


def integer_scale(definition: RubricDefinition) -> list[int] | None:
    """The aggregate's levels when every criterion shares one integer scale (e.g. 1..5)."""
    if not definition.criteria or any(c.type != "scale" for c in definition.criteria):
        return None
    low, high = aggregate_scale(definition)
    if low == 0.0 and high == 1.0:
        ranges = {(c.min_value, c.max_value) for c in definition.criteria}
        if ranges != {(0, 1)}:
            return None
    return list(range(int(low), int(high) + 1))


# ---- reading a verdict ----------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionVerdict:
    """The judge on one criterion. ``value`` is True/False for pass/fail, a number for a scale;
    for a per-item rubric it is the mean over the items (for pass/fail: the pass rate)."""

    value: bool | float | None
    justification: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JudgeReading:
    """What one verdict says, in the terms labels are compared with."""

    ok: bool
    criteria: dict[str, CriterionVerdict]
    aggregate: float | None
    normalized: float | None
    winner: str | None = None
    shown_winner: str | None = None
    justification: str = ""
    error: str | None = None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _raw_score(entry: Any) -> Any:
    return entry.get("score") if isinstance(entry, dict) else entry


def _number(criterion: Criterion, value: Any) -> bool | float | None:
    if value is None:
        return None
    if criterion.type == "boolean":
        if isinstance(value, bool):
            return value
        try:
            return bool(parse_value(criterion, value))
        except ValueError:
            try:
                return float(value)  # a per-item pass rate
            except (TypeError, ValueError):
                return None
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _item_blocks(items: Any) -> list[tuple[int, Any]]:
    """(item_index, criteria) of the answer's items that name an item of the response: a whole
    number from 0 below the number of items, each once. Anything else (an old or imported answer
    that skipped or invented items) is left out rather than shown as, say, "Item 4" of three."""
    if not isinstance(items, list):
        return []
    count = len(items)
    seen: set[int] = set()
    blocks: list[tuple[int, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        index = item.get("item_index")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            continue
        if index in seen:
            continue
        seen.add(index)
        blocks.append((index, item.get("criteria")))
    return sorted(blocks, key=lambda block: block[0])


def _explanations(
    definition: RubricDefinition, answer: Any
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    justifications: dict[str, list[str]] = {c.key: [] for c in definition.criteria}
    evidence: dict[str, list[str]] = {c.key: [] for c in definition.criteria}
    if not isinstance(answer, dict):
        return justifications, evidence
    if definition.aggregation == "per_item_mean" and definition.item_field:
        items = answer.get(definition.item_field)
        blocks = [(f"Item {index + 1}: ", criteria) for index, criteria in _item_blocks(items)]
    else:
        blocks = [("", answer.get("criteria"))]
    for prefix, criteria in blocks:
        if not isinstance(criteria, dict):
            continue
        for key in justifications:
            entry = criteria.get(key)
            if not isinstance(entry, dict):
                continue
            if _text(entry.get("justification")):
                justifications[key].append(prefix + _text(entry["justification"]))
            if _text(entry.get("evidence")):
                evidence[key].append(_text(entry["evidence"]))
    return justifications, evidence


def read_verdict(
    definition: RubricDefinition,
    *,
    scores: Mapping[str, Any] | None,
    answer: Any,
    aggregate: float | None,
    normalized: float | None,
    winner: str | None = None,
    parse_status: str = "ok",
    error: str | None = None,
) -> JudgeReading:
    """The one place that knows how a Verdict stores its scores.

    The judge engine stores ``scores = {"criteria": {key: 0..1}, "raw": {key: raw score},
    "items": [...]}`` (per-item rubrics: ``raw`` is the mean over items) and the judge's own
    answer, whose ``criteria`` (or each item's) hold justification and evidence. Older or
    imported verdicts may hold ``scores = {key: {"score": ...}}`` instead: read that too.
    Pairwise verdicts hold ``winner`` in the pair's terms and the positional ``shown_winner``.
    """
    scores = scores or {}
    if parse_status not in OK_PARSE_STATUSES:
        return JudgeReading(False, {}, None, None, error=error or parse_status)
    justifications, evidence = _explanations(definition, answer)
    raw = scores.get("raw")
    if not isinstance(raw, dict):
        answered = answer.get("criteria") if isinstance(answer, dict) else None
        source = scores if any(c.key in scores for c in definition.criteria) else answered
        raw = {key: _raw_score(entry) for key, entry in (source or {}).items()}
    criteria: dict[str, CriterionVerdict] = {}
    for criterion in definition.criteria:
        # Pairwise verdicts have per-criterion winners, not scores: no value to compare.
        value = (
            None
            if definition.mode == RubricMode.preference
            else _number(criterion, raw.get(criterion.key))
        )
        criteria[criterion.key] = CriterionVerdict(
            value, justifications[criterion.key], evidence[criterion.key]
        )
    overall = _text(answer.get("justification")) if isinstance(answer, dict) else ""
    shown = scores.get("shown_winner")
    return JudgeReading(
        ok=True,
        criteria=criteria,
        aggregate=aggregate,
        normalized=normalized,
        winner=winner,
        shown_winner=shown if isinstance(shown, str) else None,
        justification=overall,
    )


def combined_winner(ab: JudgeReading | None, ba: JudgeReading | None) -> str | None:
    """The pair's winner (A / B / tie) from the verdicts given in both orders: a verdict that
    changes with the order is a tie (MT-Bench's rule). One order alone speaks for itself."""
    if ab is not None and ba is not None:
        if ab.shown_winner and ba.shown_winner:
            combined = combine_swapped(ab.shown_winner, ba.shown_winner)
            return {"a": "A", "b": "B", "tie": "tie"}[combined]
        return ab.winner if ab.winner == ba.winner else "tie"
    single = ab or ba
    return single.winner if single is not None else None


# ---- comparing --------------------------------------------------------------------------------


def round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def judge_label(criterion: Criterion, value: bool | float | None) -> LabelValue | None:
    """The judge's value as a label would hold it: pass/fail, or the nearest level.

    A per-item mean becomes the nearest level (half up); a pass rate passes at 0.5 or more.
    """
    if value is None:
        return None
    if criterion.type == "boolean":
        return value if isinstance(value, bool) else value >= 0.5
    level = round_half_up(float(value))
    return min(max(level, criterion.min_value), criterion.max_value)


def criterion_disagrees(
    criterion: Criterion, human: LabelValue, judge: bool | float | None, tolerance: float
) -> bool:
    """Pass/fail: any difference. Scale: more than ``tolerance`` points apart (the judge's
    unrounded value, so a per-item mean of 3.67 is 0.33 from a label of 4)."""
    if judge is None:
        return False
    if criterion.type == "boolean":
        return judge_label(criterion, judge) != human
    return abs(float(judge) - float(human)) > tolerance + 1e-9


def aggregate_disagrees(human: float, judge: float | None, tolerance: float) -> bool:
    """Normalised overall scores (0..1) more than ``tolerance`` apart."""
    return judge is not None and abs(judge - human) > tolerance + 1e-9


def format_value(criterion: Criterion | None, value: Any) -> str:
    """A label or judge value as an expert reads it: pass, fail, 4, 3.67."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "pass" if value else "fail"
    if isinstance(value, str):
        return value  # a preference: A, B or tie
    if criterion is not None and criterion.type == "boolean":
        return f"{float(value):.0%} pass"
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:.2f}"
