"""What crosses the boundary for exports: creation input, bundle output, target options."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.ids import Id
from app.exports.targets import TargetOptions

TARGET_NAMES = (
    "nova-lambda",
    "nova-recipe",
    "nova-iam",
    "trl",
    "verl",
    "openrlhf",
    "trainer-requirements",
    "openai-grader",
    "foundry-grader",
    "bundle",
)


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rubric_version_id: Id = Field(ge=1)
    judge_config_id: Id = Field(ge=1)
    run_id: Id | None = Field(
        default=None,
        ge=1,
        description="judge run of this version and judge whose verdicts on the gold test split "
        "give the agreement figures",
    )
    override_reason: str | None = Field(
        default=None,
        max_length=5000,
        description="admins only: export although the gate fails, for this recorded reason",
    )


class ExportPublic(BaseModel):
    id: int
    project_id: int
    number: int
    content_hash: str
    rubric_version_id: int
    judge_config_id: int | None
    reward_config_id: int | None
    gate_passed: bool
    override_reason: str | None
    created_by_id: int | None
    created_at: datetime
    manifest: dict[str, Any]
    spec: dict[str, Any] | None = Field(
        default=None,
        description="the hashed content (docs/formats/export-bundle.md)",
        json_schema_extra={"x-schema": "ExportBundleSpec"},
    )
    same_content_as: list[int] = Field(
        default_factory=list, description="numbers of earlier exports with the same hash"
    )


class GateCheckPublic(BaseModel):
    agreement: dict[str, Any]
    gate: dict[str, Any]


class TargetQuery(BaseModel):
    """Optional settings for a generated target (the bundle itself never changes)."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = Field(default=None, pattern="^(bedrock|openai_compat)$")
    model_id: str | None = Field(default=None, min_length=1, max_length=2048)
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    base_url: str | None = Field(default=None, pattern=r"^https?://", max_length=500)
    function_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    number_generation: int = Field(default=8, ge=1, le=256)
    lambda_concurrency_limit: int = Field(default=100, ge=1, le=10_000)
    grader_model: str = Field(default="o4-mini-2025-04-16", min_length=1, max_length=200)
    lambda_architecture: str = Field(
        default="x86_64", pattern="^(x86_64|arm64)$", description="the Lambda's architecture"
    )

    @field_validator("provider", "model_id", "region", "base_url", "function_name", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # Empty form fields mean "as exported".
        return None if isinstance(value, str) and not value.strip() else value

    def options(self) -> TargetOptions:
        return TargetOptions(
            provider=self.provider,
            model_id=self.model_id,
            region=self.region,
            base_url=self.base_url,
            function_name=self.function_name,
            number_generation=self.number_generation,
            lambda_concurrency_limit=self.lambda_concurrency_limit,
            grader_model=self.grader_model,
            lambda_architecture=self.lambda_architecture,
        )
