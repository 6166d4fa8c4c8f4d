"""Combining component results and the judge into one reward: weights, gates, neutral value."""

from __future__ import annotations

import pytest

from app.rewards import composite
from app.rewards.config import RewardConfigModel


def _config(**changes: dict) -> dict:
    config = RewardConfigModel().as_dict()
    for section, values in changes.items():
        config[section] = config[section] | values
    return config


def _component(score: float, passed: bool = True, applicable: bool = True) -> dict:
    return {"score": score, "passed": passed, "applicable": applicable, "detail": ""}


OK_JUDGE = {"status": "ok", "normalized": 0.8, "criteria": {"a": 1.0, "b": 0.6}}


def test_weighted_mean_of_components_and_judge() -> None:
    config = _config(format={"weight": 1.0}, length={"weight": 0.0}, grounding={"weight": 2.0})
    results = {
        "format": _component(1.0),
        "length": _component(0.3, passed=False),
        "grounding": _component(0.5, passed=False),
    }
    outcome = composite.compute_reward(config, results, OK_JUDGE)
    # (1*1.0 + 2*0.5 + 1*0.8) / 4; the length check has weight 0 and counts for nothing.
    assert outcome["reward"] == pytest.approx(2.8 / 4)
    assert outcome["judge_status"] == "ok" and outcome["gated_by"] is None
    assert set(outcome["contributions"]) == {"format", "grounding", "judge"}
    assert sum(outcome["contributions"].values()) == pytest.approx(outcome["reward"])
    assert outcome["criteria"] == {"a": 1.0, "b": 0.6}


def test_components_that_do_not_apply_are_left_out() -> None:
    config = _config(format={"weight": 1.0}, grounding={"weight": 1.0})
    results = {"format": _component(1.0), "grounding": _component(1.0, applicable=False)}
    outcome = composite.compute_reward(config, results, {"status": "ok", "normalized": 0.4})
    assert outcome["reward"] == pytest.approx((1.0 + 0.4) / 2)
    assert "grounding" not in outcome["contributions"]


def test_the_first_failing_gate_decides_and_skips_the_judge() -> None:
    config = _config(
        format={"gate": True, "gate_reward": -1.0},
        length={"gate": True, "gate_reward": 0.1},
    )
    results = {"format": _component(0.0, passed=False), "length": _component(0.0, passed=False)}
    assert composite.judge_needed(config, results) is False
    outcome = composite.compute_reward(config, results, None)
    assert (outcome["reward"], outcome["gated_by"], outcome["judge_status"]) == (
        -1.0,
        "format",
        "skipped",
    )
    results["format"] = _component(1.0)
    outcome = composite.compute_reward(config, results, None)
    assert (outcome["reward"], outcome["gated_by"]) == (0.1, "length")


def test_a_gate_that_does_not_apply_or_passes_lets_the_judge_run() -> None:
    config = _config(grounding={"gate": True})
    results = {"format": _component(1.0), "grounding": _component(1.0, applicable=False)}
    assert composite.judge_needed(config, results) is True
    assert composite.judge_needed(_config(judge={"enabled": False}), results) is False


@pytest.mark.parametrize(
    "judge",
    [None, {"status": "error", "error": "timeout"}, {"status": "ok", "normalized": float("nan")}],
)
def test_a_judge_error_gives_the_neutral_reward(judge) -> None:
    config = _config(judge={"neutral_reward": 0.25})
    outcome = composite.compute_reward(config, {"format": _component(1.0)}, judge)
    assert outcome["reward"] == 0.25 and outcome["judge_status"] == "error"
    assert outcome["judge_error"]


def test_judge_score_is_clamped_and_a_disabled_judge_is_ignored() -> None:
    config = _config(format={"weight": 0.0}, grounding={"weight": 0.0})
    high = composite.compute_reward(config, {}, {"status": "ok", "normalized": 1.7})
    assert high["reward"] == 1.0
    off = _config(judge={"enabled": False}, format={"weight": 1.0})
    outcome = composite.compute_reward(off, {"format": _component(0.5)}, None)
    assert (outcome["reward"], outcome["judge_status"]) == (0.5, "disabled")


def test_nothing_weighted_applies_gives_the_neutral_reward() -> None:
    config = _config(judge={"enabled": False}, grounding={"weight": 1.0}, format={"weight": 0.0})
    outcome = composite.compute_reward(
        config, {"grounding": _component(1.0, applicable=False)}, None
    )
    assert outcome["reward"] == 0.5


def test_metrics_have_the_nova_shape_one_per_component_and_criterion() -> None:
    config = _config(length={"weight": 0.0})
    results = {"format": _component(1.0), "length": _component(1.0), "grounding": _component(0.5)}
    outcome = composite.compute_reward(config, results, OK_JUDGE)
    rows = composite.metrics(config, outcome)
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) == {
        "format",
        "length",
        "grounding",
        "judge",
        "criterion.a",
        "criterion.b",
        "gated",
        "judge_error",
    }
    assert by_name["format"]["type"] == "Reward" and by_name["length"]["type"] == "Metric"
    assert by_name["criterion.b"] == {"name": "criterion.b", "value": 0.6, "type": "Metric"}
    assert all(row["type"] in ("Reward", "Metric") for row in rows)
    assert all(isinstance(row["value"], float) for row in rows)
    gated = composite.compute_reward(
        _config(format={"gate": True}), {"format": _component(0.0, passed=False)}, None
    )
    flags = {row["name"]: row["value"] for row in composite.metrics(config, gated)}
    assert flags["gated"] == 1.0 and "judge" not in flags
