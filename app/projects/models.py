"""Tables for projects (one task each) and their members' roles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import JSONType
from app.projects.roles import Role as Role


class Project(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=80, unique=True, index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="")
    policy_system_prompt: str = Field(default="")
    output_schema: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    settings: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    attribution: str = Field(default="", description="licence notice of the project's data")
    revision: int = Field(default=1, description="bumped on every save, for conflict detection")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Membership(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    role: str = Field(max_length=20)
    created_at: datetime = Field(default_factory=utcnow)
