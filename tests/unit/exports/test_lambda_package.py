"""The Lambda zip run as AWS would: unzipped into a fresh folder, with only what requirements.txt
declares, called as lambda_handler(list_of_samples, None); Bedrock is a botocore Stubber."""

from __future__ import annotations

from pathlib import Path

from app.exports.targets.nova_lambda import build_zip
from app.rewards import components, composite
from tests.unit.exports.builders import BEDROCK_JUDGE, legal_content
from tests.unit.exports.nova_models import NOVA_OUTPUT, good_answer, nova_sample
from tests.unit.exports.package_env import run_lambda

KEYS = ["TargetDocument_Grounding", "Reference_Consistency", "Actionability"]


def test_batch_with_a_malformed_sample_an_empty_response_and_a_judge_error(
    tmp_path: Path, demo_rollouts
) -> None:
    content = legal_content(judge=BEDROCK_JUDGE | {"max_attempts": 2})
    config = content["spec"]["reward"]
    schema = content["spec"]["project"]["output_schema"]
    judged = [
        r
        for r in demo_rollouts
        if composite.judge_needed(
            config,
            components.evaluate_components(
                config, r["response"], target_document=r["target_document"], output_schema=schema
            ),
        )
    ]
    ok_sample = nova_sample(judged[0])
    error_sample = nova_sample(judged[1]) | {"id": "judge-error"}
    empty = nova_sample(judged[2]) | {"id": "empty-response"}
    empty["messages"][-1] = {"role": "assistant", "content": ""}
    prose = next(r for r in demo_rollouts if r["metadata"]["response_defect"] == "prose")
    event = [
        ok_sample,
        {"id": "malformed", "messages": {"role": "user"}},
        error_sample,
        empty,
        nova_sample(prose),
    ]
    script = [
        {"text": good_answer(KEYS, judged[0], score=5)},
        {"error": "ThrottlingException", "status": 429},
        {"error": "ThrottlingException", "status": 429},  # max_attempts=2: gives up
    ]
    result = run_lambda(
        build_zip(content), tmp_path, event, script, {"RUBRIC_JUDGE_CONCURRENCY": "1"}
    )
    # Nothing from the studio (or pydantic) is needed by the function.
    assert result["studio_importable"] is False and result["pydantic_importable"] is False
    output = result["output"]
    NOVA_OUTPUT.validate_python(output)  # every entry has the documented shape
    assert [row["id"] for row in output] == [
        ok_sample["id"],
        "malformed",
        "judge-error",
        "empty-response",
        prose["id"],
    ]
    scores = {row["id"]: row["aggregate_reward_score"] for row in output}
    assert scores["malformed"] == 0.5 and scores["judge-error"] == 0.5
    assert scores["empty-response"] == 0.0 and scores[prose["id"]] == 0.0  # format gate
    metrics = {m["name"]: m for m in output[0]["metrics_list"]}
    assert metrics["judge"]["value"] == 1.0 and metrics["judge"]["type"] == "Reward"
    assert {f"criterion.{k}" for k in KEYS} <= set(metrics)
    assert all(m["type"] == "Metric" for k, m in metrics.items() if k.startswith("criterion."))
