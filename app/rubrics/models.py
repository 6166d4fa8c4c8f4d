"""Tables for rubrics: an editable draft, immutable published versions and sign-offs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint, event
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.db import JSONType


class Rubric(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    description: str = Field(default="")
    mode: str = Field(default="rubric", max_length=20, description="rubric | preference")
    draft: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    draft_revision: int = Field(default=1, description="optimistic lock for concurrent edits")
    draft_based_on_version: int | None = None
    draft_updated_by_id: int | None = Field(
        default=None, foreign_key="user.id", ondelete="SET NULL"
    )
    draft_updated_at: datetime = Field(default_factory=utcnow)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    archived: bool = False


class RubricVersion(SQLModel, table=True):
    """A published version: frozen forever once created."""

    __tablename__ = "rubric_version"
    __table_args__ = (UniqueConstraint("rubric_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    rubric_id: int = Field(foreign_key="rubric.id", index=True, ondelete="CASCADE")
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    number: int
    definition: dict[str, Any] = Field(sa_type=JSONType)
    output_schema: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    content_hash: str = Field(max_length=64)
    change_note: str = Field(default="")
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    # Who published it, as text: survives account deletion and rubric export/import.
    created_by_label: str = Field(default="", max_length=320)
    created_at: datetime = Field(default_factory=utcnow)


class FrozenVersionError(RuntimeError):
    """Raised when code tries to change or delete a published rubric version through the ORM."""


@event.listens_for(RubricVersion, "before_update")
def _refuse_version_update(_mapper: object, _connection: object, target: RubricVersion) -> None:
    # Defence in depth: no service changes a version, and this makes sure none ever does.
    raise FrozenVersionError(f"rubric version {target.id} is published and cannot be changed")


@event.listens_for(RubricVersion, "before_delete")
def _refuse_version_delete(_mapper: object, _connection: object, target: RubricVersion) -> None:
    raise FrozenVersionError(f"rubric version {target.id} is published and cannot be deleted")


class RubricApproval(SQLModel, table=True):
    """An expert's sign-off of a published version."""

    __tablename__ = "rubric_approval"
    __table_args__ = (UniqueConstraint("rubric_version_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    rubric_version_id: int = Field(foreign_key="rubric_version.id", index=True, ondelete="CASCADE")
    user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    user_label: str = Field(default="", max_length=320)
    comment: str = Field(default="")
    approved_at: datetime = Field(default_factory=utcnow)
