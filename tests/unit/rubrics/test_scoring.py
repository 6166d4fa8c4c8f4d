"""Tests for the stdlib-only scoring of judge answers (copied into exported reward functions)."""

import ast
import sys
from pathlib import Path
from typing import Any

import pytest

from app.rubrics import scoring
from app.rubrics.definition import Criterion, Level, RubricDefinition
from app.rubrics.scoring import ScoringError, preference_winner, score_answer


def scale(key: str, low: int = 1, high: int = 5, **extra: Any) -> Criterion:
    levels = [Level(value=v, description=f"level {v}") for v in range(low, high + 1)]
    return Criterion(key=key, name=key, type="scale", levels=levels, **extra)


def boolean(key: str, **extra: Any) -> Criterion:
    return Criterion(key=key, name=key, **extra)


def defn(*criteria: Criterion, **extra: Any) -> dict[str, Any]:
    model = RubricDefinition(title="T", criteria=list(criteria), **extra)
    return model.model_dump(mode="json")


def answer(**scores: Any) -> dict[str, Any]:
    return {
        "criteria": {
            k: {"evidence": "", "justification": "", "score": v} for k, v in scores.items()
        },
        "aggregate_score": 999,  # never trusted
    }


def test_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(scoring.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported - {"__future__"} <= set(sys.stdlib_module_names)


def test_weighted_mean_normalizes_and_weights() -> None:
    d = defn(boolean("A", weight=1.0), scale("B", weight=3.0))
    result = score_answer(d, answer(A=True, B=2))
    assert result["criteria"] == {"A": 1.0, "B": 0.25}
    assert result["raw"] == {"A": True, "B": 2}
    assert result["normalized"] == pytest.approx((1.0 + 3 * 0.25) / 4)
    # Mixed criteria: the raw scale is 0..1, so aggregate equals normalized.
    assert result["aggregate"] == pytest.approx(result["normalized"])
    assert result["hard_failed"] is False
    assert result["items"] == []


def test_shared_scale_gives_aggregate_on_that_scale() -> None:
    d = defn(scale("A"), scale("B"), scale("C"))
    result = score_answer(d, answer(A=5, B=4, C=4))
    assert result["aggregate"] == pytest.approx(13 / 3)
    assert result["normalized"] == pytest.approx((13 / 3 - 1) / 4)


def test_all_must_pass_uses_midpoint_for_scales() -> None:
    d = defn(boolean("A"), scale("B"), aggregation="all_must_pass")
    assert score_answer(d, answer(A=True, B=3))["normalized"] == 1.0  # 3 is the midpoint of 1-5
    assert score_answer(d, answer(A=True, B=2))["normalized"] == 0.0
    assert score_answer(d, answer(A=False, B=5))["normalized"] == 0.0


def test_minimum_ignores_weights() -> None:
    d = defn(scale("A", weight=10.0), scale("B"), aggregation="minimum")
    result = score_answer(d, answer(A=5, B=2))
    assert result["normalized"] == 0.25
    assert result["aggregate"] == 2.0


def test_hard_fail_caps_at_the_bottom() -> None:
    d = defn(boolean("Safe", hard_fail=True), boolean("Useful", weight=5.0))
    failed = score_answer(d, answer(Safe=False, Useful=True))
    assert failed["hard_failed"] is True
    assert (failed["normalized"], failed["aggregate"]) == (0.0, 0.0)
    assert failed["criteria"]["Useful"] == 1.0  # per-criterion scores are still reported
    assert score_answer(d, answer(Safe=True, Useful=True))["normalized"] == 1.0


def test_hard_fail_on_a_scale_caps_at_the_scale_minimum() -> None:
    d = defn(scale("A", hard_fail=True), scale("B"))
    result = score_answer(d, answer(A=2, B=5))
    assert result["hard_failed"] is True
    assert result["aggregate"] == 1.0
    assert score_answer(d, answer(A=3, B=5))["hard_failed"] is False


def test_reference_case_per_item_mean(legal: RubricDefinition, legal_answer: dict) -> None:
    legal_answer["aggregate_score"] = 5  # the judge's own figure is ignored
    result = score_answer(legal.model_dump(mode="json"), legal_answer)
    # Comment scores: mean(5, 4, 4) = 4.333 and mean(3, 3, 3) = 3; aggregate = their mean.
    assert [item["score"] for item in result["items"]] == pytest.approx([13 / 3, 3.0])
    assert result["aggregate"] == pytest.approx((13 / 3 + 3) / 2)
    assert result["normalized"] == pytest.approx(((13 / 3 + 3) / 2 - 1) / 4)
    assert result["raw"]["TargetDocument_Grounding"] == pytest.approx(4.0)
    assert result["criteria"]["TargetDocument_Grounding"] == pytest.approx(0.75)
    assert result["items"][1]["item_index"] == 1


def test_per_item_mean_empty_list_scores_zero(legal: RubricDefinition) -> None:
    result = score_answer(legal.model_dump(mode="json"), {"comments": [], "aggregate_score": 3})
    assert result == {
        "criteria": {},
        "raw": {},
        "aggregate": 0.0,
        "normalized": 0.0,
        "hard_failed": False,
        "items": [],
    }


def test_per_item_hard_fail_caps_only_that_item() -> None:
    d = defn(
        boolean("Grounded", hard_fail=True),
        boolean("Useful"),
        aggregation="per_item_mean",
        item_field="items",
    )
    items = [answer(Grounded=False, Useful=True), answer(Grounded=True, Useful=True)]
    result = score_answer(d, {"items": items})
    assert [item["normalized"] for item in result["items"]] == [0.0, 1.0]
    assert result["normalized"] == 0.5
    assert result["hard_failed"] is True
    assert result["raw"]["Grounded"] == 0.5  # pass rate over items


def test_lenient_score_spellings() -> None:
    d = defn(boolean("A"), scale("B"))
    bare = {"criteria": {"A": "Pass", "B": "4"}}
    assert score_answer(d, bare)["raw"] == {"A": True, "B": 4}
    assert score_answer(d, answer(A=0, B=4.0))["raw"] == {"A": False, "B": 4.0}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"criteria": {"A": {"score": True}}}, "criteria.B: missing criterion"),
        (answer(A=True, B=6), "criteria.B.score: 6 is outside the scale 1..5"),
        (answer(A=True, B=True), "criteria.B.score: expected a number from 1 to 5, got True"),
        (answer(A="maybe", B=3), "criteria.A.score: expected true or false, got 'maybe'"),
        (answer(A=True, B="nan"), "outside the scale"),
        (answer(A=True, B=None), "criteria.B.score: missing score"),
        ({"criteria": "all good"}, "criteria: expected an object"),
        ([], "expected the judge's answer as an object"),
    ],
)
def test_unscorable_answers_raise(bad: Any, message: str) -> None:
    with pytest.raises(ScoringError) as exc:
        score_answer(defn(boolean("A"), scale("B")), bad)
    assert message in str(exc.value)


def test_per_item_answer_without_list_raises(legal: RubricDefinition) -> None:
    with pytest.raises(ScoringError, match="comments: expected a list"):
        score_answer(legal.model_dump(mode="json"), {"aggregate_score": 4})


def test_preference_rubric_has_no_score() -> None:
    d = RubricDefinition(mode="preference", title="P", preference_instruction="x")
    with pytest.raises(ScoringError, match="preference_winner"):
        score_answer(d.model_dump(mode="json"), {"winner": "A"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("A", "A"), (" b ", "B"), ("Response  A", "A"), ("TIE", "tie"), ("model_b", "B")],
)
def test_preference_winner(value: str, expected: str) -> None:
    assert preference_winner({"winner": value, "justification": ""}) == expected


@pytest.mark.parametrize("answer_", [{"winner": "C"}, {}, {"winner": 1}, "A"])
def test_preference_winner_rejects_other_values(answer_: Any) -> None:
    with pytest.raises(ScoringError):
        preference_winner(answer_)
