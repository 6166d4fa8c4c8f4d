"""What crosses the API boundary for projects and members."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.ids import Int32


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    policy_system_prompt: str = Field(default="", max_length=200_000)
    output_schema: dict[str, Any] | None = None


class ProjectUpdate(ProjectCreate):
    revision: Int32 = Field(description="the revision you read; a stale one is refused with 409")


class ProjectPublic(BaseModel):
    id: int
    slug: str
    name: str
    description: str
    policy_system_prompt: str
    output_schema: dict[str, Any] | None
    revision: int
    role: str | None = None
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
