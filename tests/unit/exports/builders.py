"""Bundles built from the built-in contract-review rubric and the demo data, without a database."""

from __future__ import annotations

from typing import Any

from app.demo.legal import OUTPUT_SCHEMA, build_legal_demo
from app.exports.bundle import BundleInputs, build_content, build_spec
from app.rewards.config import RewardConfigModel
from app.rubrics.builtin import get_builtin
from app.rubrics.output_schema import build_output_schema
from app.rubrics.prompting import materialize_templates

BEDROCK_JUDGE: dict[str, Any] = {
    "provider": "bedrock",
    "model_id": "us.amazon.nova-2-lite-v1:0",
    "base_url": None,
    "api_key_env": None,
    "region": "us-east-1",
    "temperature": 0.0,
    "top_p": None,
    "max_tokens": 2048,
    "structured_output": "auto",
    "concurrency": 4,
    "timeout_s": 30.0,
    "max_attempts": 3,
    "base_delay_s": 0.5,
    "max_delay_s": 4.0,
}


def legal_inputs(
    judge: dict[str, Any] | None = None, reward: dict[str, Any] | None = None, **changes: Any
) -> BundleInputs:
    definition = materialize_templates(get_builtin("legal_contract_review"))
    fields: dict[str, Any] = {
        "project_output_schema": OUTPUT_SCHEMA,
        "rubric_name": "Contract review",
        "rubric_version": 1,
        "rubric_version_hash": "0" * 64,
        "definition": definition.model_dump(mode="json"),
        "answer_schema": build_output_schema(definition),
        "judge": judge or BEDROCK_JUDGE,
        "reward": reward or RewardConfigModel().as_dict(),
    }
    fields.update(changes)
    return BundleInputs(**fields)


def legal_content(**kwargs: Any) -> dict[str, Any]:
    return build_content(build_spec(legal_inputs(**kwargs)), {"number": 1})


def demo_sample_rollouts() -> list[dict[str, Any]]:
    """Two contracts x four generations, plus one of each whole-response defect."""
    rollouts = build_legal_demo().rollouts
    picked = [r for r in rollouts if r["group"] in {rollouts[0]["group"], rollouts[4]["group"]}]
    defects = sorted({r["metadata"]["response_defect"] for r in rollouts} - {None})
    for defect in defects:
        picked.append(next(r for r in rollouts if r["metadata"]["response_defect"] == defect))
    return picked
