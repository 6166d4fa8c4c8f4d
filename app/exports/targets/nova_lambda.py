"""Generate the AWS Lambda reward function for Amazon Nova RFT: a zip with handler.py (the
`rubric_reward` runtime and the bundle embedded, so the one file runs on its own), a readable
bundle.json and requirements.txt, plus the training-recipe override snippet and the IAM policies
it needs. Pure: bytes and dicts out, no AWS calls.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import yaml

from app.exports.targets.common import (
    PACKAGE_NAME,
    RUNTIME_DIR,
    TargetOptions,
    bundle_json,
    embedded_runtime,
    requirements,
    runtime_bundle,
)

HANDLER = "handler.lambda_handler"
RUNTIME = "python3.12"
PYTHON_VERSION = "3.12"  # of RUNTIME: what --vendor builds wheels for
ARCHITECTURES = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
_EMBED_MARKER = "# <rubric-studio: embedded runtime>\n"
TIMEOUT_S = 900  # the Lambda maximum; judge calls for a batch can take minutes
MEMORY_MB = 1024
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same bundle gives the same zip bytes
_INFERENCE_PROFILE_PREFIX = re.compile(r"^(us|eu|apac|us-gov|global|jp|au|ca)\.")


def default_function_name(content_hash: str) -> str:
    # SageMaker HyperPod only invokes functions whose name contains "SageMaker".
    return f"rubric-reward-SageMaker-{content_hash[:12]}"


def function_name(bundle: dict[str, Any], options: TargetOptions) -> str:
    return options.function_name or default_function_name(bundle["content_hash"])


def arn_placeholder(name: str) -> str:
    return f"arn:aws:lambda:<REGION>:<ACCOUNT_ID>:function:{name}"


def recipe_overrides(bundle: dict[str, Any], options: TargetOptions) -> dict[str, Any]:
    """Where the Lambda goes in each Nova RFT flavour's job configuration."""
    arn = arn_placeholder(function_name(bundle, options))
    groups = options.number_generation
    limit = options.lambda_concurrency_limit
    snippet: dict[str, Any] = {
        "sagemaker_recipe": {
            "run": {"reward_lambda_arn": arn},
            "training_config": {
                "rollout": {
                    "advantage_strategy": {"number_generation": groups},
                    "rewards": {
                        "api_endpoint": {
                            "lambda_arn": "${run.reward_lambda_arn}",
                            "lambda_concurrency_limit": limit,
                        }
                    },
                }
            },
        },
        "nova_forge_sdk": {
            "rft_lambda_arn": arn,
            "overrides": {"number_generation": groups, "lambda_concurrency_limit": limit},
        },
    }
    if 2 <= groups <= 16:  # Bedrock's trainingSamplePerPrompt range
        snippet["bedrock_rft"] = {
            "customizationConfig": {
                "rftConfig": {
                    "graderConfig": {"lambdaGrader": {"lambdaArn": arn}},
                    "hyperParameters": {"trainingSamplePerPrompt": groups},
                }
            }
        }
    return snippet


def recipe_yaml(bundle: dict[str, Any], options: TargetOptions) -> str:
    """The override snippet as YAML, with a header saying where each part goes."""
    header = (
        f"# Rubric Studio export #{bundle['manifest'].get('number', '?')} "
        f"(sha256 {bundle['content_hash']}).\n"
        "# Replace <REGION> and <ACCOUNT_ID> with the deployed function's.\n"
        "# sagemaker_recipe: merge into a SageMaker training job / HyperPod RFT recipe.\n"
        "# nova_forge_sdk: train(rft_lambda_arn=..., overrides={...}).\n"
        "# bedrock_rft: fields of bedrock.create_model_customization_job(...).\n"
        f"# The Lambda must allow lambda_concurrency_limit ({options.lambda_concurrency_limit}) "
        "concurrent invocations (reserved or account concurrency).\n"
        f"# Lambda: runtime {RUNTIME}, architecture {options.lambda_architecture} (vendored "
        f"wheels are built for {ARCHITECTURES.get(options.lambda_architecture, '?')}, "
        f"CPython {PYTHON_VERSION}); handler {HANDLER}.\n"
    )
    return header + yaml.safe_dump(recipe_overrides(bundle, options), sort_keys=False)


def _model_resources(model_id: str) -> list[str]:
    if model_id.startswith("arn:"):
        return [model_id]
    base = _INFERENCE_PROFILE_PREFIX.sub("", model_id)
    resources = [f"arn:aws:bedrock:*::foundation-model/{base}"]
    if base != model_id:
        resources.append(f"arn:aws:bedrock:*:*:inference-profile/{model_id}")
    return resources


def iam_policies(bundle: dict[str, Any], options: TargetOptions) -> dict[str, Any]:
    """The Lambda execution role (trust + permissions) and what the training job's role needs."""
    judge = bundle["runtime"]["judge"]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "arn:aws:logs:*:*:*",
        }
    ]
    if judge.get("provider") == "bedrock" and judge.get("model_id"):
        statements.insert(
            0,
            {
                "Sid": "InvokeJudgeModel",
                "Effect": "Allow",
                # Converse is authorised by bedrock:InvokeModel.
                "Action": ["bedrock:InvokeModel"],
                "Resource": _model_resources(str(judge["model_id"])),
            },
        )
    name = function_name(bundle, options)
    return {
        "execution_role_trust_policy": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
        "execution_role_policy": {"Version": "2012-10-17", "Statement": statements},
        "training_role_policy": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "InvokeRewardLambda",
                    "Effect": "Allow",
                    "Action": ["lambda:InvokeFunction"],
                    "Resource": f"arn:aws:lambda:*:*:function:{name}",
                }
            ],
        },
    }


def _readme(bundle: dict[str, Any], options: TargetOptions, reqs: list[str]) -> str:
    judge = bundle["runtime"]["judge"]
    name = function_name(bundle, options)
    platform = ARCHITECTURES.get(options.lambda_architecture)
    return f"""# Reward Lambda for Amazon Nova RFT (Rubric Studio)

Export #{bundle["manifest"].get("number", "?")}, content sha256 `{bundle["content_hash"]}`:
rubric "{bundle["spec"]["rubric"]["name"]}" v{bundle["spec"]["rubric"]["version"]}, judge
{judge.get("provider")} `{judge.get("model_id")}`.

- Handler: `{HANDLER}` (runtime {RUNTIME}, architecture {options.lambda_architecture});
  timeout {TIMEOUT_S} s, memory {MEMORY_MB} MB. handler.py holds the runtime and the bundle
  (bundle.json is a readable copy), so it also runs alone, e.g. in nova-forge-sdk's
  `verify_reward_function("handler.py", samples)`.
- Event: a bare list of samples; output: a bare list of
  `{{id, aggregate_reward_score, metrics_list}}` (see handler.py).
- Dependencies (requirements.txt): {", ".join(reqs)}. The Lambda Python runtime ships boto3;
  install the rest next to handler.py before zipping (or export with `--vendor`), for the
  function's architecture and runtime:

      pip install -r requirements.txt -t . --implementation cp --only-binary=:all: \\
          --platform {platform} --python-version {PYTHON_VERSION}
      zip -r ../reward.zip .

- Function name: `{name}` (SageMaker HyperPod needs "SageMaker" in the name).
- IAM: iam_policies.json (execution role and the training job's invoke permission).
- Training job wiring: recipe_overrides.yaml.
- Deploy-time knobs that leave the reward unchanged: RUBRIC_JUDGE_CONCURRENCY,
  RUBRIC_JUDGE_TIMEOUT_S, RUBRIC_JUDGE_MAX_ATTEMPTS. Another model, provider or region changes
  the reward: the handler refuses it; export again with it (the content hash then covers it).
{_override_note(bundle)}"""


def _override_note(bundle: dict[str, Any]) -> str:
    manifest = bundle["manifest"]
    if not manifest.get("judge_overridden"):
        return ""
    return (
        f"- Judge overridden at export ({', '.join(manifest['judge_overridden'])}): this "
        f"package's content hash covers the override; the stored bundle's is "
        f"`{manifest['bundle_content_hash']}`.\n"
    )


def lambda_files(content: dict[str, Any], options: TargetOptions | None = None) -> dict[str, str]:
    """{path in the zip: text} for the Lambda package."""
    options = options or TargetOptions()
    bundle = runtime_bundle(content, options)
    reqs = requirements(bundle)
    files = {
        "handler.py": handler_source(bundle),
        "bundle.json": bundle_json(bundle),
        "requirements.txt": "\n".join(reqs) + "\n",
        "recipe_overrides.yaml": recipe_yaml(bundle, options),
        "iam_policies.json": json.dumps(iam_policies(bundle, options), indent=2) + "\n",
        "README.md": _readme(bundle, options, reqs),
    }
    return files


def handler_source(bundle: dict[str, Any]) -> str:
    """handler.py: the handler with the runtime package and the bundle embedded."""
    template = (RUNTIME_DIR / "lambda_handler.py").read_text(encoding="utf-8")
    assert _EMBED_MARKER in template
    return template.replace(_EMBED_MARKER, embedded_runtime(bundle, PACKAGE_NAME), 1)


def build_zip(content: dict[str, Any], options: TargetOptions | None = None) -> bytes:
    """The deployable zip (deterministic: the same bundle and options give the same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, text in sorted(lambda_files(content, options).items()):
            info = zipfile.ZipInfo(path, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()
