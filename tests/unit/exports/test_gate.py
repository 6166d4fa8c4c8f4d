"""Agreement on the gold test split and the export gate."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import cohen_kappa_score

from app.exports.gate import GatePair, agreement_summary, evaluate_gate, human_normalized
from app.rubrics.builtin import get_builtin

LEGAL = get_builtin("legal_contract_review").model_dump(mode="json")
GENERIC = get_builtin("generic_pass_fail").model_dump(mode="json")
KEYS = [c["key"] for c in LEGAL["criteria"]]


def test_human_score_follows_the_rubrics_own_rules() -> None:
    # Per-item rubrics are labelled per criterion for the whole response: weighted mean.
    assert human_normalized(LEGAL, dict.fromkeys(KEYS, 5)) == 1.0
    assert human_normalized(LEGAL, dict.fromkeys(KEYS, 3)) == 0.5
    assert human_normalized(LEGAL, {KEYS[0]: 5}) is None  # incomplete label
    assert human_normalized(LEGAL, dict.fromkeys(KEYS, "x")) is None
    generic_keys = [c["key"] for c in GENERIC["criteria"]]
    passing = dict.fromkeys(generic_keys, True)
    assert human_normalized(GENERIC, passing) == 1.0
    assert human_normalized(GENERIC, dict.fromkeys(generic_keys, "fail")) == 0.0


def _pairs(seed: int, n: int) -> tuple[list[GatePair], list[bool], list[bool]]:
    rng = random.Random(seed)
    pairs, judge, human = [], [], []
    for i in range(n):
        levels = {k: rng.randint(1, 5) for k in KEYS}
        judged = rng.random()
        pairs.append(GatePair(i, levels, True, judged, {k: rng.randint(1, 5) for k in KEYS}))
        judge.append(judged >= 0.5)
        human.append(human_normalized(LEGAL, levels) >= 0.5)
    return pairs, judge, human


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_overall_figures_equal_scikit_learn(seed: int) -> None:
    pairs, judge, human = _pairs(seed, 60)
    summary = agreement_summary(LEGAL, pairs)
    assert summary["n"] == 60
    expected = cohen_kappa_score(human, judge)
    assert summary["overall"]["kappa"] == pytest.approx(expected)
    fails = [j for j, h in zip(judge, human, strict=True) if not h]
    assert summary["overall"]["true_positive_rate"] == pytest.approx(
        sum(1 for j in fails if not j) / len(fails)
    )
    assert set(summary["criteria"]) == set(KEYS)
    assert all(summary["criteria"][k]["n"] == 60 for k in KEYS)


def test_judge_errors_and_unreadable_labels_are_counted_not_compared() -> None:
    pairs = [
        GatePair(1, dict.fromkeys(KEYS, 5), False, 0.5),
        GatePair(2, {KEYS[0]: 5}, True, 0.9),
        GatePair(3, dict.fromkeys(KEYS, 1), True, 0.1),
    ]
    summary = agreement_summary(LEGAL, pairs)
    assert (summary["n"], summary["judge_errors"], summary["unreadable_labels"]) == (1, 1, 1)


def _summary(n: int, kappa: float | None, tpr: float | None, tnr: float | None) -> dict:
    return {
        "n": n,
        "overall": {"kappa": kappa, "true_positive_rate": tpr, "true_negative_rate": tnr},
    }


GATE = {"enabled": True, "min_items": 10, "min_kappa": 0.4, "min_tpr": 0.7, "min_tnr": 0.7}


def test_gate_passes_when_every_figure_reaches_its_minimum() -> None:
    result = evaluate_gate(GATE, _summary(20, 0.4, 0.9, 0.7))
    assert result["passed"] is True
    assert [c["name"] for c in result["checks"]] == [
        "items",
        "kappa",
        "true_positive_rate",
        "true_negative_rate",
    ]


@pytest.mark.parametrize(
    ("summary", "failing"),
    [
        (_summary(5, 0.9, 0.9, 0.9), "items"),
        (_summary(20, 0.39, 0.9, 0.9), "kappa"),
        (_summary(20, 0.9, 0.5, 0.9), "true_positive_rate"),
        (_summary(20, 0.9, 0.9, None), "true_negative_rate"),
    ],
)
def test_gate_blocks_each_shortfall_with_a_reason(summary: dict, failing: str) -> None:
    result = evaluate_gate(GATE, summary)
    assert result["passed"] is False
    failed = [c for c in result["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == [failing]
    assert failed[0]["reason"]


def test_gate_off_or_without_minimums_passes() -> None:
    assert evaluate_gate(GATE | {"enabled": False}, _summary(0, None, None, None))["passed"]
    loose = GATE | {"min_items": 0, "min_kappa": None, "min_tpr": None, "min_tnr": None}
    assert evaluate_gate(loose, _summary(0, None, None, None))["passed"]
