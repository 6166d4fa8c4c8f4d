"""Tests for the judge answer JSON Schema and answer validation messages."""

from typing import Any

from jsonschema import Draft202012Validator

from app.rubrics.builtin import BUILTIN_TEMPLATES, get_builtin
from app.rubrics.definition import Criterion, Level, RubricDefinition
from app.rubrics.output_schema import build_output_schema, validate_answer


def actionability_rubric() -> RubricDefinition:
    levels = [Level(value=v, description=f"level {v}") for v in range(1, 6)]
    return RubricDefinition(
        title="T",
        criteria=[
            Criterion(key="Grounded", name="Grounded"),
            Criterion(key="Actionability", name="Actionability", type="scale", levels=levels),
        ],
    )


def answer(grounded: Any = True, actionability: Any = 4) -> dict[str, Any]:
    return {
        "criteria": {
            "Grounded": {"evidence": "e", "justification": "j", "score": grounded},
            "Actionability": {"evidence": "e", "justification": "j", "score": actionability},
        },
        "aggregate_score": 0.9,
    }


def test_every_builtin_schema_is_a_valid_2020_12_schema() -> None:
    for defn in BUILTIN_TEMPLATES.values():
        schema = build_output_schema(defn)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def test_rubric_schema_shape_follows_criteria_order() -> None:
    schema = build_output_schema(actionability_rubric())
    criteria = schema["properties"]["criteria"]
    assert list(criteria["properties"]) == ["Grounded", "Actionability"]
    assert criteria["required"] == ["Grounded", "Actionability"]
    assert criteria["additionalProperties"] is False
    score = criteria["properties"]["Actionability"]["properties"]["score"]
    assert score == {"type": "integer", "minimum": 1, "maximum": 5}
    assert criteria["properties"]["Grounded"]["properties"]["score"]["type"] == "boolean"
    assert schema["required"] == ["criteria", "aggregate_score"]


def test_valid_answer_has_no_errors() -> None:
    assert validate_answer(actionability_rubric(), answer()) == []


def test_out_of_range_score_names_the_path() -> None:
    errors = validate_answer(actionability_rubric(), answer(actionability=7))
    assert errors == ["criteria.Actionability.score: 7 is greater than the maximum of 5"]


def test_missing_criterion_is_reported() -> None:
    bad = answer()
    del bad["criteria"]["Actionability"]
    assert validate_answer(actionability_rubric(), bad) == [
        "criteria: 'Actionability' is a required property"
    ]


def test_wrong_types_and_extra_keys_are_reported() -> None:
    bad = answer(grounded="yes", actionability=2.5)
    bad["criteria"]["Extra"] = {}
    errors = validate_answer(actionability_rubric(), bad)
    assert "criteria.Grounded.score: 'yes' is not of type 'boolean'" in errors
    assert "criteria.Actionability.score: 2.5 is not of type 'integer'" in errors
    assert any(e.startswith("criteria: Additional properties") for e in errors)


def test_top_level_errors_and_long_values_are_shortened() -> None:
    assert validate_answer(actionability_rubric(), {}) == [
        "(top level): 'criteria' is a required property",
        "(top level): 'aggregate_score' is a required property",
    ]
    [error] = validate_answer(actionability_rubric(), ["x" * 5000])
    assert error.startswith("(top level): ['xxx")
    assert len(error) < 400


def test_reference_case_answer_is_accepted(legal: RubricDefinition, legal_answer: dict) -> None:
    assert validate_answer(legal, legal_answer) == []
    assert validate_answer(legal, {"comments": [], "aggregate_score": 0}) == []


def test_reference_case_rejects_missing_criterion_and_bad_score(
    legal: RubricDefinition, legal_answer: dict
) -> None:
    del legal_answer["comments"][1]["criteria"]["Actionability"]
    legal_answer["comments"][0]["criteria"]["Reference_Consistency"]["score"] = 0
    assert validate_answer(legal, legal_answer) == [
        "comments[0].criteria.Reference_Consistency.score: 0 is less than the minimum of 1",
        "comments[1].criteria: 'Actionability' is a required property",
    ]


def test_per_item_schema_shape(legal: RubricDefinition) -> None:
    schema = build_output_schema(legal)
    item = schema["properties"]["comments"]["items"]
    assert item["required"] == ["item_index", "excerpt", "criteria", "item_score"]
    assert list(item["properties"]["criteria"]["properties"]) == [
        "TargetDocument_Grounding",
        "Reference_Consistency",
        "Actionability",
    ]


def test_preference_schema() -> None:
    defn = get_builtin("pairwise_preference")
    schema = build_output_schema(defn)
    assert schema["properties"]["winner"]["enum"] == ["A", "B", "tie"]
    good = {
        "criteria": {c.key: {"justification": "j", "winner": "A"} for c in defn.criteria},
        "justification": "A cites sources",
        "winner": "A",
    }
    assert validate_answer(defn, good) == []
    assert validate_answer(defn, good | {"winner": "C"}) == [
        "winner: 'C' is not one of ['A', 'B', 'tie']"
    ]
    without_criteria = RubricDefinition(mode="preference", title="P", preference_instruction="x")
    assert "criteria" not in build_output_schema(without_criteria)["properties"]
    assert validate_answer(without_criteria, {"justification": "j", "winner": "tie"}) == []
