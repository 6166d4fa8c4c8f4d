"""The OpenAI grader export checked with the OpenAI SDK's own pydantic models, for OpenAI and
Microsoft Foundry, and its score_model prompt giving the grader model one output instruction."""

from __future__ import annotations

import json

import pytest

from app.exports.targets import render_target
from app.exports.targets.openai_grader import build_grader
from app.rewards.config import RewardConfigModel
from tests.support.ecosystem import require
from tests.unit.exports.builders import legal_content

REWARDS = {
    "default": None,
    "gated": {"language": {"enabled": True}, "grounding": {"gate": True, "gate_reward": -0.5}},
    "judge-only": {
        "format": {"enabled": False},
        "length": {"enabled": False},
        "grounding": {"enabled": False},
    },
}


@pytest.mark.parametrize("platform", ["openai", "foundry"])
@pytest.mark.parametrize("reward", list(REWARDS), ids=list(REWARDS))
def test_the_grader_validates_with_the_openai_sdk_types(platform: str, reward: str) -> None:
    require("openai")
    from openai.types.fine_tuning import ReinforcementMethod
    from openai.types.graders import MultiGrader, PythonGrader, ScoreModelGrader

    config = REWARDS[reward]
    content = legal_content(
        reward=RewardConfigModel.model_validate(config).as_dict() if config else None
    )
    result = build_grader(content, platform=platform)
    assert result["platform"] == platform and result["platform_note"]
    grader = result["grader"]
    ScoreModelGrader.model_validate(grader)
    method = ReinforcementMethod.model_validate({"grader": grader})
    assert method.grader.type == "score_model"
    multi = result["multi_grader"]
    if reward == "judge-only":
        assert multi is None
        return
    # The SDK's MultiGrader types `graders` as one grader: the map form (what the services
    # document) is refused by it; each grader in the map validates on its own.
    with pytest.raises(ValueError):
        MultiGrader.model_validate(multi)
    for sub in multi["graders"].values():
        model = ScoreModelGrader if sub["type"] == "score_model" else PythonGrader
        model.model_validate(sub)
    assert any("SDK" in line for line in result["differences"])


def test_the_score_model_prompt_has_one_output_instruction() -> None:
    grader = build_grader(legal_content())["grader"]
    system = grader["input"][0]["content"]
    assert "JSON Schema" not in system and "JSON object" not in system
    assert system.count("## Output") == 1
    assert "one number from 0 to 1" in system
    assert "{{sample.output_text}}" in grader["input"][1]["content"]


def test_the_foundry_target_is_the_same_grader_set() -> None:
    content = legal_content()
    openai_file = json.loads(render_target(content, "openai-grader").data)
    foundry_file = json.loads(render_target(content, "foundry-grader").data)
    assert foundry_file["grader"] == openai_file["grader"]
    assert foundry_file["multi_grader"] == openai_file["multi_grader"]
    assert "Foundry" in foundry_file["platform_note"]
