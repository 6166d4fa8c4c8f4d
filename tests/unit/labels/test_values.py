"""Label values against a rubric, the expert's aggregate, pair orders, and the one reading of a
Verdict's stored shape."""

from __future__ import annotations

import pytest

from app.labels.values import (
    LabelValueError,
    aggregate_disagrees,
    criterion_disagrees,
    format_value,
    integer_scale,
    judge_label,
    label_aggregate,
    parse_preference,
    parse_values,
    position_of,
    preference_from_position,
    read_verdict,
    shown_order,
)
from app.rubrics.builtin import BUILTIN_TEMPLATES

PASS_FAIL = BUILTIN_TEMPLATES["generic_pass_fail"]
LEGAL = BUILTIN_TEMPLATES["legal_contract_review"]


def test_values_are_normalised_and_checked() -> None:
    values = parse_values(
        PASS_FAIL,
        {"Safe": "PASS", "Clear": "fail", "Complete": True, "Factually_Accurate": ""},
        complete=False,
    )
    assert values == {"Safe": True, "Clear": False, "Complete": True}
    assert parse_values(LEGAL, {"Actionability": "4"}, complete=False) == {"Actionability": 4}
    with pytest.raises(LabelValueError) as exc:
        parse_values(
            LEGAL, {"Actionability": "6", "Ghost": 1, "Reference_Consistency": "x"}, complete=True
        )
    fields = {p["field"] for p in exc.value.problems}
    assert fields == {"Actionability", "Ghost", "Reference_Consistency", "TargetDocument_Grounding"}
    with pytest.raises(LabelValueError):
        parse_values(LEGAL, {"Actionability": 3.5}, complete=False)
    with pytest.raises(LabelValueError):
        parse_values(LEGAL, {"Actionability": True}, complete=False)


def test_expert_aggregate_uses_the_judges_rules() -> None:
    everything = {c.key: True for c in PASS_FAIL.criteria}
    assert label_aggregate(PASS_FAIL, everything).normalized == 1.0
    unsafe = {**everything, "Safe": False}
    assert label_aggregate(PASS_FAIL, unsafe).normalized == 0.0  # hard fail
    assert label_aggregate(PASS_FAIL, {"Safe": True}) is None  # incomplete
    legal = label_aggregate(
        LEGAL, {"TargetDocument_Grounding": 5, "Reference_Consistency": 3, "Actionability": 4}
    )
    assert legal.value == pytest.approx(4.0) and legal.normalized == pytest.approx(0.75)
    assert integer_scale(LEGAL) == [1, 2, 3, 4, 5]
    assert integer_scale(PASS_FAIL) is None


def test_pair_orders_are_stable_and_map_back() -> None:
    orders = {shown_order(pair, "user:7") for pair in range(40)}
    assert orders == {"AB", "BA"}
    assert shown_order(3, "user:7") == shown_order(3, "user:7")
    assert preference_from_position("left", "AB") == "A"
    assert preference_from_position("left", "BA") == "B"
    assert preference_from_position("right", "BA") == "A"
    assert preference_from_position("tie", "BA") == "tie"
    assert position_of("B", "BA") == "left" and position_of(None, "AB") == ""
    assert parse_preference("Response B") == "B" and parse_preference(" ") is None
    with pytest.raises(LabelValueError):
        preference_from_position("up", "AB")
    with pytest.raises(LabelValueError):
        parse_preference("C")


def test_read_verdict_of_the_engine_shape_per_item() -> None:
    answer = {
        "comments": [
            {
                "item_index": 0,
                "criteria": {
                    "Actionability": {
                        "score": 4,
                        "justification": "clear",
                        "evidence": "insert a cap",
                    }
                },
            },
            {
                "item_index": 1,
                "criteria": {
                    "Actionability": {"score": 2, "justification": "vague", "evidence": ""}
                },
            },
        ]
    }
    scores = {"criteria": {"Actionability": 0.5}, "raw": {"Actionability": 3.0}, "items": []}
    reading = read_verdict(LEGAL, scores=scores, answer=answer, aggregate=3.0, normalized=0.5)
    assert reading.ok
    actionability = reading.criteria["Actionability"]
    assert actionability.value == 3.0
    assert actionability.justification == ["Item 1: clear", "Item 2: vague"]
    assert actionability.evidence == ["insert a cap"]
    assert reading.criteria["TargetDocument_Grounding"].value is None


def test_read_verdict_of_the_older_shape_and_failures() -> None:
    scores = {"Safe": {"score": "fail", "justification": "j", "evidence": "e"}}
    reading = read_verdict(PASS_FAIL, scores=scores, answer=None, aggregate=None, normalized=None)
    assert reading.criteria["Safe"].value is False
    failed = read_verdict(
        PASS_FAIL,
        scores={},
        answer=None,
        aggregate=None,
        normalized=0.5,
        parse_status="error",
        error="timeout",
    )
    assert not failed.ok and failed.error == "timeout"


def test_judge_values_become_label_values_and_disagreements() -> None:
    grounding = LEGAL.criterion("TargetDocument_Grounding")
    safe = PASS_FAIL.criterion("Safe")
    assert judge_label(grounding, 3.5) == 4 and judge_label(grounding, 3.49) == 3
    assert judge_label(grounding, 0.2) == 1  # clamped to the scale
    assert judge_label(safe, 0.5) is True and judge_label(safe, 0.4) is False
    assert criterion_disagrees(grounding, 4, 3.67, 0.5) is False
    assert criterion_disagrees(grounding, 4, 3.4, 0.5) is True
    assert criterion_disagrees(grounding, 4, 3.5, 0.5) is False
    assert criterion_disagrees(safe, True, False, 0.5) is True
    assert criterion_disagrees(safe, True, None, 0.5) is False
    assert aggregate_disagrees(0.5, 0.7, 0.125) and not aggregate_disagrees(0.5, 0.6, 0.125)
    assert format_value(safe, True) == "pass" and format_value(safe, 0.25) == "25% pass"
    assert format_value(grounding, 3.0) == "3" and format_value(grounding, 3.667) == "3.67"


def test_pair_verdicts_in_both_orders_combine_as_in_mt_bench() -> None:
    from app.labels.values import JudgeReading, combined_winner

    def shown(winner: str, pair_winner: str) -> JudgeReading:
        return JudgeReading(True, {}, None, None, winner=pair_winner, shown_winner=winner)

    # Shown A first then B first: "A" then "B" positional both mean the pair's A.
    assert combined_winner(shown("A", "A"), shown("B", "A")) == "A"
    assert combined_winner(shown("A", "A"), shown("A", "B")) == "tie"  # follows the position
    assert combined_winner(shown("tie", "tie"), shown("tie", "tie")) == "tie"
    assert combined_winner(None, shown("A", "B")) == "B"
    assert combined_winner(None, None) is None
