"""What crosses the boundary for rewards: API models, and the HTML form turned into config data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from app.core.ids import Id, Int32, NonNegInt32

COMPONENTS = ("format", "length", "language", "safety", "grounding")
_CHECKBOXES = {
    "strip_reasoning",
    *(f"{name}.{flag}" for name in COMPONENTS for flag in ("enabled", "gate")),
    "format.require_json",
    "format.strip_code_fences",
    "grounding.quoted_text",
    "grounding.case_sensitive",
    "judge.enabled",
    "judge.repair",
    "export_gate.enabled",
    "drift.enabled",
    "drift.always_record_errors",
    "drift.always_record_gated",
    "drift.include_judge_raw",
}
_FIELDS = {
    "format": ("weight", "gate_reward"),
    "length": ("weight", "gate_reward", "unit", "min_length", "max_length", "penalty"),
    "language": ("weight", "gate_reward", "expected", "min_chars"),
    "safety": ("weight", "gate_reward"),
    "grounding": ("weight", "gate_reward", "min_quote_chars", "pass_threshold"),
    "judge": (
        "weight",
        "neutral_reward",
        "concurrency",
        "timeout_s",
        "max_attempts",
        "base_delay_s",
        "max_delay_s",
    ),
    "export_gate": ("min_items", "min_kappa", "min_tpr", "min_tnr", "pass_threshold"),
    "drift": (
        "training_run",
        "sample_rate",
        "always_record_per_1000",
        "s3_bucket",
        "s3_prefix",
        "trainer_destination",
        "file_path",
        "api_url",
        "api_project",
        "api_token_env",
        "max_queue",
        "flush_wait_s",
    ),
}
# Blank means "none" for these; for the others a blank field takes the default.
_NULLABLE = {
    "length.max_length",
    "judge.concurrency",
    "judge.timeout_s",
    "judge.max_attempts",
    "judge.base_delay_s",
    "judge.max_delay_s",
    "export_gate.min_kappa",
    "export_gate.min_tpr",
    "export_gate.min_tnr",
}


def parse_patterns(text: str) -> list[dict[str, str]]:
    """Deny-list lines: a regular expression per line, optionally named as `[name] regex`."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        name = ""
        if line.startswith("[") and "] " in line:
            name, _, line = line[1:].partition("] ")
            line = line.strip()
        patterns.append({"name": name.strip(), "pattern": line})
    return patterns


def format_patterns(patterns: list[dict[str, Any]]) -> str:
    """The inverse of parse_patterns, for the form's textarea."""
    lines = []
    for p in patterns:
        pattern = str(p["pattern"])
        # An unnamed pattern that itself starts with "[" gets an empty name, so it reads back.
        if p.get("name") or pattern.startswith("["):
            lines.append(f"[{p.get('name') or ''}] {pattern}")
        else:
            lines.append(pattern)
    return "\n".join(lines)


def form_to_config(form: Mapping[str, Any]) -> dict[str, Any]:
    """The reward settings form as configuration data (validated by RewardConfigModel)."""
    data: dict[str, Any] = {"strip_reasoning": "strip_reasoning" in form}
    for section, fields in _FIELDS.items():
        part: dict[str, Any] = {}
        for name in fields:
            key = f"{section}.{name}"
            raw = str(form.get(key, "")).strip()
            if raw:
                part[name] = raw
            elif key in _NULLABLE:
                part[name] = None
        for flag in _CHECKBOXES:
            prefix, _, name = flag.partition(".")
            if prefix == section and name:
                part[name] = flag in form
        data[section] = part
    data["safety"]["patterns"] = parse_patterns(str(form.get("safety.patterns", "")))
    fields_text = str(form.get("grounding.excerpt_fields", ""))
    data["grounding"]["excerpt_fields"] = [f.strip() for f in fields_text.split(",") if f.strip()]
    return data


# In the OpenAPI document `config` is the RewardConfig schema (RewardConfigModel's, put in the
# components by app.web.openapi); the route parses it itself to answer with readable problems.
CONFIG_SCHEMA_REF: JsonDict = {"x-schema": "RewardConfig"}


class RewardConfigPublic(BaseModel):
    project_id: int
    revision: int = Field(description="0 while the project uses the defaults (nothing saved)")
    config: dict[str, Any] = Field(json_schema_extra=CONFIG_SCHEMA_REF)
    updated_at: datetime | None
    updated_by_id: int | None


class RewardConfigUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] = Field(
        description="the whole configuration (docs/formats/reward-config.md)",
        json_schema_extra=CONFIG_SCHEMA_REF,
    )
    revision: Int32 = Field(ge=0, description="the revision you read; a stale one is refused (409)")


class HistogramBinPublic(BaseModel):
    low: float
    high: float
    count: int


class ComponentSummaryPublic(BaseModel):
    name: str
    weight: float
    gate: bool
    evaluated: int
    applicable: int
    passed: int
    gated: int
    mean_score: float | None
    mean_contribution: float | None


class RolloutRewardPublic(BaseModel):
    rollout_id: int
    external_id: str
    group_key: str | None
    step: int | None
    reward: float
    gated_by: str | None
    judge_status: str
    contributions: dict[str, float]


class RewardPreviewPublic(BaseModel):
    run_id: int
    rollouts: int
    missing_verdicts: int
    mean: float | None
    minimum: float | None
    maximum: float | None
    judge_ok: int
    judge_errors: int
    gated: int
    groups: int = Field(description="groups (same prompt) with at least two rollouts")
    zero_spread_groups: list[str] = Field(description="groups whose rewards are all equal")
    warnings: list[str] = Field(
        default_factory=list,
        description="components that apply to none of the selection's rollouts (they add "
        "nothing to the reward), e.g. grounding when no rollout has its document where the "
        "project says it is",
    )
    histogram: list[HistogramBinPublic]
    components: list[ComponentSummaryPublic]
    rows: list[RolloutRewardPublic]


class RewardPreviewJobBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: Id = Field(description="judge run whose stored verdicts to use")
    gold_split: Literal["development", "test"] | None = None
    step: NonNegInt32 | None = None
    sample: int | None = Field(default=None, ge=1, le=5000)
    seed: NonNegInt32 = 0


class RewardPreviewJobPublic(BaseModel):
    id: Id
    run_id: Id
    status: str = Field(description="queued | running | done | failed")
    done: int = Field(description="rollouts scored so far")
    total: int = Field(description="rollouts in the selection")
    error: str | None = None
    result: RewardPreviewPublic | None = None
