"""What crosses the boundary for judging: judge configurations, runs and verdicts."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.core.errors import InvalidInput
from app.core.ids import Id, Int32
from app.core.problems import from_validation_errors
from app.judging.status import RunStatus
from app.llm.config import ProviderConfig

PROVIDERS = ("openai_compat", "bedrock")
STRUCTURED_OUTPUT_MODES = ("auto", "json_schema", "json_object", "prompt")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/.+$")


class JudgeConfigInput(BaseModel):
    """A judge configuration as an engineer enters it. Never a key: only the NAME of an env var."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    provider: Literal["openai_compat", "bedrock"]
    model_id: str = Field(min_length=1, max_length=300)
    base_url: str | None = Field(default=None, max_length=500)
    api_key_env: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=40)
    temperature: float | None = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int = Field(default=1024, ge=1, le=200_000)
    concurrency: int = Field(default=8, ge=1, le=1024)
    timeout_s: float = Field(default=60.0, gt=0.0, le=3600.0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    base_delay_s: float = Field(default=1.0, ge=0.0, le=600.0)
    max_delay_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    structured_output: Literal["auto", "json_schema", "json_object", "prompt"] = "auto"
    price_input_per_1k: float = Field(default=0.0, ge=0.0, le=1000.0)
    price_output_per_1k: float = Field(default=0.0, ge=0.0, le=1000.0)
    # Bedrock batch inference: where request files go and the role Bedrock assumes to read them.
    batch_s3_uri: str | None = Field(default=None, max_length=500)
    batch_role_arn: str | None = Field(default=None, max_length=300)

    @field_validator("name", "model_id")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("base_url", "api_key_env", "region", "batch_s3_uri", "batch_role_arn")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        return value or None

    @field_validator("batch_s3_uri")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        if value is not None and not _S3_URI.match(value):
            raise ValueError("must look like s3://bucket/prefix/")
        return value

    @field_validator("batch_role_arn")
    @classmethod
    def _role_arn(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN.match(value):
            raise ValueError("must be an IAM role ARN (arn:aws:iam::123456789012:role/Name)")
        return value

    @model_validator(mode="after")
    def _provider_rules(self) -> JudgeConfigInput:
        # The provider package owns the detailed rules (env var names, URLs, Bedrock ranges).
        try:
            self.provider_config()
        except ValidationError as exc:
            reasons = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err.get("loc", ()))
                message = str(err.get("msg", "")).removeprefix("Value error, ")
                reasons.append(f"{where}: {message}" if where else message)
            raise ValueError("; ".join(reasons)) from None
        return self

    def provider_config(self) -> ProviderConfig:
        return ProviderConfig(
            provider=self.provider,
            model_id=self.model_id,
            base_url=self.base_url if self.provider == "openai_compat" else None,
            api_key_env=self.api_key_env if self.provider == "openai_compat" else None,
            region=self.region if self.provider == "bedrock" else None,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            concurrency=self.concurrency,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            base_delay_s=self.base_delay_s,
            max_delay_s=self.max_delay_s,
            structured_output=self.structured_output,
        )

    def params(self) -> dict[str, Any]:
        """What the JudgeConfig row keeps in its `params` JSON column."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "base_delay_s": self.base_delay_s,
            "max_delay_s": self.max_delay_s,
            "structured_output": self.structured_output,
            "batch_s3_uri": self.batch_s3_uri,
            "batch_role_arn": self.batch_role_arn,
        }


class JudgeConfigUpdate(JudgeConfigInput):
    revision: Int32 = Field(description="the revision you read; a stale one is refused with 409")


class JudgeConfigPublic(BaseModel):
    id: int
    project_id: int
    name: str
    provider: str
    model_id: str
    base_url: str | None
    api_key_env: str | None
    region: str | None
    params: dict[str, Any]
    concurrency: int
    timeout_s: float
    max_attempts: int
    price_input_per_1k: float
    price_output_per_1k: float
    revision: int
    created_at: datetime
    updated_at: datetime


class JudgeConfigForm(BaseModel):
    """The judge-configuration form as typed: every field is text, a blank one takes the default.

    `to_input` checks it into a `JudgeConfigInput` (or a 422 naming the fields); the page
    re-renders what was typed from the form itself.
    """

    name: str = Field(default="", max_length=500)
    provider: str = Field(default="", max_length=500)
    model_id: str = Field(default="", max_length=500)
    base_url: str = Field(default="", max_length=500)
    api_key_env: str = Field(default="", max_length=500)
    region: str = Field(default="", max_length=500)
    temperature: str = Field(default="", max_length=500)
    top_p: str = Field(default="", max_length=500)
    max_tokens: str = Field(default="", max_length=500)
    concurrency: str = Field(default="", max_length=500)
    timeout_s: str = Field(default="", max_length=500)
    max_attempts: str = Field(default="", max_length=500)
    base_delay_s: str = Field(default="", max_length=500)
    max_delay_s: str = Field(default="", max_length=500)
    structured_output: str = Field(default="", max_length=500)
    price_input_per_1k: str = Field(default="", max_length=500)
    price_output_per_1k: str = Field(default="", max_length=500)
    batch_s3_uri: str = Field(default="", max_length=500)
    batch_role_arn: str = Field(default="", max_length=500)

    def to_input(self) -> JudgeConfigInput:
        values = self.model_dump(exclude={"revision"})
        cleaned = {key: value for key, value in values.items() if value.strip()}
        try:
            return JudgeConfigInput(**cleaned)
        except ValidationError as exc:
            raise invalid_from(exc) from None


class JudgeConfigUpdateForm(JudgeConfigForm):
    """The edit form: the fields plus the revision the editor started from."""

    revision: Int32 = 0


class SelectionInput(BaseModel):
    """Which rollouts (or pairs, for a preference rubric) a run judges."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["all", "gold"] = Field(
        default="all", description="all rollouts of the project, or only the gold set"
    )
    gold_split: Literal["development", "test"] | None = None
    steps: list[Int32] = Field(default_factory=list, max_length=1000)
    models: list[str] = Field(default_factory=list, max_length=200)
    groups: list[str] = Field(default_factory=list, max_length=10_000)
    sample: int | None = Field(default=None, ge=1, le=10_000_000, description="random sample size")
    seed: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="sample seed; chosen and recorded if omitted"
    )


class RunCreate(BaseModel):
    """Start one run per judge configuration; several configurations make a cross-judge set."""

    model_config = ConfigDict(extra="forbid")

    rubric_version_id: Id
    judge_config_ids: list[Id] = Field(min_length=1, max_length=20)
    selection: SelectionInput = Field(default_factory=SelectionInput)
    repeats: int = Field(default=1, ge=1, le=20)
    neutral_score: float = Field(default=0.5, ge=0.0, le=1.0)
    batch: bool = Field(default=False, description="use Amazon Bedrock batch inference")


class RunEstimate(BaseModel):
    subjects: int
    calls_per_judge: int
    judges: int
    input_tokens: int
    output_tokens: int
    cost: float
    sampled_prompts: int
    warnings: list[str] = Field(default_factory=list)


class RunPublic(BaseModel):
    id: int
    project_id: int
    rubric_version_id: int
    judge_config_id: int | None
    judge_name: str
    kind: str
    comparison_key: str | None
    selection: dict[str, Any]
    repeats: int
    status: RunStatus = Field(
        description="queued, running, completed, with_errors (some calls failed), failed (every "
        "call failed, or the run could not be judged) or cancelled"
    )
    status_label: str = Field("", description="The status in words, as the run page shows it")
    items_total: int
    items_done: int
    items_error: int
    input_tokens: int
    output_tokens: int
    cost: float
    estimated_cost: float | None
    message: str = Field(description="Why the run failed or had errors, with the first error")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rate_per_s: float | None = None
    eta_s: float | None = None


class ConnectionCheckPublic(BaseModel):
    """One tiny request sent through the judge's provider: the answer, or the error."""

    ok: bool
    answer: str = Field("", description="The start of the judge's reply (one line, short)")
    error: str = Field("", description="Why the request failed (one line, short)")
    model: str = ""
    latency_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    test_double: bool = Field(False, description="True when the answer came from a test double")


class VerdictPublic(BaseModel):
    id: int
    run_id: int
    work_item_id: int | None
    rollout_id: int
    pair_id: int | None
    repeat: int
    order_shown: str
    answer: Any
    scores: dict[str, Any]
    aggregate: float | None
    normalized: float | None
    winner: str | None
    parse_status: str
    error: str | None
    latency_ms: int
    input_tokens: int
    output_tokens: int
    attempts: int
    judge_name: str
    created_at: datetime


class VerdictPage(BaseModel):
    items: list[VerdictPublic]
    next_cursor: str | None = Field(
        description="send back as `cursor` for the next page; null on the last page"
    )
    next_after_id: int | None = Field(
        deprecated=True, description="deprecated: the same page boundary as an id; use next_cursor"
    )


class ImportResult(BaseModel):
    runs: list[RunPublic]
    verdicts: int


# What the judge-configuration form calls each field (problems name the field as the form does).
CONFIG_LABELS = {
    "model_id": "Model id",
    "base_url": "Base URL",
    "api_key_env": "API key environment variable",
    "region": "AWS region",
    "top_p": "Top p",
    "max_tokens": "Max output tokens",
    "concurrency": "Concurrent calls",
    "timeout_s": "Timeout per call",
    "max_attempts": "Attempts per call",
    "base_delay_s": "Backoff base",
    "max_delay_s": "Backoff cap",
    "structured_output": "Structured output",
    "price_input_per_1k": "Price per 1,000 input tokens",
    "price_output_per_1k": "Price per 1,000 output tokens",
    "batch_s3_uri": "S3 location for batch files",
    "batch_role_arn": "IAM role for batch inference",
    "rubric_version_id": "Rubric version",
    "judge_config_ids": "Judges",
    "neutral_score": "Neutral score",
}


def invalid_from(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """A pydantic error as a readable InvalidInput: a lead sentence, and each problem once."""
    problems = from_validation_errors(exc.errors(), prefix=prefix, labels=CONFIG_LABELS)
    lead = "Please correct this:" if len(problems) == 1 else "Please correct these:"
    return InvalidInput(lead, details=problems)
