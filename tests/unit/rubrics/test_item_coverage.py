"""Item coverage: a per-item judge answer must score each item of the response exactly once.

The studio (app/judging/engine.py) and the exported runtime (package_runtime/engine.py) read an
answer through the same scoring.py; both are checked here on the same answers (parity)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.exports.package_runtime.engine import RewardEngine
from app.exports.targets.common import runtime_bundle
from app.judging.verdicts import RunPlan, interpret, item_count_of
from app.rubrics.builtin import get_builtin
from app.rubrics.output_schema import build_output_schema
from app.rubrics.prompting import materialize_templates
from app.rubrics.scoring import ScoringError, response_item_count, score_answer
from tests.unit.exports.builders import legal_content

KEYS = ["TargetDocument_Grounding", "Reference_Consistency", "Actionability"]
THREE_COMMENTS = json.dumps([{"text_excerpt": f"clause {i}", "concern": "c"} for i in range(3)])


def item(index: Any, score: int = 4) -> dict[str, Any]:
    return {
        "item_index": index,
        "excerpt": "q",
        "criteria": {k: {"evidence": "e", "justification": "j", "score": score} for k in KEYS},
        "item_score": score,
    }


def answer(*items: dict[str, Any]) -> dict[str, Any]:
    return {"comments": list(items), "aggregate_score": 4}


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return materialize_templates(get_builtin("legal_contract_review")).model_dump(mode="json")


@pytest.fixture(scope="module")
def plan() -> RunPlan:
    defn = materialize_templates(get_builtin("legal_contract_review"))
    return RunPlan(
        run_id=1,
        kind="standard",
        status="running",
        definition=defn,
        definition_dict=defn.model_dump(mode="json"),
        output_schema=build_output_schema(defn),
        snapshot={},
        judge_name="test",
        neutral_score=0.5,
    )


@pytest.fixture(scope="module")
def runtime() -> RewardEngine:
    return RewardEngine(runtime_bundle(legal_content()))


BAD_ANSWERS = {
    "missing": (answer(item(0, 5)), "2 are missing"),  # one of three scored: never 1.0
    "missing_middle": (answer(item(0), item(2)), "item_index 1 is missing"),
    "duplicate": (answer(item(0), item(1), item(1), item(2)), "scored twice"),
    "duplicate_instead_of_one": (answer(item(0), item(0), item(1)), "scored twice"),
    "out_of_range": (answer(item(0), item(1), item(3)), "out of range"),
    "negative": (answer(item(-1), item(0), item(1)), "out of range"),
    "not_a_number": (answer(item("1"), item(0), item(2)), "whole number"),
    "items_for_an_empty_response": (answer(item(0)), None),
}


def test_response_item_count_reads_lists_objects_fences_and_prose() -> None:
    assert response_item_count(THREE_COMMENTS, "comments") == 3
    assert response_item_count(json.dumps({"comments": [1, 2]}), "comments") == 2
    assert response_item_count("```json\n[1, 2, 3, 4]\n```", "comments") == 4
    assert response_item_count("<think>hm</think>[1]", "comments") == 1
    assert response_item_count("The contract is fine.", "comments") == 0
    assert response_item_count('[{"a": 1}, ', "comments") == 0  # truncated JSON


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_a_bad_item_list_is_unusable_in_the_studio_and_the_runtime(
    case: str, definition: dict[str, Any], plan: RunPlan, runtime: RewardEngine
) -> None:
    bad, message = BAD_ANSWERS[case]
    count = 0 if case == "items_for_an_empty_response" else 3
    with pytest.raises(ScoringError) as scoring_error:
        score_answer(definition, bad, count)
    if message:
        assert message in str(scoring_error.value)
    text = json.dumps(bad)
    with pytest.raises(ValueError) as studio_error:
        interpret(plan, text, "", count)
    with pytest.raises(ValueError) as runtime_error:
        runtime.interpret(text, count)
    if case in ("negative", "not_a_number"):  # the answer schema already refuses these
        assert str(runtime_error.value) == "does not match the answer schema"
        assert str(studio_error.value).startswith("does not match the answer schema")
    else:
        assert str(studio_error.value) == str(runtime_error.value) == str(scoring_error.value)


def test_a_covering_answer_scores_in_response_order_whatever_the_listed_order(
    definition: dict[str, Any], plan: RunPlan, runtime: RewardEngine
) -> None:
    shuffled = answer(item(2, 1), item(0, 5), item(1, 3))
    scored = score_answer(definition, shuffled, 3)
    assert [i["item_index"] for i in scored["items"]] == [0, 1, 2]
    assert [i["score"] for i in scored["items"]] == [5, 3, 1]
    assert scored["normalized"] == pytest.approx(0.5)
    studio = interpret(plan, json.dumps(shuffled), "", 3)
    assert studio.normalized == runtime.interpret(json.dumps(shuffled), 3)["normalized"]


def test_an_empty_answer_for_an_unreadable_response_is_valid(definition: dict[str, Any]) -> None:
    assert score_answer(definition, answer(), 0)["normalized"] == 0.0


def test_both_sides_count_items_the_same_way(plan: RunPlan, runtime: RewardEngine) -> None:
    for response in (THREE_COMMENTS, "prose", "[]", '{"comments": [1]}'):
        assert item_count_of(plan, response) == runtime.item_count(response)


def test_without_a_count_the_old_behaviour_is_kept(definition: dict[str, Any]) -> None:
    # Callers that cannot know the response (e.g. expert labels) skip the check.
    assert score_answer(definition, answer(item(5)))["items"][0]["item_index"] == 5


def test_the_review_reading_never_names_an_item_the_answer_does_not_have() -> None:
    from app.labels.values import read_verdict

    defn = materialize_templates(get_builtin("legal_contract_review"))
    skipped = answer(item(0), item(1), item(3))  # "Item 4" of three comments
    reading = read_verdict(defn, scores={}, answer=skipped, aggregate=None, normalized=None)
    labels = {
        text.split(":")[0]
        for verdict in reading.criteria.values()
        for text in verdict.justification
    }
    assert labels == {"Item 1", "Item 2"}
