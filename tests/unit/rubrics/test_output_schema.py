"""Tests for the judge answer JSON Schema and answer validation messages."""

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from app.rubrics.builtin import BUILTIN_TEMPLATES, get_builtin
from app.rubrics.definition import Criterion, Level, RubricDefinition
from app.rubrics.output_schema import answer_checker, build_output_schema, validate_answer


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


# ---- answer_checker: the compiled check used for every verdict of a judge run ----------------

_SCALAR_OR_CONTAINER = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 9) | st.floats(-2, 9) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


def _near_answers(defn: RubricDefinition) -> st.SearchStrategy[Any]:
    """Answers built from a valid one with one part replaced: mostly near misses."""
    from app.llm.schema_instance import instance_for_schema

    schema = build_output_schema(defn)

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        value = instance_for_schema(schema, draw(st.integers(0, 10_000)))
        criteria = value.get("criteria")
        choice = draw(st.sampled_from(["keep", "criterion", "field", "extra", "drop", "root"]))
        if choice == "root":
            return draw(_SCALAR_OR_CONTAINER)
        if not isinstance(criteria, dict) or not criteria:
            return value
        key = draw(st.sampled_from(sorted(criteria)))
        entry = criteria[key]
        if choice == "criterion":
            criteria[key] = draw(_SCALAR_OR_CONTAINER)
        elif choice == "field" and isinstance(entry, dict) and entry:
            entry[draw(st.sampled_from(sorted(entry)))] = draw(_SCALAR_OR_CONTAINER)
        elif choice == "extra":
            value[draw(st.text(min_size=1, max_size=6))] = draw(_SCALAR_OR_CONTAINER)
        elif choice == "drop":
            del criteria[key]
        return value

    return build()


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_answer_checker_agrees_with_jsonschema(name: str, data: st.DataObject) -> None:
    defn = get_builtin(name)
    schema = build_output_schema(defn)
    candidate = data.draw(_near_answers(defn))
    expected = Draft202012Validator(schema).is_valid(candidate)
    assert answer_checker(schema)(candidate) is expected
    assert (validate_answer(defn, candidate) == []) is expected


def test_answer_checker_falls_back_to_jsonschema_for_a_schema_it_cannot_compile() -> None:
    # A reference that does not resolve: jsonschema-rs refuses the schema up front, jsonschema
    # only fails when the reference is followed.
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    check = answer_checker(schema)
    assert check({"b": 1}) is True
    assert check([]) is False
