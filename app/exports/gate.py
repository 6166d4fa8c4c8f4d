"""Agreement of the judge with expert labels on the locked gold test split, and the export gate
(agreement checks plus the probe check: can the reward that ships be gamed).

Pure: each (label, verdict) pair counts once (an item labelled by two experts counts twice, as
each vote is a separate judgement). A response passes when its normalised score (the rubric's
own aggregation of the per-criterion values) is at least the gate's pass threshold; "fail" is
the positive class, so the true-positive rate is the share of expert fails the judge caught.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.agreement.stats import binary_agreement, figure_values
from app.rubrics.scoring import ScoringError, criterion_passes, score_answer

_TRUE = frozenset({"true", "pass", "passed", "yes", "y", "1"})
_FALSE = frozenset({"false", "fail", "failed", "no", "n", "0"})


@dataclass(frozen=True)
class GatePair:
    """One expert label of a gold test item and the judge's verdict on the same rollout."""

    rollout_id: int
    label_values: dict[str, Any]
    verdict_ok: bool
    verdict_normalized: float | None
    verdict_raw: dict[str, Any] = field(default_factory=dict)


def _label_value(criterion: dict[str, Any], value: Any) -> bool | float | None:
    if criterion["type"] == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def human_normalized(definition: dict[str, Any], values: dict[str, Any]) -> float | None:
    """An expert label's normalised score by the rubric's own rules, or None when incomplete.
    Item-level rubrics are labelled per criterion for the whole response: a weighted mean."""
    answer: dict[str, Any] = {}
    for criterion in definition["criteria"]:
        value = _label_value(criterion, values.get(criterion["key"]))
        if value is None:
            return None
        answer[criterion["key"]] = {"score": value}
    flat = dict(definition)
    if flat.get("aggregation") == "per_item_mean":
        flat["aggregation"], flat["item_field"] = "weighted_mean", None
    try:
        return float(score_answer(flat, {"criteria": answer})["normalized"])
    except ScoringError:
        return None


def _criterion_pass(criterion: dict[str, Any], value: Any) -> bool | None:
    read = _label_value(criterion, value)
    if read is None:
        return None
    return criterion_passes(criterion, read)


def agreement_summary(
    definition: dict[str, Any], pairs: list[GatePair], pass_threshold: float = 0.5
) -> dict[str, Any]:
    """Overall and per-criterion pass/fail agreement figures (None where undefined)."""
    judge_pass: list[bool] = []
    human_pass: list[bool] = []
    errors = unreadable = 0
    per_criterion: dict[str, tuple[list[bool], list[bool]]] = {
        c["key"]: ([], []) for c in definition["criteria"]
    }
    for pair in pairs:
        if not pair.verdict_ok or pair.verdict_normalized is None:
            errors += 1
            continue
        human = human_normalized(definition, pair.label_values)
        if human is None:
            unreadable += 1
            continue
        judge_pass.append(pair.verdict_normalized >= pass_threshold)
        human_pass.append(human >= pass_threshold)
        for criterion in definition["criteria"]:
            key = criterion["key"]
            judged = _criterion_pass(criterion, pair.verdict_raw.get(key))
            labelled = _criterion_pass(criterion, pair.label_values.get(key))
            if judged is not None and labelled is not None:
                per_criterion[key][0].append(judged)
                per_criterion[key][1].append(labelled)
    overall = binary_agreement(judge_pass, human_pass)
    return {
        "n": overall.n,
        "pairs": len(pairs),
        "judge_errors": errors,
        "unreadable_labels": unreadable,
        "pass_threshold": pass_threshold,
        "positive_class": overall.positive,
        "overall": figure_values(overall),
        "confusion": overall.confusion,
        "criteria": {
            key: {"n": len(judged), **figure_values(binary_agreement(judged, labelled))}
            for key, (judged, labelled) in per_criterion.items()
        },
    }


def _check(name: str, value: float | None, minimum: float | None) -> dict[str, Any]:
    if minimum is None:
        return {
            "name": name,
            "value": value,
            "minimum": None,
            "passed": True,
            "reason": "no minimum",
        }
    if value is None:
        return {
            "name": name,
            "value": None,
            "minimum": minimum,
            "passed": False,
            "reason": "not defined on the gold test split",
        }
    passed = value >= minimum
    return {
        "name": name,
        "value": value,
        "minimum": minimum,
        "passed": passed,
        "reason": "" if passed else f"{value:.3f} is below the minimum {minimum:g}",
    }


def evaluate_gate(gate: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """{"enabled", "passed", "checks": [{name, value, minimum, passed, reason}]}."""
    if not gate.get("enabled", True):
        return {"enabled": False, "passed": True, "checks": []}
    overall = summary.get("overall") or {}
    n = int(summary.get("n") or 0)
    min_items = int(gate.get("min_items") or 0)
    checks = [
        {
            "name": "items",
            "value": n,
            "minimum": min_items,
            "passed": n >= min_items,
            "reason": "" if n >= min_items else f"only {n} labelled gold test items were judged",
        },
        _check("kappa", overall.get("kappa"), gate.get("min_kappa")),
        _check("true_positive_rate", overall.get("true_positive_rate"), gate.get("min_tpr")),
        _check("true_negative_rate", overall.get("true_negative_rate"), gate.get("min_tnr")),
    ]
    return {"enabled": True, "passed": all(c["passed"] for c in checks), "checks": checks}


def with_probe_check(gate: dict[str, Any], probe_check: dict[str, Any]) -> dict[str, Any]:
    """The gate with the probe check added. It applies even when the agreement gate is switched
    off: a reward that pays for gaming blocks the export either way (an admin may override)."""
    checks = [*gate.get("checks", []), probe_check]
    passed = bool(gate.get("passed", True)) and bool(probe_check.get("passed", True))
    return {**gate, "passed": passed, "checks": checks}
