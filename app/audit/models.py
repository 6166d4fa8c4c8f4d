"""The audit log: who changed what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import BigIntType, JSONType


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_project_created", "project_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntType)
    project_id: int | None = Field(
        default=None, foreign_key="project.id", index=True, ondelete="SET NULL"
    )
    actor_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    actor_label: str = Field(default="", max_length=320)
    action: str = Field(max_length=80, index=True, description="e.g. rubric.publish")
    object_type: str = Field(max_length=40)
    object_id: str = Field(default="", max_length=80)
    summary: str = Field(default="")
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_at: datetime = Field(default_factory=utcnow, index=True)
