"""The shipped Lambda handler passes nova-forge-sdk's own `verify_reward_function` (which
exec()s the file with empty globals: no __file__, no package beside it), with the judge answered
by the local judge server; and judge settings that change the reward cannot be overridden."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.exports.targets import TargetOptions
from app.exports.targets.common import runtime_bundle
from app.exports.targets.nova_lambda import build_zip, recipe_yaml
from tests.support.ecosystem import nova_reward_verifier
from tests.support.judge_server import JudgeServer
from tests.unit.exports.builders import BEDROCK_JUDGE, legal_content
from tests.unit.exports.nova_models import nova_sample
from tests.unit.exports.package_env import run_lambda, unzip


def _samples(demo_rollouts: list[dict]) -> list[dict]:
    samples = []
    for record in demo_rollouts[:4]:
        sample = nova_sample(record)
        sample["id"] = str(sample["id"])
        sample["reference_answer"] = {"summary": "The clause caps liability."}
        samples.append(sample)
    return samples


def test_the_shipped_handler_passes_nova_forge_sdks_verifier(
    tmp_path: Path, demo_rollouts, monkeypatch: pytest.MonkeyPatch
) -> None:
    verify_reward_function = nova_reward_verifier()
    monkeypatch.setenv("TELEMETRY_OPT_OUT", "true")  # the SDK would post usage data otherwise
    with JudgeServer() as server:
        judge = BEDROCK_JUDGE | {
            "provider": "openai_compat",
            "model_id": "judge-test",
            "base_url": server.base_url,
            "region": None,
            "concurrency": 2,
        }
        package = unzip(build_zip(legal_content(judge=judge)), tmp_path / "function")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)  # nothing is found through the working directory
        samples = _samples(demo_rollouts)
        result = verify_reward_function(str(package / "handler.py"), samples)
        served = server.requests
    assert result["success"] is True
    assert result["successful_samples"] == result["total_samples"] == len(samples)
    outputs = [r["output"] for r in result["results"]]
    assert [o["id"] for o in outputs] == [s["id"] for s in samples]
    assert served >= 1  # real judge calls were made through the handler
    judged = [o for o in outputs if any(m["name"] == "judge" for m in o["metrics_list"])]
    assert judged and all(0.0 <= o["aggregate_reward_score"] <= 1.0 for o in outputs)


def test_a_run_time_model_or_region_override_is_refused(tmp_path: Path, demo_rollouts) -> None:
    event = [nova_sample(demo_rollouts[0])]
    for env in (
        {"RUBRIC_JUDGE_MODEL_ID": "amazon.nova-pro-v1:0"},
        {"RUBRIC_JUDGE_REGION": "eu-west-1"},
    ):
        with pytest.raises(AssertionError, match="would change the reward"):
            run_lambda(build_zip(legal_content()), tmp_path / next(iter(env)), event, [], env)


def test_the_recipe_says_which_architecture_and_runtime() -> None:
    content = legal_content()
    options = TargetOptions(lambda_architecture="arm64")
    text = recipe_yaml(runtime_bundle(content, options), options)
    assert "architecture arm64" in text and "python3.12" in text
    assert "manylinux2014_aarch64" in text
