"""Problems are said once, with the form's name for the field and in words, not validator jargon."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from app.core.problems import by_field, field_label, from_validation_errors, labelled


class Settings(BaseModel):
    max_tokens: int = Field(ge=1)
    temperature: float = Field(le=2)
    api_key_env: str = Field(min_length=1)
    base_url: str


def _problems(data: dict[str, object]) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as exc:
        Settings.model_validate(data)
    return from_validation_errors(exc.value.errors())


def test_validator_wording_becomes_plain_words_with_readable_field_names() -> None:
    problems = _problems({"max_tokens": "many", "temperature": 9, "api_key_env": ""})
    said = {p["field"]: (p["label"], p["message"]) for p in problems}
    assert said == {
        "max_tokens": ("Max tokens", "must be a whole number"),
        "temperature": ("Temperature", "must be at most 2"),
        "api_key_env": ("API key variable", "must not be empty"),
        "base_url": ("Base URL", "is required"),
    }
    text = " ".join(p["message"] for p in problems)
    assert "Input should" not in text and "valid integer" not in text


def test_each_problem_is_listed_once() -> None:
    errors = [
        {"type": "missing", "loc": ("body", "name"), "msg": "Field required"},
        {"type": "missing", "loc": ("body", "name"), "msg": "Field required"},
    ]
    assert from_validation_errors(errors) == [
        {"field": "name", "label": "Name", "message": "is required"}
    ]


@pytest.mark.parametrize(
    ("field", "label"),
    [
        ("price_input_per_1k", "Price input per 1,000 tokens"),
        ("judge.weight", "Judge › Weight"),
        ("items.0.score", "Items › item 1 › Score"),
        ("critique:Clear", "Critique of “Clear”"),
        ("Follows_Instructions", "Follows Instructions"),
        ("Clear", "Clear"),
        ("request", ""),
    ],
)
def test_field_labels(field: str, label: str) -> None:
    assert field_label(field) == label


def test_labelled_keeps_other_keys_and_accepts_sentences() -> None:
    shown = labelled([{"line": 3, "field": "score", "message": "must be a number"}, "Too big."])
    assert shown[0] == {
        "line": 3,
        "field": "score",
        "message": "must be a number",
        "label": "Line 3, Score",
    }
    assert shown[1] == {"field": "", "label": "", "message": "Too big."}
    assert by_field(shown) == {"score": "must be a number", "": "Too big."}
