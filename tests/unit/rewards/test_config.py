"""The reward configuration model, its form mapping and change tracking."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.rewards.config import RewardConfigModel, changed_paths, load_config
from app.rewards.schemas import form_to_config, format_patterns, parse_patterns


def test_defaults_are_valid_and_match_the_product_brief() -> None:
    config = RewardConfigModel()
    assert config.judge.neutral_reward == 0.5
    assert config.format.enabled and config.format.gate
    assert load_config(None) == config
    assert load_config({"judge": {"weight": 2}}).judge.weight == 2.0


def test_a_config_where_nothing_is_weighted_is_refused() -> None:
    with pytest.raises(ValidationError, match="weight above 0"):
        RewardConfigModel.model_validate(
            {
                "judge": {"enabled": False},
                "format": {"weight": 0},
                "grounding": {"weight": 0},
            }
        )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"safety": {"patterns": [{"pattern": "(unclosed"}]}}, "regular expression"),
        ({"length": {"min_length": 10, "max_length": 5}}, "max_length"),
        ({"language": {"expected": "english!"}}, "language code"),
        ({"grounding": {"excerpt_fields": ["bad field"]}}, "field name"),
        ({"judge": {"weight": -1}}, "greater than or equal"),
        ({"format": {"colour": "red"}}, "Extra inputs"),
        ({"export_gate": {"min_kappa": 2}}, "less than or equal"),
    ],
)
def test_bad_settings_are_refused_with_a_readable_message(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RewardConfigModel.model_validate(data)


def test_patterns_text_round_trips() -> None:
    patterns = [{"name": "ssn", "pattern": r"\d{3}-\d{2}"}, {"name": "", "pattern": "[secret] x"}]
    text = format_patterns(patterns)
    assert parse_patterns(text + "\n\n") == patterns


def test_form_maps_onto_the_config_with_checkboxes_and_blanks() -> None:
    form = {
        "format.enabled": "1",
        "format.weight": "0.5",
        "format.gate": "1",
        "format.gate_reward": "-1",
        "length.weight": "0",
        "length.gate_reward": "0",
        "length.unit": "words",
        "length.min_length": "3",
        "length.max_length": "",
        "length.penalty": "2",
        "safety.enabled": "1",
        "safety.patterns": "[pii] \\d{3}-\\d{2}-\\d{4}",
        "grounding.excerpt_fields": "text_excerpt, quote",
        "judge.enabled": "1",
        "judge.weight": "1",
        "judge.neutral_reward": "0.4",
        "judge.timeout_s": "",
        "judge.concurrency": "16",
        "export_gate.min_kappa": "",
        "export_gate.min_items": "5",
    }
    config = RewardConfigModel.model_validate(form_to_config(form))
    assert config.format.weight == 0.5 and config.format.gate_reward == -1
    assert config.length.enabled is False and config.length.max_length is None
    assert config.length.unit == "words" and config.length.penalty == 2
    assert config.safety.patterns[0].name == "pii"
    assert config.grounding.excerpt_fields == ["text_excerpt", "quote"]
    assert config.grounding.enabled is False  # unticked
    assert config.judge.concurrency == 16 and config.judge.timeout_s is None
    assert config.judge.repair is False and config.strip_reasoning is False
    assert config.export_gate.min_kappa is None and config.export_gate.min_items == 5
    assert config.export_gate.enabled is False


def test_changed_paths_lists_nested_differences() -> None:
    before = RewardConfigModel().as_dict()
    after = RewardConfigModel.model_validate(
        {"judge": {"weight": 3}, "safety": {"patterns": [{"pattern": "x"}]}}
    ).as_dict()
    assert changed_paths(before, after) == ["judge.weight", "safety.patterns"]
    assert changed_paths(before, before) == []
