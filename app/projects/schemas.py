"""What crosses the API boundary for projects and members."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.ids import Int32


class DocumentSource(StrEnum):
    field = "field"
    metadata = "metadata"
    user_message = "user_message"


class DocumentLocation(BaseModel):
    """Where each rollout's grounding document sits: the `target_document` field (default), a
    metadata key (a training row's custom field in exported packages), or the last user message
    between a start and an end marker. The grounding component reads it there, in the studio and
    in every exported package."""

    model_config = ConfigDict(extra="forbid")

    source: DocumentSource = DocumentSource.field
    metadata_key: str = Field(default="", max_length=200, description="with source=metadata")
    start_marker: str = Field(default="", max_length=200, description="with source=user_message")
    end_marker: str = Field(
        default="",
        max_length=200,
        description="with source=user_message; empty: to the end of the message",
    )

    @model_validator(mode="after")
    def _complete(self) -> DocumentLocation:
        if self.source == DocumentSource.metadata and not self.metadata_key.strip():
            raise ValueError("metadata_key: name the metadata key that holds the document")
        if self.source == DocumentSource.user_message and not self.start_marker:
            raise ValueError(
                "start_marker: give the text that comes just before the document in the user "
                "message"
            )
        return self

    def as_spec(self) -> dict[str, str] | None:
        """The setting as exported bundles carry it (None for the default)."""
        if self.source == DocumentSource.field:
            return None
        return self.model_dump(mode="json")


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    policy_system_prompt: str = Field(default="", max_length=200_000)
    output_schema: dict[str, Any] | None = None


class ProjectUpdate(ProjectCreate):
    revision: Int32 = Field(description="the revision you read; a stale one is refused with 409")
    document_location: DocumentLocation | None = Field(
        default=None, description="where the grounding document is; omitted: unchanged"
    )


class ProjectPublic(BaseModel):
    id: int
    slug: str
    name: str
    description: str
    policy_system_prompt: str
    output_schema: dict[str, Any] | None
    revision: int
    role: str | None = None
    document_location: DocumentLocation = Field(default_factory=DocumentLocation)
    created_at: datetime
    updated_at: datetime


class ApprovalPolicy(BaseModel):
    """Whether whoever publishes a rubric version may also be its only approver."""

    model_config = ConfigDict(extra="forbid")

    single_approver: bool = Field(
        description="true: the publisher may sign off their own version (exports say so); "
        "false (default): a second expert must"
    )


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)
    role: str


class MemberPublic(BaseModel):
    id: int
    user_id: int
    email: str
    display_name: str
    role: str


class MemberRoleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(min_length=1, max_length=20)
