"""Frozen, content-hashed export bundles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint, event
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import JSONType


class ExportBundle(SQLModel, table=True):
    __tablename__ = "export_bundle"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    number: int
    rubric_version_id: int = Field(foreign_key="rubric_version.id")
    judge_config_id: int | None = Field(default=None, foreign_key="judge_config.id")
    reward_config_id: int | None = Field(default=None, foreign_key="reward_config.id")
    content: dict[str, Any] = Field(sa_type=JSONType, description="the frozen bundle")
    content_hash: str = Field(max_length=64, index=True)
    gate_passed: bool = True
    override_reason: str | None = None
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


class FrozenBundleError(RuntimeError):
    """Raised when code tries to change or delete an export bundle through the ORM."""


@event.listens_for(ExportBundle, "before_update")
def _refuse_bundle_update(_mapper: object, _connection: object, target: ExportBundle) -> None:
    # A bundle is what a training job ran with: it must never change after the fact.
    raise FrozenBundleError(f"export bundle {target.id} is frozen and cannot be changed")
