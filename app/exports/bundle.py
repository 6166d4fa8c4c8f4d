"""Build a frozen export bundle and its content hash (pure: no web, no database).

A bundle is {"format", "format_version", "content_hash", "spec", "manifest", "files"}:
- `spec` is what the reward function IS: the project's output schema, the rubric version's
  definition (templates materialised), the judge prompt templates and output schema, the judge
  settings and the reward configuration. `content_hash` is sha256 of its canonical JSON, so two
  exports of the same inputs share a hash and any change to prompt, rubric or config changes it.
- `manifest` is what was TRUE at export time (who approved the rubric, agreement figures on the
  gold test split, the gate, an override, who exported and when); it is kept but not hashed.
- `files` holds readable copies (the rubric document as YAML).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from app.rubrics.definition import RubricDefinition, RubricMode
from app.rubrics.prompting import SAMPLE_CONTEXT, materialize_templates, render_prompt

BUNDLE_FORMAT = "rubric-studio/reward-bundle"
FORMAT_VERSION = 1

# Judge settings that decide what the reward function does (names and prices do not).
JUDGE_KEYS = (
    "provider",
    "model_id",
    "base_url",
    "api_key_env",
    "region",
    "temperature",
    "top_p",
    "max_tokens",
    "structured_output",
    "concurrency",
    "timeout_s",
    "max_attempts",
    "base_delay_s",
    "max_delay_s",
)
# Call settings the reward configuration may override for training-time calls.
CALL_OVERRIDES = ("concurrency", "timeout_s", "max_attempts", "base_delay_s", "max_delay_s")


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(spec: dict[str, Any]) -> str:
    """sha256 (hex) of the spec's canonical JSON."""
    return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()


def judge_settings(judge: dict[str, Any], reward_judge: dict[str, Any]) -> dict[str, Any]:
    """The judge settings a package uses: the judge configuration's, with the reward
    configuration's call policy (concurrency, timeout, retries) where it sets one."""
    settings = {key: judge.get(key) for key in JUDGE_KEYS}
    for key in CALL_OVERRIDES:
        if reward_judge.get(key) is not None:
            settings[key] = reward_judge[key]
    return settings


@dataclass(frozen=True)
class BundleInputs:
    """Everything the spec is made of, already read from the database."""

    project_output_schema: dict[str, Any] | None
    rubric_name: str
    rubric_version: int
    rubric_version_hash: str
    definition: dict[str, Any]
    answer_schema: dict[str, Any]
    judge: dict[str, Any]
    reward: dict[str, Any]
    # Where the grounding document is (projects' setting); None: the rollout's target_document.
    document_location: dict[str, Any] | None = None


def build_spec(inputs: BundleInputs) -> dict[str, Any]:
    """The hashed part of a bundle."""
    definition = materialize_templates(RubricDefinition.model_validate(inputs.definition))
    if definition.mode != RubricMode.rubric:
        raise ValueError("only rubric-mode rubrics can be exported as reward functions")
    sample = render_prompt(definition, SAMPLE_CONTEXT)
    project: dict[str, Any] = {"output_schema": inputs.project_output_schema}
    if inputs.document_location and inputs.document_location.get("source", "field") != "field":
        project["document_location"] = inputs.document_location  # absent: the default
    return {
        "project": project,
        "rubric": {
            "name": inputs.rubric_name,
            "version": inputs.rubric_version,
            "content_hash": inputs.rubric_version_hash,
            "definition": definition.model_dump(mode="json"),
        },
        "prompt": {
            "system_template": definition.system_template,
            "user_template": definition.user_template,
            "output_schema": inputs.answer_schema,
            "sample": {"system": sample.system, "user": sample.user},
        },
        "judge": judge_settings(inputs.judge, inputs.reward.get("judge") or {}),
        "reward": inputs.reward,
    }


def build_content(
    spec: dict[str, Any], manifest: dict[str, Any], files: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole bundle as stored: spec, its hash, the manifest and readable files."""
    return {
        "format": BUNDLE_FORMAT,
        "format_version": FORMAT_VERSION,
        "content_hash": content_hash(spec),
        "spec": spec,
        "manifest": manifest,
        "files": files or {},
    }
