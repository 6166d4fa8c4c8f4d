"""The composite reward configuration as a validated model, with the defaults a project starts from.

`RewardConfigModel.model_dump(mode="json")` is the plain dict that `components`, `composite` and
the exported reward functions read.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_PATTERNS = 200
MAX_PATTERN_CHARS = 500
_LANGUAGE_CODE = re.compile(r"^(auto|[a-z]{2,3}(-[a-z]{2,4})?)$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Component(_Model):
    """What every deterministic component has: on/off, weight and an optional gate."""

    enabled: bool = False
    weight: float = Field(default=0.0, ge=0.0, le=100.0)
    gate: bool = Field(default=False, description="a failure gives gate_reward and skips the judge")
    gate_reward: float = Field(default=0.0, ge=-10.0, le=10.0)


class FormatComponent(Component):
    enabled: bool = True
    weight: float = Field(default=0.2, ge=0.0, le=100.0)
    gate: bool = True
    require_json: bool = Field(
        default=True, description="without a project output schema, still require valid JSON"
    )
    strip_code_fences: bool = Field(default=True, description="accept JSON inside one ``` fence")


class LengthComponent(Component):
    enabled: bool = True
    unit: Literal["chars", "words"] = "chars"
    min_length: int = Field(default=1, ge=0, le=10_000_000)
    max_length: int | None = Field(default=20_000, ge=1, le=10_000_000)
    penalty: float = Field(
        default=1.0, ge=0.0, le=100.0, description="score lost per 100% outside the bounds"
    )

    @model_validator(mode="after")
    def _bounds(self) -> LengthComponent:
        if self.max_length is not None and self.max_length < self.min_length:
            raise ValueError("length.max_length must be at least length.min_length")
        return self


class LanguageComponent(Component):
    expected: str = Field(
        default="auto", description="auto (the input's language) or an ISO 639-1 code"
    )
    min_chars: int = Field(default=20, ge=1, le=10_000)

    @field_validator("expected")
    @classmethod
    def _code(cls, value: str) -> str:
        value = value.strip().lower() or "auto"
        if not _LANGUAGE_CODE.match(value):
            raise ValueError("must be 'auto' or a language code such as 'en' or 'de'")
        return value


class SafetyPattern(_Model):
    name: str = Field(default="", max_length=100)
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN_CHARS)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        return value


class SafetyComponent(Component):
    patterns: list[SafetyPattern] = Field(default_factory=list, max_length=MAX_PATTERNS)


class GroundingComponent(Component):
    enabled: bool = True
    weight: float = Field(default=0.2, ge=0.0, le=100.0)
    excerpt_fields: list[str] = Field(default_factory=lambda: ["text_excerpt"], max_length=20)
    quoted_text: bool = Field(default=False, description="also check quotes in prose responses")
    min_quote_chars: int = Field(default=20, ge=1, le=10_000)
    case_sensitive: bool = True
    pass_threshold: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("excerpt_fields")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [v.strip() for v in value if v.strip()]
        for name in names:
            if not _FIELD_NAME.match(name):
                raise ValueError(f"'{name}' is not a field name (letters, digits, _ . -)")
        return names


class JudgeSettings(_Model):
    """The judge's part of the reward and how training-time calls behave. Call settings left
    empty use the judge configuration's own values."""

    enabled: bool = True
    weight: float = Field(default=1.0, ge=0.0, le=100.0)
    neutral_reward: float = Field(default=0.5, ge=-10.0, le=10.0)
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    timeout_s: float | None = Field(default=None, gt=0.0, le=900.0)
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    base_delay_s: float | None = Field(default=None, ge=0.0, le=600.0)
    max_delay_s: float | None = Field(default=None, ge=0.0, le=3600.0)
    repair: bool = Field(default=True, description="one repair request for an unusable answer")


class ExportGate(_Model):
    """Agreement the judge must reach on the locked gold test split before an export."""

    enabled: bool = True
    min_items: int = Field(default=10, ge=0, le=1_000_000)
    min_kappa: float | None = Field(default=0.4, ge=-1.0, le=1.0)
    min_tpr: float | None = Field(default=0.7, ge=0.0, le=1.0)
    min_tnr: float | None = Field(default=0.7, ge=0.0, le=1.0)
    pass_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="a normalised score at or above it passes"
    )


_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,119}$")
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class DriftRecording(_Model):
    """Drift samples out of training: what the exported reward function records for reviewers
    (INTERFACES.md §8). Baked into the bundle; RUBRIC_DRIFT_* variables override at deploy time."""

    enabled: bool = False
    training_run: str = Field(
        default="", max_length=120, description="the run the samples belong to (blank: bundle hash)"
    )
    sample_rate: float = Field(
        default=0.03, ge=0.0, le=1.0, description="share of prompts recorded (whole groups)"
    )
    always_record_errors: bool = True
    always_record_gated: bool = True
    always_record_per_1000: int = Field(
        default=50, ge=0, le=1000, description="cap on always-recorded samples per 1,000 scored"
    )
    s3_bucket: str = Field(default="", max_length=63, description="the Nova Lambda writes here")
    s3_prefix: str = Field(default="drift-samples/", max_length=500)
    trainer_destination: Literal["file", "api"] = "file"
    file_path: str = Field(default="drift_samples.jsonl", max_length=500)
    api_url: str = Field(default="", max_length=500, description="the studio's base URL")
    api_project: str = Field(default="", max_length=120, description="project id in the studio")
    api_token_env: str = Field(default="RUBRIC_STUDIO_TOKEN", max_length=120)
    max_queue: int = Field(default=2000, ge=1, le=1_000_000, description="records held at most")
    flush_wait_s: float = Field(
        default=1.0, ge=0.0, le=10.0, description="longest wait for a Lambda batch's S3 object"
    )
    include_judge_raw: bool = True

    @field_validator("training_run")
    @classmethod
    def _run_name(cls, value: str) -> str:
        value = value.strip()
        if value and not _RUN_NAME.match(value):
            raise ValueError("letters, digits and _ . : - only (up to 120)")
        return value

    @field_validator("s3_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        value = value.strip()
        if value and not _S3_BUCKET.match(value):
            raise ValueError("not an S3 bucket name (3-63 lower-case letters, digits, . and -)")
        return value

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^https?://[^\s]+$", value):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("api_token_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError("must be an environment variable name")
        return value


class RewardConfigModel(_Model):
    """A project's composite reward: components, the judge's weight, gating and call policy."""

    strip_reasoning: bool = Field(
        default=True, description="check only the answer of reasoning models (<think>, solution)"
    )
    format: FormatComponent = Field(default_factory=FormatComponent)
    length: LengthComponent = Field(default_factory=LengthComponent)
    language: LanguageComponent = Field(default_factory=LanguageComponent)
    safety: SafetyComponent = Field(default_factory=SafetyComponent)
    grounding: GroundingComponent = Field(default_factory=GroundingComponent)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    export_gate: ExportGate = Field(default_factory=ExportGate)
    drift: DriftRecording = Field(default_factory=DriftRecording)

    @model_validator(mode="after")
    def _something_weighted(self) -> RewardConfigModel:
        weights = [
            c.weight
            for c in (self.format, self.length, self.language, self.safety, self.grounding)
            if c.enabled
        ]
        if self.judge.enabled:
            weights.append(self.judge.weight)
        if sum(weights) <= 0:
            raise ValueError(
                "give at least one enabled component or the judge a weight above 0, "
                "otherwise every reward is the neutral value"
            )
        return self

    def as_dict(self) -> dict[str, Any]:
        """The plain dict the pure reward code reads."""
        return self.model_dump(mode="json")


def default_config() -> RewardConfigModel:
    return RewardConfigModel()


def load_config(data: dict[str, Any] | None) -> RewardConfigModel:
    """A stored config (possibly from an older release, missing keys) as a model."""
    return RewardConfigModel.model_validate(data or {})


def changed_paths(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two config dicts (for the audit log)."""
    paths: list[str] = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            paths.extend(changed_paths(a, b, f"{path}."))
        elif a != b:
            paths.append(path)
    return paths
