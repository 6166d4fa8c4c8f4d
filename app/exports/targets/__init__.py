"""Artefacts generated from a bundle, by target name (pure: content in, a file out)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.exports.targets import nova_lambda, openai_grader, trl_verl
from app.exports.targets.common import TargetOptions, bundle_json, runtime_bundle

__all__ = ["TARGETS", "TargetFile", "TargetOptions", "render_target"]


@dataclass(frozen=True)
class TargetFile:
    filename: str
    media_type: str
    data: bytes


def _stem(content: dict[str, Any]) -> str:
    number = (content.get("manifest") or {}).get("number", "x")
    return f"rubric-reward-{number}-{content['content_hash'][:12]}"


def _bundle(content: dict[str, Any], options: TargetOptions) -> TargetFile:
    text = bundle_json(runtime_bundle(content, options))
    return TargetFile(f"{_stem(content)}.bundle.json", "application/json", text.encode())


def _lambda(content: dict[str, Any], options: TargetOptions) -> TargetFile:
    data = nova_lambda.build_zip(content, options)
    return TargetFile(f"{_stem(content)}.lambda.zip", "application/zip", data)


def _recipe(content: dict[str, Any], options: TargetOptions) -> TargetFile:
    text = nova_lambda.recipe_yaml(runtime_bundle(content, options), options)
    return TargetFile(f"{_stem(content)}.recipe.yaml", "application/yaml", text.encode())


def _iam(content: dict[str, Any], options: TargetOptions) -> TargetFile:
    policies = nova_lambda.iam_policies(runtime_bundle(content, options), options)
    text = json.dumps(policies, indent=2) + "\n"
    return TargetFile(f"{_stem(content)}.iam.json", "application/json", text.encode())


def _module(content: dict[str, Any], options: TargetOptions) -> TargetFile:
    text = trl_verl.build_module(content, options)
    return TargetFile(f"{trl_verl.module_name(content)}.py", "text/x-python", text.encode())


def _openrlhf(content: dict[str, Any], options: TargetOptions) -> TargetFile:
    text = trl_verl.build_module(content, options, flavour="openrlhf")
    return TargetFile(
        f"{trl_verl.openrlhf_module_name(content)}.py", "text/x-python", text.encode()
    )


def _requirements(content: dict[str, Any], options: TargetOptions) -> TargetFile:
    text = trl_verl.requirements_text(content, options)
    return TargetFile(trl_verl.requirements_filename(content), "text/plain", text.encode())


def _grader(content: dict[str, Any], options: TargetOptions) -> TargetFile:
    text = json.dumps(openai_grader.build_grader(content, options), indent=2) + "\n"
    return TargetFile(f"{_stem(content)}.openai-grader.json", "application/json", text.encode())


def _foundry_grader(content: dict[str, Any], options: TargetOptions) -> TargetFile:
    grader = openai_grader.build_grader(content, options, platform="foundry")
    text = json.dumps(grader, indent=2) + "\n"
    return TargetFile(f"{_stem(content)}.foundry-grader.json", "application/json", text.encode())


TARGETS: dict[str, tuple[str, Callable[[dict[str, Any], TargetOptions], TargetFile]]] = {
    "nova-lambda": ("AWS Lambda for Amazon Nova RFT (zip)", _lambda),
    "nova-recipe": ("Nova RFT recipe overrides (YAML)", _recipe),
    "nova-iam": ("IAM policies for the Lambda (JSON)", _iam),
    "trl": ("TRL GRPOTrainer reward function (Python)", _module),
    "verl": ("verl compute_score (Python)", _module),
    "openrlhf": ("OpenRLHF remote reward function (Python)", _openrlhf),
    "trainer-requirements": ("requirements.txt of the TRL / verl / OpenRLHF module", _requirements),
    "openai-grader": ("OpenAI grader configuration (JSON, legacy)", _grader),
    "foundry-grader": ("Microsoft Foundry RFT grader configuration (JSON)", _foundry_grader),
    "bundle": ("The bundle file (JSON)", _bundle),
}


def render_target(
    content: dict[str, Any], target: str, options: TargetOptions | None = None
) -> TargetFile:
    """The artefact for `target` (KeyError for an unknown target name)."""
    return TARGETS[target][1](content, options or TargetOptions())
