"""The exported Nova Lambda, unzipped into a fresh folder with only what it declares, writes its
drift samples to S3 (moto): one gzipped JSONL object per invocation, in the §8 record shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.exports.targets.nova_lambda import build_zip
from app.rewards import components, composite
from app.rewards.config import RewardConfigModel
from tests.unit.exports.builders import BEDROCK_JUDGE, legal_content
from tests.unit.exports.nova_models import items_in, legal_answer, nova_sample
from tests.unit.exports.package_env import run_lambda_with_s3

KEYS = ["TargetDocument_Grounding", "Reference_Consistency", "Actionability"]
BUCKET = "drift-bucket"


def lambda_drift_run(tmp_path: Path, demo_rollouts: list[dict[str, Any]]) -> dict[str, Any]:
    """Two invocations of three samples each; every sample recorded."""
    reward = RewardConfigModel.model_validate(
        {
            "drift": {
                "enabled": True,
                "sample_rate": 1.0,
                "training_run": "nova-legal-1",
                "s3_bucket": BUCKET,
                "s3_prefix": "runs/",
                "flush_wait_s": 5.0,
            }
        }
    ).as_dict()
    content = legal_content(judge=BEDROCK_JUDGE, reward=reward)
    config = content["spec"]["reward"]
    schema = content["spec"]["project"]["output_schema"]

    def judged(r: dict[str, Any]) -> bool:
        results = components.evaluate_components(
            config, r["response"], target_document=r["target_document"], output_schema=schema
        )
        return composite.judge_needed(config, results)

    passing = [r for r in demo_rollouts if judged(r) and items_in(r)][:4]  # commented responses
    gated = [r for r in demo_rollouts if not judged(r)][:2]
    events = [
        [nova_sample(r) for r in passing[:2] + gated[:1]],
        [nova_sample(r) for r in passing[2:] + gated[1:]],
    ]
    # One answer per judged sample, in order (concurrency 1), scoring each of its comments once.
    script = [
        {"text": json.dumps(legal_answer(KEYS, score=s, items=items_in(r)))}
        for s, r in zip((5, 4, 3, 2), passing, strict=True)
    ]
    env = {"RUBRIC_JUDGE_CONCURRENCY": "1"}
    result = run_lambda_with_s3(build_zip(content), tmp_path, events, script, BUCKET, env)
    result["events"] = events
    return result


def test_lambda_writes_one_object_per_invocation_with_every_sample(
    tmp_path: Path, demo_rollouts
) -> None:
    result = lambda_drift_run(tmp_path, demo_rollouts)
    objects = result["objects"]
    assert len(objects) == 2
    assert all(key.startswith("runs/nova-legal-1/") for key in objects)
    assert all(key.endswith(".jsonl.gz") for key in objects)
    records = [json.loads(line) for text in objects.values() for line in text.splitlines()]
    assert len(records) == 6 and result["stats"]["written"] == 6
    by_sample = {r["sample_id"]: r for r in records}
    for event, output in zip(result["events"], result["outputs"], strict=True):
        for sample, row in zip(event, output, strict=True):
            record = by_sample[sample["id"]]
            assert record["reward"] == row["aggregate_reward_score"]
            assert record["source"] == "nova-lambda" and record["step"] is None
            assert record["training_run"] == "nova-legal-1" and record["recorded_at"]
            assert record["rollout"]["response"] == sample["messages"][-1]["content"]
    judged = [r for r in records if r["judge"]["status"] == "ok"]
    assert len(judged) == 4 and {r["judge"]["criteria"]["Actionability"] for r in judged} == {
        5,
        4,
        3,
        2,
    }
    assert sum(1 for r in records if r["gated_by"]) == 2
