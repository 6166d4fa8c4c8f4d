"""JSON routes serving the file formats' JSON Schemas (/api/v1/formats)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from app.auth.dependencies import CurrentUser
from app.formats.registry import FORMATS

router = APIRouter(prefix="/api/v1", tags=["formats"])

FormatName = Literal["rollouts", "rubric", "labels", "verdicts", "reward-config", "export-bundle"]


class FormatPublic(BaseModel):
    name: str
    title: str
    shape: str = Field(description="document: one value per file; lines: the schema is one line")
    doc: str = Field(description="the page of the documentation that describes it (docs/…)")
    used_by: str
    schema_url: str


@router.get("/formats", response_model=list[FormatPublic])
def list_formats(user: CurrentUser) -> list[FormatPublic]:
    """The files the studio reads and writes, each with its JSON Schema's address."""
    return [
        FormatPublic(
            name=f.name,
            title=f.title,
            shape=f.shape.value,
            doc=f"docs/{f.doc}",
            used_by=f.used_by,
            schema_url=f"/api/v1/formats/{f.name}",
        )
        for f in FORMATS.values()
    ]


@router.get(
    "/formats/{name}",
    response_class=JSONResponse,
    responses={200: {"content": {"application/schema+json": {}}}},
)
def get_format(name: FormatName, user: CurrentUser) -> Any:
    """A format's JSON Schema (draft 2020-12): the one its import validates with."""
    return JSONResponse(FORMATS[name].schema(), media_type="application/schema+json")
