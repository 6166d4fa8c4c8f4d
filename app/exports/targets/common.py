"""What every generated package shares: the runtime sources and the bundle file it reads.

The runtime is `app/exports/package_runtime` with the studio's own scoring.py, json_extract.py,
components.py and composite.py copied in verbatim (never rewritten), so the package computes
what the studio computes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.rubrics.definition import RubricDefinition
from app.rubrics.output_schema import build_output_schema

_APP = Path(__file__).resolve().parents[2]
RUNTIME_DIR = _APP / "exports" / "package_runtime"
PACKAGE_NAME = "rubric_reward"

# Module name in the package -> the file it is copied from, in dependency order.
RUNTIME_SOURCES: dict[str, Path] = {
    "scoring": _APP / "rubrics" / "scoring.py",
    "json_extract": _APP / "llm" / "json_extract.py",
    "components": _APP / "rewards" / "components.py",
    "composite": _APP / "rewards" / "composite.py",
    "prompt": RUNTIME_DIR / "prompt.py",
    "judge": RUNTIME_DIR / "judge.py",
    "drift_recorder": RUNTIME_DIR / "drift_recorder.py",
    "engine": RUNTIME_DIR / "engine.py",
}

REQUIREMENT_PINS = {
    "jinja2": "jinja2>=3.1.4,<4",
    "jsonschema": "jsonschema>=4.18,<5",
    "boto3": "boto3>=1.35",
    "httpx": "httpx>=0.27,<1",
    "langdetect": "langdetect==1.0.9",
}


@dataclass(frozen=True)
class TargetOptions:
    """Settings a target may change without touching the bundle (the spec stays as hashed)."""

    provider: str | None = None
    model_id: str | None = None
    region: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    function_name: str | None = None
    number_generation: int = 8
    lambda_concurrency_limit: int = 100
    grader_model: str = "o4-mini-2025-04-16"


def runtime_sources() -> dict[str, str]:
    """{module name: source text} of the runtime, in dependency order."""
    return {name: path.read_text(encoding="utf-8") for name, path in RUNTIME_SOURCES.items()}


def package_init() -> str:
    return (RUNTIME_DIR / "__init__.py").read_text(encoding="utf-8")


def effective_judge(spec: dict[str, Any], options: TargetOptions) -> dict[str, Any]:
    """The spec's judge settings with the target's overrides (e.g. a Bedrock model for Lambda)."""
    judge = dict(spec["judge"])
    if options.provider:
        judge["provider"] = options.provider
    for key in ("model_id", "region", "base_url", "api_key_env"):
        value = getattr(options, key)
        if value:
            judge[key] = value
    if judge.get("provider") != "openai_compat":
        judge["base_url"] = None
        judge["api_key_env"] = None
    if judge.get("provider") != "bedrock":
        judge["region"] = None
    return judge


def runtime_bundle(content: dict[str, Any], options: TargetOptions | None = None) -> dict[str, Any]:
    """The bundle file a package reads: the stored bundle, with the rubric definition back in
    the model's field order (JSON columns may reorder keys) and the exact schema text the studio
    shows the judge."""
    options = options or TargetOptions()
    spec = json.loads(json.dumps(content["spec"]))
    definition = RubricDefinition.model_validate(spec["rubric"]["definition"])
    spec["rubric"]["definition"] = definition.model_dump(mode="json")
    return {
        "format": content["format"],
        "format_version": content["format_version"],
        "content_hash": content["content_hash"],
        "spec": spec,
        "manifest": content.get("manifest") or {},
        "runtime": {
            "output_schema_text": json.dumps(
                build_output_schema(definition), indent=2, ensure_ascii=False
            ),
            "judge": effective_judge(spec, options),
        },
    }


def requirements(bundle: dict[str, Any]) -> list[str]:
    """The third-party packages the runtime imports for this bundle."""
    names = ["jinja2", "jsonschema"]
    provider = bundle["runtime"]["judge"].get("provider")
    reward = bundle["spec"]["reward"]
    judge_enabled = (reward.get("judge") or {}).get("enabled", True)
    if judge_enabled and provider == "bedrock":
        names.append("boto3")
    if judge_enabled and provider == "openai_compat":
        names.append("httpx")
    drift = reward.get("drift") or {}
    if drift.get("enabled") and drift.get("s3_bucket") and "boto3" not in names:
        names.append("boto3")  # the Nova Lambda writes drift samples to S3
    if (reward.get("language") or {}).get("enabled"):
        names.append("langdetect")
    return [REQUIREMENT_PINS[name] for name in names]


def bundle_json(bundle: dict[str, Any]) -> str:
    """The bundle file's text (stable: same bundle, same bytes)."""
    return json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
