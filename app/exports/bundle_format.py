"""The shape of an export bundle's hashed `spec`, as pydantic models: its JSON Schema is served
in the OpenAPI document (`ExportBundleSpec`) and documented in docs/formats/export-bundle.md, and
every bundle the studio builds is checked against it in the tests. bundle.py builds the spec."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.rewards.config import RewardConfigModel
from app.rubrics.definition import RubricDefinition


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BundleDocumentLocation(_Strict):
    source: Literal["metadata", "user_message"]
    metadata_key: str = ""
    start_marker: str = ""
    end_marker: str = ""


class BundleProject(_Strict):
    output_schema: dict[str, Any] | None = Field(
        description="JSON Schema of the policy's answers (the format component checks it)"
    )
    document_location: BundleDocumentLocation | None = Field(
        default=None,
        description="where the grounding document is, when not the row's target_document: a "
        "custom field (top level or under metadata) or the last user message between markers",
    )


class BundleRubric(_Strict):
    name: str
    version: int = Field(ge=1)
    content_hash: str = Field(pattern="^[0-9a-f]{64}$", description="of the rubric version")
    definition: RubricDefinition = Field(description="the rubric, its templates materialised")


class BundlePromptSample(_Strict):
    system: str
    user: str


class BundlePrompt(_Strict):
    system_template: str
    user_template: str
    output_schema: dict[str, Any] = Field(description="JSON Schema of the judge's answer")
    sample: BundlePromptSample = Field(description="the prompt rendered on a fixed sample")


class BundleJudge(_Strict):
    provider: Literal["openai_compat", "bedrock"]
    model_id: str
    base_url: str | None
    api_key_env: str | None
    region: str | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    structured_output: Literal["auto", "json_schema", "json_object", "prompt"] | None
    concurrency: int | None
    timeout_s: float | None
    max_attempts: int | None
    base_delay_s: float | None
    max_delay_s: float | None


class ExportBundleSpec(_Strict):
    """What the reward function IS; `content_hash` is sha256 of its canonical JSON (sorted keys,
    no whitespace, UTF-8)."""

    project: BundleProject
    rubric: BundleRubric
    prompt: BundlePrompt
    judge: BundleJudge = Field(description="judge settings, with the reward's call policy")
    reward: RewardConfigModel = Field(description="the reward configuration")
