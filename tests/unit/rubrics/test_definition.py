"""Tests for the rubric definition models, their validators and the content hash."""

import pytest
from pydantic import ValidationError

from app.rubrics.definition import (
    Criterion,
    FewShotExample,
    Level,
    RubricDefinition,
    content_hash,
)


def scale(key: str = "Quality", low: int = 1, high: int = 5, **extra: object) -> Criterion:
    levels = [Level(value=v, description=f"level {v}") for v in range(low, high + 1)]
    return Criterion(key=key, name=key, description="checks", type="scale", levels=levels, **extra)


def boolean(key: str = "Correct", **extra: object) -> Criterion:
    return Criterion(key=key, name=key, description="checks", **extra)


def rubric(**overrides: object) -> RubricDefinition:
    data: dict[str, object] = {"title": "T", "criteria": [boolean(), scale()]}
    data.update(overrides)
    return RubricDefinition.model_validate(data)


def error_text(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return "\n".join(e["msg"] for e in exc.value.errors())


def test_json_dump_round_trips_through_model_validate() -> None:
    defn = rubric(
        edge_case_rules=["empty → 0"],
        examples=[FewShotExample(response="r", label={"Correct": True, "Quality": 4})],
    )
    data = defn.model_dump(mode="json")
    assert RubricDefinition.model_validate(data) == defn
    assert data["criteria"][1]["levels"][0] == {"value": 1, "description": "level 1"}


def test_min_and_max_value() -> None:
    assert (boolean().min_value, boolean().max_value) == (0, 1)
    assert (scale(low=0, high=3).min_value, scale(low=0, high=3).max_value) == (0, 3)


@pytest.mark.parametrize("key", ["1abc", "has space", "a" * 65, "", "é"])
def test_criterion_key_must_be_an_identifier(key: str) -> None:
    with pytest.raises(ValidationError) as exc:
        boolean(key=key)
    assert exc.value.errors()[0]["loc"] == ("key",)


def test_scale_without_levels_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        Criterion(key="Q", name="Q", type="scale")
    assert "a scale criterion needs at least 2 levels, got 0" in error_text(exc)


def test_scale_levels_must_be_contiguous_and_ascending() -> None:
    levels = [Level(value=1, description="a"), Level(value=3, description="b")]
    with pytest.raises(ValidationError) as exc:
        Criterion(key="Q", name="Q", type="scale", levels=levels)
    assert "contiguous ascending integers (e.g. [1, 2]), got [1, 3]" in error_text(exc)
    descending = [Level(value=2, description="a"), Level(value=1, description="b")]
    with pytest.raises(ValidationError):
        Criterion(key="Q", name="Q", type="scale", levels=descending)


def test_scale_levels_need_descriptions() -> None:
    levels = [Level(value=1, description="a"), Level(value=2, description="  ")]
    with pytest.raises(ValidationError) as exc:
        Criterion(key="Q", name="Q", type="scale", levels=levels)
    assert "level 2 needs a description" in error_text(exc)


def test_boolean_with_levels_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        Criterion(key="Q", name="Q", levels=[Level(value=1, description="a")])
    assert "a boolean criterion has no levels" in error_text(exc)


@pytest.mark.parametrize("weight", [0, -1, float("inf"), float("nan")])
def test_weight_must_be_positive_and_finite(weight: float) -> None:
    with pytest.raises(ValidationError):
        boolean(weight=weight)


def test_duplicate_criterion_keys_are_named() -> None:
    with pytest.raises(ValidationError) as exc:
        rubric(criteria=[boolean("A"), boolean("B"), boolean("A")])
    assert "criteria[2].key: duplicate criterion key 'A' (already used by criteria[0])" in (
        error_text(exc)
    )


def test_rubric_mode_needs_criteria() -> None:
    with pytest.raises(ValidationError) as exc:
        rubric(criteria=[])
    assert "a rubric needs at least one criterion" in error_text(exc)


def test_per_item_mean_needs_item_field() -> None:
    with pytest.raises(ValidationError) as exc:
        rubric(aggregation="per_item_mean")
    assert "item_field: per_item_mean aggregation needs the name of the list" in error_text(exc)
    assert rubric(aggregation="per_item_mean", item_field="comments").item_field == "comments"


def test_item_field_only_with_per_item_mean_and_not_reserved() -> None:
    with pytest.raises(ValidationError) as exc:
        rubric(item_field="comments")
    assert "only used with per_item_mean" in error_text(exc)
    with pytest.raises(ValidationError) as exc:
        rubric(aggregation="per_item_mean", item_field="criteria")
    assert "'criteria' is reserved" in error_text(exc)


def test_preference_mode_needs_instruction_not_criteria() -> None:
    with pytest.raises(ValidationError) as exc:
        RubricDefinition(mode="preference", title="P")
    assert "preference mode needs an instruction" in error_text(exc)
    defn = RubricDefinition(mode="preference", title="P", preference_instruction="Prefer X.")
    assert defn.criteria == []


def test_preference_mode_rejects_per_item_mean() -> None:
    with pytest.raises(ValidationError):
        RubricDefinition(
            mode="preference",
            title="P",
            preference_instruction="x",
            aggregation="per_item_mean",
            item_field="items",
        )


def test_empty_title_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        rubric(title=" ")
    assert "title: must not be empty" in error_text(exc)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        RubricDefinition.model_validate({"title": "T", "criteria": [], "critera": []})
    assert exc.value.errors()[0]["loc"] == ("critera",)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ({"Nope": True}, "unknown criterion key 'Nope'"),
        ({"Correct": 1}, "examples[0].label.Correct: must be true or false, got 1"),
        ({"Quality": 6}, "examples[0].label.Quality: must be a number from 1 to 5, got 6"),
        ({"Quality": True}, "must be a number from 1 to 5, got True"),
    ],
)
def test_example_labels_are_checked_against_criteria(
    label: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        rubric(examples=[{"response": "r", "label": label}])
    assert message in error_text(exc)


def test_preference_example_labels() -> None:
    base = {"mode": "preference", "title": "P", "preference_instruction": "x"}
    ok = RubricDefinition.model_validate(
        base | {"examples": [{"response": "a", "response_b": "b", "label": {"winner": "tie"}}]}
    )
    assert ok.examples[0].label == {"winner": "tie"}
    with pytest.raises(ValidationError) as exc:
        RubricDefinition.model_validate(
            base | {"examples": [{"response": "a", "label": {"winner": "C"}}]}
        )
    assert "must be 'A', 'B' or 'tie'" in error_text(exc)


def test_criterion_lookup() -> None:
    defn = rubric()
    assert defn.criterion("Quality").type == "scale"
    with pytest.raises(KeyError):
        defn.criterion("Missing")


def test_content_hash_is_stable_and_sensitive() -> None:
    a = rubric()
    b = RubricDefinition.model_validate(a.model_dump(mode="json"))
    assert content_hash(a) == content_hash(b)
    assert len(content_hash(a)) == 64
    changed = rubric(criteria=[boolean(), scale(weight=2.0)])
    assert content_hash(changed) != content_hash(a)
    # Order is meaningful (evaluation order), so reordering changes the hash.
    assert content_hash(rubric(criteria=[scale(), boolean()])) != content_hash(a)
