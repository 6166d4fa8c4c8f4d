"""What crosses the API boundary for rubrics, drafts, versions, sign-offs and rubric files."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.ids import Int32


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RubricCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    template: str = Field(
        default="blank_rubric",
        description="legal_contract_review, generic_pass_fail, pairwise_preference, "
        "blank_rubric or blank_preference",
    )


class DraftSave(_Body):
    revision: Int32 = Field(description="the draft_revision you read; a stale one is refused (409)")
    definition: dict[str, Any] = Field(
        description="the whole draft: a rubric definition, saved even when not yet valid"
    )


class DraftSaveResult(BaseModel):
    revision: int
    changed: bool
    valid: bool
    problems: list[str]
    template_errors: list[dict[str, Any]]


class DraftConflictBody(BaseModel):
    detail: str
    current_revision: int
    current_definition: dict[str, Any]
    updated_by: str
    updated_at: datetime


class PublishBody(_Body):
    change_note: str = Field(min_length=1, max_length=20_000)
    revision: Int32 | None = Field(
        default=None, description="when given, publishing is refused (409) if the draft changed"
    )


class ApproveBody(_Body):
    comment: str = Field(default="", max_length=20_000)


class ImportBody(_Body):
    content: str = Field(description="the rubric file's text")
    format: Literal["yaml", "json"] = "yaml"
    name: str | None = Field(default=None, max_length=200, description="override the file's name")


class ApprovalPublic(BaseModel):
    user_label: str
    comment: str
    approved_at: datetime


class VersionSummary(BaseModel):
    id: int = Field(description="the version's id: queues, runs, exports and imports take it")
    number: int
    content_hash: str
    change_note: str
    created_by: str
    created_at: datetime
    approvals: list[ApprovalPublic]


class VersionPublic(VersionSummary):
    rubric_id: int
    definition: dict[str, Any]
    output_schema: dict[str, Any]


class RubricSummary(BaseModel):
    id: int
    name: str
    description: str
    mode: str
    latest_version: int | None
    latest_version_id: int | None = Field(
        default=None, description="the id of the newest version (what runs and imports take)"
    )
    draft_revision: int
    archived: bool


class RubricPublic(RubricSummary):
    draft: dict[str, Any]
    draft_based_on_version: int | None = Field(description="the version number")
    draft_based_on_version_id: int | None = Field(
        default=None, description="the id of the version the draft started from"
    )
    draft_updated_at: datetime
    valid: bool
    problems: list[str]
    template_errors: list[dict[str, Any]]
    versions: list[VersionSummary]


class ArchiveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    archived: bool = Field(default=True, description="false: restore the rubric to the list")
