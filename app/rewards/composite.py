"""Combine component results and the judge's normalised score into one reward.

STANDARD LIBRARY ONLY, plain dicts in and out: this file is copied verbatim into exported reward
functions, so the studio's preview and the training-time reward compute exactly the same number.

Rules:
- components run in COMPONENT_ORDER; the first enabled component with `gate` on that fails
  decides the reward: its `gate_reward`, and the judge is not called.
- otherwise reward = sum(weight x score) / sum(weight) over the applicable components with a
  weight above 0 and the judge (its normalised aggregate in [0, 1]); a component that does not
  apply (e.g. grounding without a target document) is left out of both sums.
- a judge error (call failed, answer unusable) gives the configured neutral reward instead.
"""

from __future__ import annotations

import math
from typing import Any

COMPONENT_ORDER = ("format", "length", "language", "safety", "grounding")
DEFAULT_NEUTRAL = 0.5


def neutral_reward(config: dict[str, Any]) -> float:
    """The reward given when the judge fails or a sample cannot be read."""
    judge = config.get("judge") or {}
    return float(judge.get("neutral_reward", DEFAULT_NEUTRAL))


def gate_failure(
    config: dict[str, Any], components: dict[str, dict[str, Any]]
) -> tuple[str, float] | None:
    """(component, its gate reward) for the first gate that fails, or None."""
    for name in COMPONENT_ORDER:
        settings = config.get(name) or {}
        result = components.get(name)
        if result is None or not settings.get("gate"):
            continue
        if result.get("applicable", True) and not result.get("passed", False):
            return name, float(settings.get("gate_reward", 0.0))
    return None


def judge_needed(config: dict[str, Any], components: dict[str, dict[str, Any]]) -> bool:
    """Whether the judge must be called for this sample (enabled and no gate failed)."""
    judge = config.get("judge") or {}
    return bool(judge.get("enabled", True)) and gate_failure(config, components) is None


def _finite(value: Any, fallback: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return fallback
    return number if math.isfinite(number) else fallback


def compute_reward(
    config: dict[str, Any],
    components: dict[str, dict[str, Any]],
    judge: dict[str, Any] | None,
) -> dict[str, Any]:
    """The reward for one sample.

    `judge` is None when the judge was not called, else {"status": "ok" | "error",
    "normalized": 0..1, "criteria": {key: 0..1}, "error": str}.
    Returns {"reward", "gated_by", "judge_status" (ok | error | skipped | disabled),
    "judge_score", "contributions": {name: share of the reward}, "components", "criteria"}.
    """
    neutral = neutral_reward(config)
    judge_cfg = config.get("judge") or {}
    result: dict[str, Any] = {
        "reward": neutral,
        "gated_by": None,
        "judge_status": "disabled" if not judge_cfg.get("enabled", True) else "skipped",
        "judge_score": None,
        "judge_error": None,
        "contributions": {},
        "components": components,
        "criteria": {},
    }
    gate = gate_failure(config, components)
    if gate is not None:
        result["gated_by"], result["reward"] = gate
        return result

    terms: list[tuple[str, float, float]] = []
    for name in COMPONENT_ORDER:
        settings = config.get(name) or {}
        component = components.get(name)
        weight = float(settings.get("weight", 0.0))
        if component is None or weight <= 0 or not component.get("applicable", True):
            continue
        terms.append((name, weight, _finite(component.get("score"), 0.0)))

    if judge_cfg.get("enabled", True):
        if judge is None or judge.get("status") != "ok":
            result["judge_status"] = "error"
            result["judge_error"] = (judge or {}).get("error") or "no judge verdict"
            return result
        score = _finite(judge.get("normalized"), math.nan)
        if math.isnan(score):
            result["judge_status"] = "error"
            result["judge_error"] = "the judge's score is not a number"
            return result
        score = min(1.0, max(0.0, score))
        result["judge_status"] = "ok"
        result["judge_score"] = score
        result["criteria"] = dict(judge.get("criteria") or {})
        weight = float(judge_cfg.get("weight", 1.0))
        if weight > 0:
            terms.append(("judge", weight, score))

    total = sum(weight for _, weight, _ in terms)
    if total <= 0:
        # Nothing weighted applies to this sample: neither good nor bad.
        result["reward"] = neutral
        return result
    contributions = {name: weight * score / total for name, weight, score in terms}
    result["contributions"] = contributions
    result["reward"] = sum(weight * score for _, weight, score in terms) / total
    return result


def metrics(config: dict[str, Any], outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-sample metrics in the Nova RFT shape [{name, value, type}]: one per component and per
    criterion ("Reward" when it is weighted into the reward, else "Metric"), plus status flags."""
    rows: list[dict[str, Any]] = []
    for name in COMPONENT_ORDER:
        component = (outcome.get("components") or {}).get(name)
        if component is None or not component.get("applicable", True):
            continue
        weighted = float((config.get(name) or {}).get("weight", 0.0)) > 0
        rows.append(
            {
                "name": name,
                "value": _finite(component.get("score"), 0.0),
                "type": "Reward" if weighted else "Metric",
            }
        )
    if outcome.get("judge_status") == "ok":
        weighted = float((config.get("judge") or {}).get("weight", 1.0)) > 0
        rows.append(
            {
                "name": "judge",
                "value": _finite(outcome.get("judge_score"), 0.0),
                "type": "Reward" if weighted else "Metric",
            }
        )
        for key, value in (outcome.get("criteria") or {}).items():
            rows.append(
                {"name": f"criterion.{key}", "value": _finite(value, 0.0), "type": "Metric"}
            )
    rows.append(
        {
            "name": "gated",
            "value": 0.0 if outcome.get("gated_by") is None else 1.0,
            "type": "Metric",
        }
    )
    rows.append(
        {
            "name": "judge_error",
            "value": 1.0 if outcome.get("judge_status") == "error" else 0.0,
            "type": "Metric",
        }
    )
    return rows
