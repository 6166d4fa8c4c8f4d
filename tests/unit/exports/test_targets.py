"""Targets generated from a bundle: the Lambda zip, the recipe and IAM snippets, the trainer
module and the (legacy) OpenAI grader."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import io
import json
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.exports.bundle import content_hash
from app.exports.targets import TARGETS, TargetOptions, render_target
from app.exports.targets.common import RUNTIME_SOURCES, runtime_bundle
from app.exports.targets.nova_lambda import build_zip, iam_policies, recipe_overrides
from app.exports.targets.openai_grader import build_grader
from app.exports.targets.trl_verl import build_module
from app.rewards import components, composite
from app.rewards.config import RewardConfigModel
from tests.unit.exports.builders import BEDROCK_JUDGE, legal_content

OPENAI_JUDGE = BEDROCK_JUDGE | {
    "provider": "openai_compat",
    "model_id": "judge-test",
    "base_url": "http://127.0.0.1:9/v1",
    "region": None,
}


def _zip(content: dict[str, Any], options: TargetOptions | None = None) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(build_zip(content, options))) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


def _imports(source: str, *, module_level_only: bool) -> set[str]:
    tree = ast.parse(source)
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", "rubric_reward"}


def test_lambda_zip_holds_the_handler_runtime_bundle_and_requirements() -> None:
    files = _zip(legal_content())
    assert set(files) == {
        "handler.py",
        "bundle.json",
        "requirements.txt",
        "recipe_overrides.yaml",
        "iam_policies.json",
        "README.md",
    }
    assert "def lambda_handler(event: Any, context: Any)" in files["handler.py"]
    # The studio's scoring and reward code is embedded verbatim, never rewritten.
    for name, path in RUNTIME_SOURCES.items():
        assert repr(path.read_text()) in files["handler.py"], name
    bundle = json.loads(files["bundle.json"])
    assert bundle["content_hash"] == legal_content()["content_hash"]
    assert files["requirements.txt"].split() == [
        "jinja2>=3.1.4,<4",
        "jsonschema>=4.18,<5",
        "boto3>=1.35",
    ]


def test_every_third_party_import_of_the_package_is_declared() -> None:
    reward = RewardConfigModel.model_validate({"language": {"enabled": True}}).as_dict()
    for judge, client, other in (
        (BEDROCK_JUDGE, "boto3", "httpx"),
        (OPENAI_JUDGE, "httpx", "boto3"),
    ):
        files = _zip(legal_content(judge=judge, reward=reward))
        declared = {line.split(">")[0].split("=")[0] for line in files["requirements.txt"].split()}
        assert declared == {"jinja2", "jsonschema", "langdetect", client}
        sources = [text for name, text in files.items() if name.endswith(".py")]
        # What loads with the module must be declared; the other provider's client (and
        # botocore, which boto3 brings) is only imported inside the code that uses it.
        loaded = set().union(*(_imports(t, module_level_only=True) for t in sources))
        assert loaded <= declared, loaded
        anywhere = set().union(*(_imports(t, module_level_only=False) for t in sources))
        assert anywhere - declared <= {other, "botocore"}, anywhere


def test_the_same_bundle_gives_the_same_zip_bytes() -> None:
    assert build_zip(legal_content()) == build_zip(legal_content())
    other = legal_content(judge=BEDROCK_JUDGE | {"max_tokens": 100})
    assert build_zip(other) != build_zip(legal_content())


def test_target_options_switch_the_lambda_to_a_bedrock_judge() -> None:
    content = legal_content(judge=OPENAI_JUDGE)
    options = TargetOptions(provider="bedrock", model_id="amazon.nova-pro-v1:0", region="eu-west-1")
    files = _zip(content, options)
    runtime = json.loads(files["bundle.json"])["runtime"]["judge"]
    assert runtime["provider"] == "bedrock" and runtime["model_id"] == "amazon.nova-pro-v1:0"
    assert runtime["base_url"] is None and runtime["region"] == "eu-west-1"
    assert "boto3" in files["requirements.txt"] and "httpx" not in files["requirements.txt"]
    # The override changes the reward, so the package's hashed spec holds it: its own content
    # hash, with the stored bundle's hash and what changed in the manifest.
    package = json.loads(files["bundle.json"])
    assert package["spec"]["judge"] == runtime
    assert package["content_hash"] == content_hash(package["spec"]) != content["content_hash"]
    assert package["manifest"]["bundle_content_hash"] == content["content_hash"]
    assert package["manifest"]["judge_overridden"] == ["provider", "model_id", "region"]
    # Without an override the package's hash is the bundle's.
    assert json.loads(_zip(content)["bundle.json"])["content_hash"] == content["content_hash"]


def test_recipe_overrides_and_iam_policies() -> None:
    bundle = runtime_bundle(legal_content())
    options = TargetOptions(number_generation=8, lambda_concurrency_limit=100)
    snippet = recipe_overrides(bundle, options)
    arn = snippet["sagemaker_recipe"]["run"]["reward_lambda_arn"]
    assert arn.startswith("arn:aws:lambda:<REGION>:<ACCOUNT_ID>:function:rubric-reward-SageMaker-")
    rollout = snippet["sagemaker_recipe"]["training_config"]["rollout"]
    assert rollout["advantage_strategy"]["number_generation"] == 8
    assert rollout["rewards"]["api_endpoint"] == {
        "lambda_arn": "${run.reward_lambda_arn}",
        "lambda_concurrency_limit": 100,
    }
    assert snippet["nova_forge_sdk"]["overrides"] == {
        "number_generation": 8,
        "lambda_concurrency_limit": 100,
    }
    grader = snippet["bedrock_rft"]["customizationConfig"]["rftConfig"]
    assert grader["graderConfig"]["lambdaGrader"]["lambdaArn"] == arn
    assert "bedrock_rft" not in recipe_overrides(bundle, TargetOptions(number_generation=32))
    text = render_target(legal_content(), "nova-recipe").data.decode()
    assert yaml.safe_load(text) == snippet

    policies = iam_policies(bundle, options)
    invoke = policies["execution_role_policy"]["Statement"][0]
    assert invoke["Action"] == ["bedrock:InvokeModel"]
    assert invoke["Resource"] == [
        "arn:aws:bedrock:*::foundation-model/amazon.nova-2-lite-v1:0",
        "arn:aws:bedrock:*:*:inference-profile/us.amazon.nova-2-lite-v1:0",
    ]
    trust = policies["execution_role_trust_policy"]["Statement"][0]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert policies["training_role_policy"]["Statement"][0]["Action"] == ["lambda:InvokeFunction"]


def test_trainer_module_imports_alone_and_exposes_both_signatures(tmp_path: Path) -> None:
    content = legal_content(judge=OPENAI_JUDGE)
    text = build_module(content)
    path = tmp_path / "reward_module.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("reward_module_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.reward_func) and callable(module.compute_score)
    assert inspect.iscoroutinefunction(module.reward_func)  # TRL runs it on its event loop
    assert inspect.iscoroutinefunction(module.compute_score_async)
    # A prose response fails the format gate before any judge call: no server is needed.
    prose = {"prompts": ["Review it"], "completions": ["Looks fine to me."]}
    assert asyncio.run(module.reward_func(**prose)) == [0.0]
    assert module.reward_func_sync(**prose) == [0.0]
    assert module.compute_score("demo", "Looks fine.", None, {})["score"] == 0.0
    with pytest.raises(ValueError, match="would change the reward"):
        module.configure(model_id="another-model")
        module.get_engine()
    module.configure(model_id=OPENAI_JUDGE["model_id"])  # the same value is no override
    assert module.get_engine().judge_settings["base_url"] == OPENAI_JUDGE["base_url"]
    module.configure(base_url="http://127.0.0.1:8/v1", concurrency=2)
    assert module.get_engine().judge_settings["base_url"] == "http://127.0.0.1:8/v1"
    assert module.get_engine().judge_settings["concurrency"] == 2
    # Verbatim runtime sources are embedded.
    for name, source_path in RUNTIME_SOURCES.items():
        assert repr(source_path.read_text()) in text, name


def test_trainer_module_docstring_survives_odd_rubric_names(tmp_path: Path) -> None:
    content = legal_content(rubric_name='Quotes """ and \\ backslashes\nnew line')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(build_module(content), "m.py", "exec")


def test_every_target_renders() -> None:
    content = legal_content()
    for name in TARGETS:
        file = render_target(content, name)
        assert file.data and file.filename and file.media_type


def _eval_output(expression: str, values: dict[str, float]) -> float:
    return float(eval(expression, {"__builtins__": {}}, values))  # our own generated arithmetic


def test_openai_grader_is_marked_legacy_and_reproduces_weights_and_gates(demo_rollouts) -> None:
    reward = RewardConfigModel.model_validate(
        {"language": {"enabled": True}, "grounding": {"gate": True, "gate_reward": -0.5}}
    ).as_dict()
    content = legal_content(reward=reward)
    result = build_grader(content)
    assert result["legacy"] is True and "LEGACY" in result["notice"]
    assert result["grader"]["type"] == "score_model"
    grader = result["multi_grader"]
    assert grader["type"] == "multi"
    assert set(grader["graders"]) == {
        "format",
        "format_pass",
        "grounding",
        "grounding_pass",
        "judge",
    }
    assert grader["graders"]["judge"]["type"] == "score_model"
    assert "{{sample.output_text}}" in grader["graders"]["judge"]["input"][1]["content"]
    assert any("langdetect" in d for d in result["differences"])
    schema = content["spec"]["project"]["output_schema"]
    for record in demo_rollouts:
        scope: dict[str, Any] = {}
        values = {}
        for name, sub in grader["graders"].items():
            if sub["type"] != "python":
                continue
            exec(sub["source"], scope)  # the grader's own source, as OpenAI runs it
            item = {
                "prompt": record["input"][-1]["content"],
                "target_document": record["target_document"],
            }
            values[name] = scope["grade"]({"output_text": record["response"]}, item) or 0.0
        values["judge"] = 0.6
        config_without_language = reward | {"language": reward["language"] | {"enabled": False}}
        results = components.evaluate_components(
            config_without_language,
            record["response"],
            input_messages=[record["input"][-1]],
            target_document=record["target_document"],
            output_schema=schema,
        )
        expected = composite.compute_reward(
            config_without_language, results, {"status": "ok", "normalized": 0.6}
        )
        if all(r["applicable"] for r in results.values()):
            assert _eval_output(grader["calculate_output"], values) == pytest.approx(
                expected["reward"]
            ), record["id"]


def test_openai_grader_without_components_is_a_single_score_model() -> None:
    reward = RewardConfigModel.model_validate(
        {
            "format": {"enabled": False},
            "length": {"enabled": False},
            "grounding": {"enabled": False},
        }
    ).as_dict()
    grader = build_grader(legal_content(reward=reward))["grader"]
    assert grader["type"] == "score_model" and grader["range"] == [0, 1]
    assert (
        grader["model"] == "o4-mini-2025-04-16" and "temperature" not in grader["sampling_params"]
    )
