"""Bundle content and its hash: same inputs, same hash; any change to the reward, a new hash."""

from __future__ import annotations

import copy
import json

import pytest

from app.exports.bundle import build_content, build_spec, content_hash
from app.rewards.config import RewardConfigModel
from app.rubrics.builtin import get_builtin
from tests.unit.exports.builders import BEDROCK_JUDGE, legal_content, legal_inputs


def test_same_inputs_give_the_same_hash_whatever_the_key_order_and_manifest() -> None:
    first = legal_content()
    second = build_content(build_spec(legal_inputs()), {"number": 7, "created_at": "later"})
    assert first["content_hash"] == second["content_hash"]
    shuffled = json.loads(json.dumps(first["spec"], sort_keys=True))
    assert content_hash(shuffled) == first["content_hash"]
    assert len(first["content_hash"]) == 64


def _changed_definition(change) -> dict:
    definition = copy.deepcopy(legal_inputs().definition)
    change(definition)
    return definition


@pytest.mark.parametrize(
    "changes",
    [
        # the prompt
        {
            "definition": _changed_definition(
                lambda d: d.update(user_template=d["user_template"] + "!")
            )
        },
        # the rubric
        {"definition": _changed_definition(lambda d: d["criteria"][0].update(weight=2.0))},
        {"definition": _changed_definition(lambda d: d["edge_case_rules"].append("New rule."))},
        # the configuration
        {"reward": RewardConfigModel.model_validate({"judge": {"weight": 2}}).as_dict()},
        {"reward": RewardConfigModel.model_validate({"export_gate": {"min_kappa": 0.5}}).as_dict()},
        {"judge": BEDROCK_JUDGE | {"model_id": "amazon.nova-pro-v1:0"}},
        {"judge": BEDROCK_JUDGE | {"temperature": 0.3}},
        {"project_output_schema": {"type": "array"}},
    ],
)
def test_any_change_to_prompt_rubric_or_config_changes_the_hash(changes) -> None:
    assert legal_content(**changes)["content_hash"] != legal_content()["content_hash"]


def test_judge_names_and_prices_do_not_count_but_call_policy_overrides_do() -> None:
    named = BEDROCK_JUDGE | {"name": "another name", "price_input_per_1k": 3.0}
    assert legal_content(judge=named)["content_hash"] == legal_content()["content_hash"]
    reward = RewardConfigModel.model_validate({"judge": {"concurrency": 64}}).as_dict()
    spec = build_spec(legal_inputs(reward=reward))
    assert spec["judge"]["concurrency"] == 64
    assert build_spec(legal_inputs())["judge"]["concurrency"] == BEDROCK_JUDGE["concurrency"]


def test_spec_holds_the_rendered_prompt_templates_and_schema() -> None:
    spec = build_spec(legal_inputs())
    assert spec["prompt"]["system_template"] and spec["prompt"]["user_template"]
    assert "SAMPLE RESPONSE 7f3a" in spec["prompt"]["sample"]["user"]
    assert spec["prompt"]["output_schema"]["required"] == ["comments", "aggregate_score"]
    assert spec["rubric"]["definition"]["system_template"] == spec["prompt"]["system_template"]


def test_a_preference_rubric_cannot_be_a_reward() -> None:
    definition = get_builtin("pairwise_preference").model_dump(mode="json")
    with pytest.raises(ValueError, match="rubric-mode"):
        build_spec(legal_inputs(definition=definition))
